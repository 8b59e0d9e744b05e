"""Retry policies (``orchestrator/retry.py``): the values a ``Retry`` accepts, the backoff
interval, which errors are retried, and how long an error asks to wait (``retry_after``: an
attribute, or an HTTP response's ``Retry-After`` in seconds or as a date, capped)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email.utils
import math

import httpx
import pytest

from orchestrator.errors import (
    InvalidArgumentError,
    LeaseLostError,
    NonRetryableError,
    RetryLaterError,
    StepError,
    WorkflowCancelledError,
)
from orchestrator.retry import (
    DEFAULT_COMPENSATION_RETRY,
    DEFAULT_STEP_RETRY,
    MAX_RETRY_AFTER_SECONDS,
    Retry,
    retry_after,
)


class PaymentDeclinedError(NonRetryableError):
    """A user's non-retryable error: a subclass of NonRetryableError."""


class ProviderError(Exception):
    """A user's error, retryable unless a policy says otherwise."""


class RateLimitedError(ProviderError):
    pass


def http_error(retry_after_header: str | None, status: int = 429) -> httpx.HTTPStatusError:
    """A real httpx error for a response that carries ``Retry-After`` (when not None)."""
    request = httpx.Request("POST", "https://payments.test/charges")
    headers = {} if retry_after_header is None else {"Retry-After": retry_after_header}
    response = httpx.Response(status, headers=headers, request=request)
    return httpx.HTTPStatusError(f"{status}", request=request, response=response)


def http_date(seconds_from_now: float) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds_from_now)
    return email.utils.format_datetime(moment, usegmt=True)


# ------------------------------------------------------------------------------ validation


def test_the_defaults_make_one_attempt_with_a_tenth_of_jitter() -> None:
    policy = Retry()
    assert (policy.max_attempts, policy.base_interval, policy.backoff) == (1, 1.0, 2.0)
    assert (policy.max_interval, policy.jitter) == (60.0, 0.1)
    assert policy.retry_on == (Exception,)
    assert policy.non_retryable == ()
    assert policy == DEFAULT_STEP_RETRY


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"max_attempts": 0}, r"Retry\(max_attempts=0\) must be >= 1"),
        ({"max_attempts": -3}, r"Retry\(max_attempts=-3\) must be >= 1"),
        ({"base_interval": -0.5}, "Retry intervals must be finite numbers >= 0 seconds"),
        ({"max_interval": -1}, "Retry intervals must be finite numbers >= 0 seconds"),
        ({"backoff": 0.99}, r"Retry\(backoff=0.99\) must be finite and >= 1"),
        ({"jitter": -0.01}, r"Retry\(jitter=-0.01\) must be within 0..1"),
        ({"jitter": 1.5}, r"Retry\(jitter=1.5\) must be within 0..1"),
        ({"jitter": math.nan}, r"Retry\(jitter=nan\) must be within 0..1"),
    ],
)
def test_a_value_out_of_range_is_an_invalid_argument(
    arguments: dict[str, float], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=f"^{message}$"):
        Retry(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "arguments",
    [
        {"max_attempts": 1},
        {"base_interval": 0, "max_interval": 0},
        {"backoff": 1},
        {"jitter": 0},
        {"jitter": 1},
    ],
)
def test_the_edges_of_each_range_are_accepted(arguments: dict[str, float]) -> None:
    policy = Retry(**arguments)  # type: ignore[arg-type]
    assert all(getattr(policy, name) == value for name, value in arguments.items())


@pytest.mark.parametrize("field", ["base_interval", "max_interval", "backoff"])
def test_a_nan_interval_or_backoff_is_an_invalid_argument(field: str) -> None:
    with pytest.raises(InvalidArgumentError):
        Retry(**{field: math.nan})  # type: ignore[arg-type]


def test_a_policy_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Retry().max_attempts = 5  # type: ignore[misc]


# ------------------------------------------------------------------------------ interval


def test_the_interval_grows_by_the_backoff_from_the_base() -> None:
    policy = Retry(max_attempts=6, base_interval=0.5, backoff=3, max_interval=1000)
    assert [policy.interval(attempt) for attempt in range(1, 6)] == [0.5, 1.5, 4.5, 13.5, 40.5]


