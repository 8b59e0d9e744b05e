"""Retry policies for steps and compensations (tenacity underneath)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from orchestrator.errors import (
    InvalidArgumentError,
    LeaseLostError,
    NonRetryableError,
    WorkflowCancelledError,
)

T = TypeVar("T")

# Errors that are never retried: the workflow is being stopped, or the user said so.
_NEVER_RETRIED: tuple[type[BaseException], ...] = (
    NonRetryableError,
    WorkflowCancelledError,
    LeaseLostError,
)


@dataclass(frozen=True, slots=True)
class Retry:
    """How often and how patiently to retry a failing step.

    Args:
        max_attempts: total attempts including the first (1 = no retries).
        base_interval: seconds before the first retry.
        backoff: multiplier applied to the interval after each retry.
        max_interval: cap on the interval between two attempts, seconds.
        retry_on: only exceptions of these types are retried (default: any Exception).
        non_retryable: exceptions of these types are never retried (besides NonRetryableError).
    """

    max_attempts: int = 1
    base_interval: float = 1.0
    backoff: float = 2.0
    max_interval: float = 60.0
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    non_retryable: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidArgumentError(f"Retry(max_attempts={self.max_attempts}) must be >= 1")
        if self.base_interval < 0 or self.max_interval < 0:
            raise InvalidArgumentError("Retry intervals must be >= 0 seconds")
        if self.backoff < 1:
            raise InvalidArgumentError(f"Retry(backoff={self.backoff}) must be >= 1")

    def should_retry(self, error: BaseException) -> bool:
        """True if ``error`` is worth another attempt under this policy."""
        if isinstance(error, _NEVER_RETRIED + self.non_retryable):
            return False
        return isinstance(error, self.retry_on)

    def interval(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_interval, self.base_interval * self.backoff ** (attempt - 1)))

    async def run(
        self,
        attempt_fn: Callable[[int], Awaitable[T]],
        before_retry: Callable[[int, BaseException], None] | None = None,
    ) -> tuple[T, int]:
        """Call ``attempt_fn(attempt)`` until it succeeds or the policy gives up.

        Returns (result, attempts). Raises the last error, with ``attempts`` recorded on it as
        ``__orchestrator_attempts__`` so callers can store the count.
        """
        if self.max_attempts == 1:  # the common case pays nothing for tenacity
            try:
                return await attempt_fn(1), 1
            except BaseException as exc:
                _tag_attempts(exc, 1)
                raise

        def log_retry(state: RetryCallState) -> None:
            if before_retry is not None and state.outcome is not None:
                error = state.outcome.exception()
                if error is not None:
                    before_retry(state.attempt_number, error)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_exponential(
                multiplier=self.base_interval,
                exp_base=self.backoff,
                min=self.base_interval,
                max=self.max_interval,
            ),
            retry=retry_if_exception(self.should_retry),
            before_sleep=log_retry,
            reraise=True,
        )
        attempt = 0
        try:
            async for attempt_state in retrying:
                with attempt_state:
                    attempt = attempt_state.retry_state.attempt_number
                    result = await attempt_fn(attempt)
                # A successful attempt leaves the loop.
            return result, attempt
        except BaseException as exc:
            _tag_attempts(exc, attempt)
            raise


def attempts_of(error: BaseException) -> int:
    """How many attempts were made before ``error`` ended a retried call."""
    value: Any = getattr(error, "__orchestrator_attempts__", 1)
    return int(value)


def _tag_attempts(error: BaseException, attempts: int) -> None:
    # Exceptions with __slots__ refuse the attribute: their count is then reported as 1.
    with contextlib.suppress(AttributeError):
        error.__orchestrator_attempts__ = attempts  # type: ignore[attr-defined]


DEFAULT_STEP_RETRY = Retry()
# Compensations must eventually succeed: retry long, with capped backoff.
DEFAULT_COMPENSATION_RETRY = Retry(
    max_attempts=20, base_interval=0.5, backoff=2.0, max_interval=30.0
)
