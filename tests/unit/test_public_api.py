"""The public API is orchestrator/__init__.py: explicit, sorted, and complete."""

from __future__ import annotations

import inspect

import orchestrator
from orchestrator import errors


def test_all_is_sorted_unique_and_importable() -> None:
    assert orchestrator.__all__ == sorted(set(orchestrator.__all__))
    for name in orchestrator.__all__:
        assert getattr(orchestrator, name) is not None


def test_every_public_name_is_listed() -> None:
    public = {name for name in vars(orchestrator) if not name.startswith("_")}
    modules = {name for name, value in vars(orchestrator).items() if inspect.ismodule(value)}
    assert public - modules - {"annotations"} == set(orchestrator.__all__)


def test_every_error_is_exported_and_documented_in_the_tree() -> None:
    tree = errors.__doc__ or ""
    for name, value in vars(errors).items():
        if inspect.isclass(value) and issubclass(value, errors.OrchestratorError):
            assert name in orchestrator.__all__ or name in {"MigrationError"}, name
            assert name in tree, f"{name} is missing from the tree in errors.py's docstring"


def test_design_api_names_exist() -> None:
    app = orchestrator.Orchestrator("api", "sqlite:///:memory:")
    for method in (
        "workflow",
        "step",
        "run_step",
        "start",
        "retrieve",
        "send",
        "recv",
        "set_event",
        "get_event",
        "get_events",
        "sleep",
        "now",
        "random",
        "cancel",
        "resume",
        "fork",
        "list_workflows",
        "list_steps",
        "queue",
        "launch",
        "shutdown",
        "step_context",
        "compensate",
        "retry_compensation",
        "skip_compensation",
        "write_stream",
        "close_stream",
        "read_stream",
        "create_schedule",
        "pause_schedule",
        "resume_schedule",
        "delete_schedule",
        "list_schedules",
        "list_queued",
        "queue_stats",
    ):
        assert callable(getattr(app, method)), method
    statuses = {s.value for s in orchestrator.WorkflowStatus}
    assert statuses == {
        "ENQUEUED",
        "PENDING",
        "SUCCESS",
        "ERROR",
        "CANCELLED",
        "COMPENSATING",
        "COMPENSATED",
        "COMPENSATION_FAILED",
        "MAX_RECOVERY_ATTEMPTS_EXCEEDED",
    }