def test_the_interval_is_capped_by_the_max_interval() -> None:
    policy = Retry(max_attempts=10, base_interval=1, backoff=2, max_interval=5)
    assert [policy.interval(attempt) for attempt in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.interval(500) == 5.0  # no overflow far out


def test_a_backoff_of_one_is_a_constant_interval() -> None:
    policy = Retry(max_attempts=4, base_interval=2.5, backoff=1)
    assert {policy.interval(attempt) for attempt in range(1, 20)} == {2.5}


def test_a_base_above_the_cap_is_capped_from_the_first_retry() -> None:
    assert Retry(base_interval=90, max_interval=60).interval(1) == 60.0


def test_the_interval_is_a_float_even_from_integers() -> None:
    interval = Retry(base_interval=2, backoff=2, max_interval=100).interval(3)
    assert interval == 8.0
    assert type(interval) is float


def test_compensations_retry_long_with_a_capped_backoff() -> None:
    policy = DEFAULT_COMPENSATION_RETRY
    assert policy.max_attempts == 20
    assert [policy.interval(attempt) for attempt in range(1, 9)] == [
        0.5,
        1.0,
        2.0,
        4.0,
        8.0,
        16.0,
        30.0,
        30.0,
    ]


# ------------------------------------------------------------------------------ should_retry


def test_a_retryable_error_is_retried_until_the_attempts_run_out() -> None:
    policy = Retry(max_attempts=3)
    error = ProviderError("503")
    assert [policy.should_retry(error, attempt) for attempt in (1, 2, 3, 4)] == [
        True,
        True,
        False,
        False,
    ]


def test_one_attempt_means_no_retry() -> None:
    assert Retry().should_retry(ProviderError("503")) is False
    assert Retry(max_attempts=2).should_retry(ProviderError("503")) is True  # attempt 1


def test_only_the_types_in_retry_on_are_retried() -> None:
    policy = Retry(max_attempts=5, retry_on=(ProviderError, TimeoutError))
    assert policy.should_retry(RateLimitedError("429"), 1) is True  # a subclass
    assert policy.should_retry(TimeoutError(), 1) is True
    assert policy.should_retry(ValueError("bug"), 1) is False


def test_the_types_in_non_retryable_are_never_retried() -> None:
    policy = Retry(max_attempts=5, retry_on=(ProviderError,), non_retryable=(RateLimitedError,))
    assert policy.should_retry(ProviderError("503"), 1) is True
    assert policy.should_retry(RateLimitedError("429"), 1) is False


@pytest.mark.parametrize(
    "error",
    [
        NonRetryableError("stop"),
        PaymentDeclinedError("card declined"),
        WorkflowCancelledError("cancelled"),
        LeaseLostError("taken over"),
    ],
)
def test_stop_errors_and_non_retryable_errors_are_never_retried(error: Exception) -> None:
    policy = Retry(max_attempts=100, retry_on=(BaseException,))
    assert policy.should_retry(error, 1) is False


def test_by_default_base_exceptions_that_are_not_exceptions_are_not_retried() -> None:
    policy = Retry(max_attempts=5)
    assert policy.should_retry(KeyboardInterrupt(), 1) is False
    assert policy.should_retry(asyncio.CancelledError(), 1) is False
    assert policy.should_retry(StepError("wrapped"), 1) is True  # an OrchestratorError


# ------------------------------------------------------------------------------ retry_after


def test_a_retry_later_error_asks_for_its_delay() -> None:
    assert retry_after(RetryLaterError("429", retry_after=12.5)) == 12.5


def test_an_error_without_a_delay_asks_for_none() -> None:
    assert retry_after(ProviderError("503")) is None
    assert retry_after(http_error(None)) is None


def test_any_error_with_a_retry_after_attribute_asks_for_it() -> None:
    class Throttled(Exception):
        retry_after = "30"  # as a provider's SDK may hand it on: text

    assert retry_after(Throttled()) == 30.0


def test_a_retry_after_attribute_of_none_falls_back_to_the_response() -> None:
    error = http_error("7")
    error.retry_after = None  # type: ignore[attr-defined]
    assert retry_after(error) == 7.0


@pytest.mark.parametrize(("header", "seconds"), [("120", 120.0), ("0", 0.0), (" 5 ", 5.0)])
def test_a_retry_after_header_in_seconds_is_used(header: str, seconds: float) -> None:
    assert retry_after(http_error(header, status=503)) == seconds


def test_a_retry_after_header_as_an_http_date_is_the_time_until_then() -> None:
    seconds = retry_after(http_error(http_date(120)))
    assert seconds is not None
    assert 115.0 <= seconds <= 120.0  # the date has whole seconds; the test takes a moment


def test_an_http_date_without_a_zone_is_read_as_utc() -> None:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=300)
    header = email.utils.format_datetime(moment.replace(tzinfo=None))  # "... -0000"
    assert header.endswith("-0000")
    seconds = retry_after(http_error(header))
    assert seconds is not None
    assert 295.0 <= seconds <= 300.0


def test_an_http_date_in_the_past_is_no_wait() -> None:
    assert retry_after(http_error("Wed, 21 Oct 2015 07:28:00 GMT")) == 0.0


@pytest.mark.parametrize("header", ["soon", "", "12 seconds", "Wed, 99 Foo 2015"])
def test_a_malformed_retry_after_is_none(header: str) -> None:
    assert retry_after(http_error(header)) is None


@pytest.mark.parametrize("value", [-5, -0.1, -math.inf])
def test_a_negative_delay_is_no_wait(value: float) -> None:
    assert retry_after(RetryLaterError("429", retry_after=value)) == 0.0


@pytest.mark.parametrize(
    "error",
    [
        RetryLaterError("429", retry_after=86_400),
        http_error("86400"),
        http_error("inf"),
        http_error("Wed, 21 Oct 2099 07:28:00 GMT"),
    ],
)
def test_a_delay_longer_than_the_cap_is_capped(error: BaseException) -> None:
    assert retry_after(error) == MAX_RETRY_AFTER_SECONDS == 3600.0


def test_a_delay_at_the_cap_is_kept() -> None:
    assert retry_after(RetryLaterError("429", retry_after=3600)) == 3600.0
    assert retry_after(RetryLaterError("429", retry_after=3599.5)) == 3599.5


@pytest.mark.parametrize("header", ["nan", "NaN"])
def test_a_nan_retry_after_is_treated_as_malformed(header: str) -> None:
    seconds = retry_after(http_error(header))
    assert seconds is None or 0.0 <= seconds <= MAX_RETRY_AFTER_SECONDS
