"""The exception tree of saga-orchestrator; each error knows the HTTP status it maps to.

OrchestratorError                      base of everything raised by this library
├── ConfigurationError                 bad settings, registration after launch, unknown names
│   └── NotRegisteredError             a workflow/step/queue name that is not registered
├── InvalidArgumentError               a public call got a value it cannot use (400)
│   └── SerializationError             a value that cannot be stored as JSON, or read back
│       ├── PayloadTooLargeError       a stored value (or a request body) over its size limit (413)
│       └── PayloadUndecodableError    a stored value its codec cannot read back: key gone (410)
├── NotInWorkflowError                 a workflow-only call made outside a workflow
├── WorkflowNotFoundError              no workflow with that id (404)
├── WorkflowConflictError              same workflow id, different workflow or input (409)
├── DuplicateWorkflowError             a dedup id already active on a queue (409)
├── WorkflowFinishedError              the workflow has finished; the call cannot apply (409)
├── WorkflowStateError                 an operation that the workflow's status forbids (409)
├── NonDeterministicWorkflowError      replay found a different call at a step number
├── WorkflowCancelledError             raised inside a cancelled workflow to unwind it
├── LeaseLostError                     this worker lost the workflow to another worker
├── WorkflowTimeoutError               a wait (result, get_event) timed out
├── WorkflowFailedError                the workflow ended in error; carries the original
├── MaxRecoveryAttemptsExceededError   the workflow crashed too often to be run again
├── StepError                          a step failed after all its retries
├── NonRetryableError                  raise from a step to stop retrying at once
├── RetryLaterError                    raise from a step to be retried after a given delay
├── SignatureError                     a webhook delivery's signature does not verify (401)
└── StoreError                         the database failed
    ├── StoreUnavailableError          the database cannot be reached (503)
    ├── StoreBusyError                 a row the write needs is held by another transaction
    └── MigrationError                 the schema cannot be brought up to date
"""

from __future__ import annotations

import re
from typing import Any, ClassVar


class OrchestratorError(Exception):
    """Base class of every error this library raises on purpose."""

    http_status: ClassVar[int] = 500
    code: ClassVar[str] = "orchestrator_error"

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail: dict[str, Any] = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.message, self.detail))


