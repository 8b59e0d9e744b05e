"""Size limits (issue #20, item 3), on both stores: a value over ``max_payload_bytes`` fails the
call that would store it with PayloadTooLargeError, and the workflow ends (never stalls); a
value at the limit passes; an error longer than the limit is recorded cut to fit."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from orchestrator import (
    ConfigurationError,
    Orchestrator,
    PayloadTooLargeError,
    Retry,
    SerializationError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowStatus,
)
from orchestrator.http import create_app
from orchestrator.serialization import decode_error, encode_error
from tests.conftest import AppFactory
from tests.http.conftest import start_server

LIMIT = 1000  # bytes: every test's max_payload_bytes
BIG = "x" * LIMIT  # encoded as JSON (quoted), over the limit on its own


class LongError(Exception):
    """An exception with a message longer than LIMIT (module level: rebuilt when read back)."""


def check_error(error: BaseException, what: str) -> None:
    """The documented error: names what was too large, its size, the limit and the setting."""
    assert isinstance(error, PayloadTooLargeError)
    assert isinstance(error, SerializationError)
    assert error.code == "payload_too_large"
    assert error.http_status == 413
    assert what in error.message, error.message
    assert error.detail["what"].startswith(what)
    assert error.detail["size"] > error.detail["limit"] == LIMIT
    assert f"{error.detail['size']} bytes" in error.message
    assert str(LIMIT) in error.message
    assert "ORCHESTRATOR_MAX_PAYLOAD_BYTES" in error.message


async def test_a_start_over_the_limit_raises_and_stores_nothing(make_app: AppFactory) -> None:
    app = make_app(max_payload_bytes=LIMIT)

    @app.workflow(name="echo")
    async def echo(value: str) -> str:
        return value

    async with app:
        at_limit = LIMIT - len(echo.signature.encode_input(("",), {}))
        assert len(echo.signature.encode_input(("y" * at_limit,), {})) == LIMIT
        handle = await app.start(echo, "y" * at_limit, workflow_id="at-limit")
        assert await handle.result(timeout=10) == "y" * at_limit
        with pytest.raises(PayloadTooLargeError) as raised:
            await app.start(echo, "y" * (at_limit + 1), workflow_id="over")
        check_error(raised.value, "the input of workflow 'echo'")
        assert raised.value.detail["size"] == LIMIT + 1
        with pytest.raises(WorkflowNotFoundError):
            await app.retrieve("over").status()
        # Multi-byte characters count as their UTF-8 (here: escaped) bytes, not characters.
        with pytest.raises(PayloadTooLargeError):
            await app.start(echo, "é" * (LIMIT // 4))


async def test_a_workflow_output_over_the_limit_ends_it_in_error(make_app: AppFactory) -> None:
    app = make_app(max_payload_bytes=LIMIT)

    @app.workflow(name="grow")
    async def grow(n: int) -> str:
        return "z" * n

    async with app:
        assert await (await app.start(grow, LIMIT - 2)).result(timeout=10) == "z" * (LIMIT - 2)
        handle = await app.start(grow, LIMIT - 1, workflow_id="grown")
        with pytest.raises(PayloadTooLargeError) as raised:
            await handle.result(timeout=10)
        check_error(raised.value, "the output of workflow 'grow'")
        info = await handle.status()
        assert info.status is WorkflowStatus.ERROR
        assert info.error_type is not None and info.error_type.endswith("PayloadTooLargeError")
        assert info.error is not None and "the output of workflow" in info.error
        # The stored error reads back as the same error, with its detail.
        with pytest.raises(PayloadTooLargeError) as again:
            await app.retrieve("grown").result(timeout=10)
        assert again.value.detail["size"] == LIMIT + 1


async def test_a_step_output_over_the_limit_fails_the_step_and_the_saga_rolls_back(
    make_app: AppFactory,
) -> None:
    app = make_app(max_payload_bytes=LIMIT)
    calls: list[str] = []
    undone: list[Any] = []

    @app.step(name="reserve")
    async def reserve(order: str) -> dict[str, str]:
        calls.append("reserve")
        return {"reservation": f"r-{order}"}

    @reserve.compensation
    async def release(order: str, reservation: dict[str, str]) -> None:
        undone.append((order, reservation))

    @app.step(name="fetch")
    async def fetch(order: str) -> str:
        calls.append("fetch")
        return BIG

    @fetch.compensation
    async def unfetch(order: str, result: str) -> None:
        undone.append("unfetch")  # never: the step has no recorded result

    @app.workflow(name="checkout")
    async def checkout(order: str) -> str:
        await reserve(order)
        return await fetch(order)

    async with app:
        handle = await app.start(checkout, "o1", workflow_id="checkout-1")
        with pytest.raises(WorkflowFailedError) as raised:
            await handle.result(timeout=10)
        assert raised.value.error_type.endswith("PayloadTooLargeError")
        assert "the output of step 'fetch'" in raised.value.error_message
        assert (await handle.status()).status is WorkflowStatus.COMPENSATED
        assert calls == ["reserve", "fetch"]  # not retried: a size never shrinks
        # The compensation got the first step's arguments and output, as recorded.
        assert undone == [("o1", {"reservation": "r-o1"})]
        steps = {step.name: step for step in await app.list_steps("checkout-1")}
        assert steps["fetch"].status == "ERROR"
        assert steps["fetch"].output is None and steps["fetch"].compensation is None
        assert steps["fetch"].attempts == 1


async def test_a_step_output_over_the_limit_can_be_caught_in_the_workflow(
    make_app: AppFactory,
) -> None:
    app = make_app(max_payload_bytes=LIMIT)

    @app.step(name="big")
    async def big() -> str:
        return BIG

    @app.workflow(name="careful")
    async def careful() -> str:
        try:
            return await big()
        except PayloadTooLargeError as exc:
            return f"caught: {exc.detail['what']}"

    async with app:
        result = await (await app.start(careful)).result(timeout=10)
        assert result == "caught: the output of step 'big'"


async def test_messages_events_and_stream_items_over_the_limit_are_refused(
    make_app: AppFactory,
) -> None:
    app = make_app(max_payload_bytes=LIMIT)
    seen: dict[str, str] = {}

    @app.workflow(name="publisher")
    async def publisher() -> dict[str, str]:
        calls: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("send", lambda: app.send("elsewhere", BIG, topic="t")),
            ("event", lambda: app.set_event("url", BIG)),
            ("stream", lambda: app.write_stream("items", BIG)),
        ]
        for kind, call in calls:
            try:
                await call()
            except PayloadTooLargeError as exc:
                check_error(exc, "")
                seen[kind] = exc.detail["what"]
        await app.set_event("url", "small")  # the refused calls took no step numbers
        return seen

    @app.workflow(name="inbox")
    async def inbox() -> Any:
        return await app.recv("t", timeout=30)

    async with app:
        result = await (await app.start(publisher, workflow_id="pub")).result(timeout=10)
        assert result == {
            "send": "the message to workflow 'elsewhere' on topic 't'",
            "event": "the value of event 'url'",
            "stream": "an item of stream 'items'",
        }
        assert await app.get_event("pub", "url", timeout=5) == "small"

        waiting = await app.start(inbox, workflow_id="inbox")
        with pytest.raises(PayloadTooLargeError) as raised:
            await app.send("inbox", BIG, topic="t")
        check_error(raised.value, "the message to workflow 'inbox' on topic 't'")
        await app.send("inbox", "ok", topic="t")  # nothing was stored: "ok" is the first
        assert await waiting.result(timeout=10) == "ok"


async def test_an_error_longer_than_the_limit_is_recorded_cut_to_fit(
    make_app: AppFactory,
) -> None:
    app = make_app(max_payload_bytes=LIMIT)

    @app.step(name="explode", retry=Retry(max_attempts=1))
    async def explode() -> None:
        raise LongError("boom " * 1000)

    @app.workflow(name="exploding")
    async def exploding() -> None:
        await explode()

    async with app:
        handle = await app.start(exploding, workflow_id="long-error")
        with pytest.raises(LongError):  # (this process: the exception itself, whole)
            await handle.result(timeout=10)
        record = await app.store.get_workflow("long-error")
        assert record is not None and record.status is WorkflowStatus.ERROR
        assert record.error is not None and len(record.error) <= LIMIT
        stored = json.loads(record.error)
        assert stored["type"].endswith("LongError")
        assert stored["message"].startswith("boom boom")
        assert "[truncated:" in stored["message"]
        assert "max_payload_bytes (1000)" in stored["message"]
        # As read back by another process: the same class, the message cut.
        rebuilt = decode_error(record.error)
        assert isinstance(rebuilt, LongError) and "[truncated:" in str(rebuilt)
        step = (await app.list_steps("long-error"))[0]
        assert step.status == "ERROR" and step.error is not None and len(step.error) < LIMIT


async def test_the_setting_is_validated_and_read_from_the_environment(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for bad in (0, -1):
        with pytest.raises(ConfigurationError, match="max_payload_bytes"):
            Orchestrator("limits", database_url, max_payload_bytes=bad)
    monkeypatch.setenv("ORCHESTRATOR_MAX_PAYLOAD_BYTES", "0")
    with pytest.raises(ConfigurationError, match="ORCHESTRATOR_MAX_PAYLOAD_BYTES"):
        Orchestrator("limits", database_url)
    monkeypatch.setenv("ORCHESTRATOR_MAX_PAYLOAD_BYTES", str(LIMIT))
    app = Orchestrator("limits", database_url, app_version="test")

    @app.workflow(name="echo")
    async def echo(value: str) -> str:
        return value

    async with app:
        with pytest.raises(PayloadTooLargeError):
            await app.start(echo, BIG)


async def test_http_start_and_send_over_the_limit_answer_413(make_app: AppFactory) -> None:
    app = make_app(max_payload_bytes=LIMIT)

    @app.workflow(name="echo")
    async def echo(value: str) -> str:
        return value

    @app.workflow(name="inbox")
    async def inbox() -> Any:
        return await app.recv("t", timeout=30)

    server = start_server(create_app(app, max_body_bytes=64 * 1024))
    try:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
            over = await http.post("/workflows/echo", json={"value": BIG})
            assert over.status_code == 413, over.text
            body = over.json()
            assert body["error"] == "payload_too_large"
            assert body["detail"]["what"] == "the input of workflow 'echo'"
            assert body["detail"]["limit"] == LIMIT
            assert "ORCHESTRATOR_MAX_PAYLOAD_BYTES" in body["message"]

            started = await http.post("/workflows/inbox", json={}, headers={"Idempotency-Key": "i"})
            assert started.status_code == 202, started.text
            sent = await http.post("/workflows/i/messages/t", json=BIG)
            assert sent.status_code == 413, sent.text
            assert sent.json()["error"] == "payload_too_large"
            assert sent.json()["detail"]["what"] == "the message to workflow 'i' on topic 't'"
            assert (await http.post("/workflows/i/messages/t", json="ok")).status_code < 300
            result = await http.get("/workflows/i/result", params={"timeout": 10})
            assert result.json() == {"status": "SUCCESS", "output": "ok"}
    finally:
        server.stop()


@pytest.mark.parametrize("limit", [1, 150, 400, 5000])
@pytest.mark.parametrize("text", ["boom " * 2000, "é" * 3000, '"\\' * 3000])
def test_encode_error_always_fits_or_keeps_only_its_type(limit: int, text: str) -> None:
    encoded = encode_error(PayloadTooLargeError(text, what="x" * 3000), limit)
    stored = json.loads(encoded)
    assert stored["type"] == "orchestrator.errors.PayloadTooLargeError"
    skeleton = len(json.dumps({**stored, "message": "", "args": None, "detail": None}))
    assert len(encoded) <= limit or stored["message"].startswith("... [truncated")
    assert len(encoded) <= max(limit, skeleton + 200)
    assert isinstance(decode_error(encoded), PayloadTooLargeError)
