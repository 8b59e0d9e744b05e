"""The durable-execution core: runs, the durable-call primitive, steps, sagas, messages,
timers, results, starting and the operator's actions, composed by ``core.Engine``.

Nothing here is public API: applications use ``orchestrator.Orchestrator`` (and the names
``orchestrator/__init__.py`` re-exports). This package imports the store and the top-level
support modules (clock, retry, serialization, tracing, metrics, lease, queues, scheduler), never
the application, the HTTP service or the CLI.
"""
