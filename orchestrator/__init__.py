"""saga-orchestrator: durable workflows and sagas, checkpointed in PostgreSQL or SQLite."""

from __future__ import annotations

from orchestrator.app import Orchestrator
from orchestrator.clock import Clock, DatabaseClock, FakeClock
from orchestrator.context import StepContext
from orchestrator.engine.replay import ReplayVerdict
from orchestrator.engine.steps import StepFunction
from orchestrator.engine.workflows import StartOptions, WorkflowFunction, WorkflowHandle
from orchestrator.errors import (
    ConfigurationError,
    DuplicateWorkflowError,
    InvalidArgumentError,
    LeaseLostError,
    MaxRecoveryAttemptsExceededError,
    NonDeterministicWorkflowError,
    NonRetryableError,
    NotInWorkflowError,
    NotRegisteredError,
    OrchestratorError,
    RetryLaterError,
    SerializationError,
    SignatureError,
    StepError,
    StoreError,
    StoreUnavailableError,
    WorkflowCancelledError,
    WorkflowConflictError,
    WorkflowFailedError,
    WorkflowFinishedError,
    WorkflowNotFoundError,
    WorkflowStateError,
    WorkflowTimeoutError,
)
from orchestrator.log_context import WorkflowLogFilter, configure_logging
from orchestrator.metrics import Metrics
from orchestrator.outbound import http_client, sync_http_client
from orchestrator.queues import Queue
from orchestrator.retry import Retry
from orchestrator.store.base import QueueStats, ScheduleRecord, WorkerRecord
from orchestrator.tracing import Tracing, configure_tracing
from orchestrator.types import StepKind, WorkflowStatus
from orchestrator.views import ScheduleInfo, StepInfo, VersionInfo, WorkerInfo, WorkflowInfo

__all__ = [
    "Clock",
    "ConfigurationError",
    "DatabaseClock",
    "DuplicateWorkflowError",
    "FakeClock",
    "InvalidArgumentError",
    "LeaseLostError",
    "MaxRecoveryAttemptsExceededError",
    "Metrics",
    "NonDeterministicWorkflowError",
    "NonRetryableError",
    "NotInWorkflowError",
    "NotRegisteredError",
    "Orchestrator",
    "OrchestratorError",
    "Queue",
    "QueueStats",
    "ReplayVerdict",
    "Retry",
    "RetryLaterError",
    "ScheduleInfo",
    "ScheduleRecord",
    "SerializationError",
    "SignatureError",
    "StartOptions",
    "StepContext",
    "StepError",
    "StepFunction",
    "StepInfo",
    "StepKind",
    "StoreError",
    "StoreUnavailableError",
    "Tracing",
    "VersionInfo",
    "WorkerInfo",
    "WorkerRecord",
    "WorkflowCancelledError",
    "WorkflowConflictError",
    "WorkflowFailedError",
    "WorkflowFinishedError",
    "WorkflowFunction",
    "WorkflowHandle",
    "WorkflowInfo",
    "WorkflowLogFilter",
    "WorkflowNotFoundError",
    "WorkflowStateError",
    "WorkflowStatus",
    "WorkflowTimeoutError",
    "configure_logging",
    "configure_tracing",
    "http_client",
    "sync_http_client",
]