def _rebuild(cls: type[OrchestratorError], message: str, detail: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    OrchestratorError.__init__(error, message, **detail)
    return error


class ConfigurationError(OrchestratorError):
    """The application is set up wrongly: fix the code or the settings."""

    code = "configuration_error"


class NotRegisteredError(ConfigurationError):
    """A workflow, step or queue name that this application has not registered."""

    http_status = 404
    code = "not_registered"


class InvalidArgumentError(OrchestratorError):
    """A public call received an argument it cannot use."""

    http_status = 400
    code = "invalid_argument"


class SerializationError(InvalidArgumentError):
    """A value cannot be encoded as JSON, or a stored value cannot be decoded."""

    code = "serialization_error"


class PayloadUndecodableError(SerializationError):
    """A stored value that the configured codec cannot decode: encrypted with a key that is no
    longer in the keyring (removed, or the subject's key erased), or corrupt. Raised where the
    engine needs the value to run; displays show ``{"$undecodable": ...}`` instead."""

    http_status = 410
    code = "payload_undecodable"


class PayloadTooLargeError(SerializationError):
    """A value whose encoded form is larger than ``max_payload_bytes`` (a workflow's input or
    output, a step's output, a message, an event, a stream item), refused at the call that
    would store it; or an HTTP request body larger than the service accepts. ``detail`` holds
    ``what``, ``size`` and ``limit`` (bytes)."""

    http_status = 413
    code = "payload_too_large"


class NotInWorkflowError(OrchestratorError):
    """A call that only makes sense inside a running workflow was made outside one."""

    http_status = 400
    code = "not_in_workflow"


class WorkflowNotFoundError(OrchestratorError):
    """No workflow has that id."""

    http_status = 404
    code = "workflow_not_found"


class WorkflowConflictError(OrchestratorError):
    """A workflow id is taken by a different workflow or different input."""

    http_status = 409
    code = "workflow_conflict"


class DuplicateWorkflowError(OrchestratorError):
    """A deduplication id is already active on the queue."""

    http_status = 409
    code = "duplicate_workflow"


class WorkflowFinishedError(OrchestratorError):
    """The workflow has finished, so the call (e.g. a message to it) can never apply."""

    http_status = 409
    code = "workflow_finished"


class WorkflowStateError(OrchestratorError):
    """The workflow's current status does not allow this operation."""

    http_status = 409
    code = "workflow_state"


class NonDeterministicWorkflowError(OrchestratorError):
    """Replay met a different durable call than the one recorded at that step number."""

    code = "non_deterministic"


class WorkflowCancelledError(OrchestratorError):
    """Raised inside a workflow at its next durable call after it was cancelled."""

    http_status = 409
    code = "workflow_cancelled"


class LeaseLostError(OrchestratorError):
    """This executor no longer owns the workflow; another worker has taken it over."""

    http_status = 409
    code = "lease_lost"


class WorkflowTimeoutError(OrchestratorError):
    """Waiting for a result or an event took longer than the timeout given."""

    http_status = 408
    code = "timeout"


class WorkflowFailedError(OrchestratorError):
    """The workflow ended in error; ``error_type`` and ``error_message`` describe the cause.

    Raised by ``handle.result()`` when the original exception class cannot be rebuilt, and for
    sagas that compensated (the error that triggered the rollback is kept here).
    """

    http_status = 409
    code = "workflow_failed"

    @property
    def error_type(self) -> str:
        return str(self.detail.get("error_type", ""))

    @property
    def error_message(self) -> str:
        return str(self.detail.get("error_message", ""))

    @property
    def status(self) -> str:
        return str(self.detail.get("status", ""))


class MaxRecoveryAttemptsExceededError(OrchestratorError):
    """The workflow was recovered more often than its ``max_recovery_attempts`` allows."""

    http_status = 409
    code = "max_recovery_attempts_exceeded"


class StepError(OrchestratorError):
    """A step failed after all its retries; ``__cause__`` holds the last exception."""

    code = "step_failed"


class NonRetryableError(OrchestratorError):
    """Raise this (or a subclass) from a step to stop its retries at once."""

    code = "non_retryable"


class SignatureError(OrchestratorError):
    """A webhook delivery whose signature is missing, wrong or outside the replay window."""

    http_status = 401
    code = "invalid_signature"


class RetryLaterError(OrchestratorError):
    """Raise from a step to have it retried after ``retry_after`` seconds (what a provider's
    ``Retry-After`` says) instead of its policy's next interval; within its max_attempts."""

    code = "retry_later"

    def __init__(self, message: str, *, retry_after: float, **detail: Any) -> None:
        super().__init__(message, retry_after=float(retry_after), **detail)

    @property
    def retry_after(self) -> float:
        return float(self.detail.get("retry_after", 0.0))


class StoreError(OrchestratorError):
    """The database failed in a way the caller cannot fix by changing the call."""

    http_status = 503
    code = "store_error"


class StoreUnavailableError(StoreError):
    """The database cannot be reached (yet); retried with backoff before this is raised."""

    code = "store_unavailable"


class StoreBusyError(StoreError):
    """A row the write needs is held by another transaction for now (a recv's oldest waiting
    message, while another executor's recv of the same mailbox is in flight): nothing was
    written; the same call a moment later goes through. The engine retries it itself."""

    code = "store_busy"


class MigrationError(StoreError):
    """The database schema cannot be brought to the version this code needs."""

    code = "migration_error"


# Credentials in text meant for people (error messages, logs): the password of a URL
# (``scheme://user:password@host``), of a libpq keyword DSN (``password=...``) and of a URL's
# query (``?password=...``).
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^@\s]*@")
_KEYWORD_PASSWORD = re.compile(r"""(password\s*=\s*)('(?:[^'\\]|\\.)*'|"[^"]*"|[^\s&]+)""", re.I)


def redact_credentials(text: str) -> str:
    """``text`` with every database password replaced by ``***``: run any text that may hold
    a connection string (a URL a user typed, a driver's error) through it before showing it."""
    return _KEYWORD_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1:***@", text))
