"""The registry of one application: its workflows, steps, compensations, queues and webhook
sources by name (filled by registration.Registrar before launch, read by the engine)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.webhooks import WebhookDeclaration

if TYPE_CHECKING:
    from orchestrator.engine.steps import StepFunction
    from orchestrator.engine.workflows import WorkflowFunction
    from orchestrator.queues import Queue


class Registry:
    """Workflows and steps of one application, by name; closed once the app launches."""

    def __init__(self) -> None:
        self.workflows: dict[str, WorkflowFunction[Any, Any]] = {}
        self.steps: dict[str, StepFunction[Any, Any]] = {}
        self.compensations: dict[str, StepFunction[Any, Any]] = {}
        self.queues: dict[str, Queue] = {}
        self.webhooks: dict[str, WebhookDeclaration] = {}
