"""Failover to a replica (issue #21 item 4): a primary and its synchronous streaming replica,
both private clusters made by the test; workers on a multi-host URL; the primary stopped hard
mid-run and the replica promoted; then the chaos checker, and a check that the replica held
every acknowledged checkpoint before it was promoted.

- replica.py   the pair: initdb, pg_basebackup -R, synchronous replication, kill and promote
- harness.py   the run and its checks (bench/failover.py prints its figures)
"""
