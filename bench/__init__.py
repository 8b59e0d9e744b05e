"""Benchmarks of saga-orchestrator, side by side with DBOS on the same PostgreSQL."""
