"""saga-orchestrator: durable workflows and sagas, checkpointed in PostgreSQL or SQLite."""

from __future__ import annotations

from orchestrator.app import Orchestrator
from orchestrator.audit import Actor, acting_as
from orchestrator.clock import Clock, DatabaseClock, FakeClock
from orchestrator.codec import (
    AesGcmCodec,
    ChainCodec,
    CodecContext,
    CompressionCodec,
    Keyring,
    PayloadCodec,
    SubjectCodec,
)
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
    PayloadTooLargeError,
    PayloadUndecodableError,
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
from orchestrator.store.base import KeyedDelivery, QueueStats, ScheduleRecord, WorkerRecord
from orchestrator.tracing import Tracing, configure_tracing
from orchestrator.types import StepKind, WorkflowStatus
from orchestrator.views import (
    AuditEntry,
    BulkFailure,
    BulkResult,
    PlannedCompensation,
    RollbackPlan,
    ScheduleInfo,
    StepInfo,
    VersionInfo,
    WorkerInfo,
    WorkflowFilter,
    WorkflowInfo,
    WorkflowPage,
)

__all__ = [
    "Actor",
    "AesGcmCodec",
    "AuditEntry",
    "BulkFailure",
    "BulkResult",
    "ChainCodec",
    "Clock",
    "CodecContext",
    "CompressionCodec",
    "ConfigurationError",
    "DatabaseClock",
    "DuplicateWorkflowError",
    "FakeClock",
    "InvalidArgumentError",
    "KeyedDelivery",
    "Keyring",
    "LeaseLostError",
    "MaxRecoveryAttemptsExceededError",
    "Metrics",
    "NonDeterministicWorkflowError",
    "NonRetryableError",
    "NotInWorkflowError",
    "NotRegisteredError",
    "Orchestrator",
    "OrchestratorError",
    "PayloadCodec",
    "PayloadTooLargeError",
    "PayloadUndecodableError",
    "PlannedCompensation",
    "Queue",
    "QueueStats",
    "ReplayVerdict",
    "Retry",
    "RetryLaterError",
    "RollbackPlan",
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
    "SubjectCodec",
    "Tracing",
    "VersionInfo",
    "WorkerInfo",
    "WorkerRecord",
    "WorkflowCancelledError",
    "WorkflowConflictError",
    "WorkflowFailedError",
    "WorkflowFilter",
    "WorkflowFinishedError",
    "WorkflowFunction",
    "WorkflowHandle",
    "WorkflowInfo",
    "WorkflowLogFilter",
    "WorkflowNotFoundError",
    "WorkflowPage",
    "WorkflowStateError",
    "WorkflowStatus",
    "WorkflowTimeoutError",
    "acting_as",
    "configure_logging",
    "configure_tracing",
    "http_client",
    "sync_http_client",
]
