"""Retry policies for steps and compensations: how many attempts, how long between them.

The attempts themselves are run by the durable-call primitive (``engine/run.py``): it waits the
backoff on the clock (so a test's FakeClock skips it), lets a cancel stop a step between two
attempts, and honours a ``Retry-After`` the error carries (a provider's 429 or 503).
"""

from __future__ import annotations

import datetime as dt
import email.utils
import math
from dataclasses import dataclass
from typing import Any

from orchestrator.errors import (
    InvalidArgumentError,
    LeaseLostError,
    NonRetryableError,
    WorkflowCancelledError,
)

# Errors that are never retried: the workflow is being stopped, or the user said so.
_NEVER_RETRIED: tuple[type[BaseException], ...] = (
    NonRetryableError,
    WorkflowCancelledError,
    LeaseLostError,
)
MAX_RETRY_AFTER_SECONDS = 3600.0  # a Retry-After longer than this is capped to it


@dataclass(frozen=True, slots=True)
class Retry:
    """How often and how patiently to retry a failing step.

    Args:
        max_attempts: total attempts including the first (1 = no retries).
        base_interval: seconds before the first retry.
        backoff: multiplier applied to the interval after each retry.
        max_interval: cap on the interval between two attempts, seconds.
        jitter: each interval is varied at random by up to this fraction (0.1: ±10%), so the
            retries of many workflows that failed together do not arrive together.
        retry_on: only exceptions of these types are retried (default: any Exception).
        non_retryable: exceptions of these types are never retried (besides NonRetryableError).

    An error that says when to retry (a ``retry_after`` attribute in seconds, as
    ``RetryLaterError`` has, or an ``httpx.HTTPStatusError`` whose response carries a
    ``Retry-After`` header) is retried after that long instead of the computed interval.

    Raises:
        InvalidArgumentError: a value out of range.
    """

    max_attempts: int = 1
    base_interval: float = 1.0
    backoff: float = 2.0
    max_interval: float = 60.0
    jitter: float = 0.1
    retry_on: tuple[type[BaseException], ...] = (Exception,)
    non_retryable: tuple[type[BaseException], ...] = ()

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise InvalidArgumentError(f"Retry(max_attempts={self.max_attempts}) must be >= 1")
        if not (
            0 <= self.base_interval < math.inf and 0 <= self.max_interval < math.inf
        ):  # NaN fails every comparison: refused too
            raise InvalidArgumentError("Retry intervals must be finite numbers >= 0 seconds")
        if not 1 <= self.backoff < math.inf:
            raise InvalidArgumentError(f"Retry(backoff={self.backoff}) must be finite and >= 1")
        if not 0 <= self.jitter <= 1:
            raise InvalidArgumentError(f"Retry(jitter={self.jitter}) must be within 0..1")

    def should_retry(self, error: BaseException, attempt: int = 1) -> bool:
        """True if ``error``, raised by attempt number ``attempt``, is worth another one."""
        if attempt >= self.max_attempts:
            return False
        if isinstance(error, _NEVER_RETRIED + self.non_retryable):
            return False
        return isinstance(error, self.retry_on)

    def interval(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), before jitter."""
        return float(min(self.max_interval, self.base_interval * self.backoff ** (attempt - 1)))


def retry_after(error: BaseException) -> float | None:
    """The seconds ``error`` asks to wait before a retry, if it says: a ``retry_after``
    attribute (seconds), or a ``Retry-After`` header (seconds, or an HTTP date) on the
    response of an HTTP error (httpx's HTTPStatusError has ``.response``)."""
    value: Any = getattr(error, "retry_after", None)
    if value is None:
        response = getattr(error, "response", None)
        headers = getattr(response, "headers", None)
        value = headers.get("Retry-After") if headers is not None else None
    if value is None:
        return None
    seconds: float | None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = _seconds_until(str(value))
    if seconds is None or math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _seconds_until(http_date: str) -> float | None:
    try:
        moment = email.utils.parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return (moment - dt.datetime.now(dt.UTC)).total_seconds()


DEFAULT_STEP_RETRY = Retry()
# Compensations must eventually succeed: retry long, with capped backoff.
DEFAULT_COMPENSATION_RETRY = Retry(
    max_attempts=20, base_interval=0.5, backoff=2.0, max_interval=30.0
)
