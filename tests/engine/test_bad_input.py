"""Input that once slipped through and corrupted or masked data (issue #15), on both stores:
arguments landing in the wrong parameter, values that could not be read back, unstorable
names, pydantic secrets stored as their mask."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr

from orchestrator import InvalidArgumentError
from orchestrator.errors import SerializationError
from tests.conftest import AppFactory


async def test_a_later_argument_given_alone_keeps_its_place(make_app: AppFactory) -> None:
    app = make_app()

    @app.workflow(name="greet")
    async def greet(greeting: str = "hello", name: str = "world") -> str:
        return f"{greeting}, {name}"

    async with app:
        assert await (await app.start(greet, name="alice")).result(timeout=10) == "hello, alice"
        assert await (await app.start(greet, "hi")).result(timeout=10) == "hi, world"
        assert await (await app.start(greet, name="bo", greeting="yo")).result(10) == "yo, bo"
        # The same call spelled two ways is the same input: one workflow id, no conflict.
        first = await app.start(greet, "hello", "carol", workflow_id="g")
        again = await app.start(greet, name="carol", workflow_id="g")
        assert again.workflow_id == first.workflow_id


@pytest.mark.parametrize(
    "value",
    ["\ud800", {"k": "x\udfff"}, json.loads("[" * 240 + "]" * 240)],
    ids=["surrogate", "surrogate-in-dict", "nested-240"],
)
async def test_values_that_cannot_be_read_back_are_refused_and_nothing_breaks(
    make_app: AppFactory, value: Any
) -> None:
    app = make_app()

    @app.workflow(name="echo")
    async def echo(value: Any) -> Any:
        return value

    @app.workflow(name="replies")
    async def replies() -> Any:
        await app.set_event("ready", True)
        return await app.recv("in", timeout=10)

    async with app:
        with pytest.raises(SerializationError):
            await app.start(echo, value)
        waiting = await app.start(replies, workflow_id="r")
        await app.get_event("r", "ready", timeout=10)
        with pytest.raises(SerializationError):
            await app.send("r", value, topic="in")
        await app.send("r", "fine", topic="in")
        assert await waiting.result(timeout=10) == "fine"
        infos = await app.list_workflows()
        assert [info.workflow_id for info in infos] == ["r"]
        assert await app.list_steps("r")


@pytest.mark.parametrize("name", ["a\x00b", "t" * 513, "\udc00"])
async def test_unstorable_names_are_refused(make_app: AppFactory, name: str) -> None:
    app = make_app()

    @app.workflow(name="idle")
    async def idle() -> None:
        await app.recv("x", timeout=10)

    async with app:
        await app.start(idle, workflow_id="i")
        with pytest.raises(InvalidArgumentError):
            await app.send("i", 1, topic=name)
        with pytest.raises(InvalidArgumentError):
            await app.send(name, 1)
        with pytest.raises(InvalidArgumentError):
            await app.start(idle, workflow_id=name)
        with pytest.raises(InvalidArgumentError):
            await app.get_event("i", name, timeout=0)
        with pytest.raises(InvalidArgumentError):
            await app.retrieve(name).status()
        await app.send("i", 1, topic="x")


class Card(BaseModel):
    holder: str
    number: SecretStr


async def test_secrets_are_stored_as_their_values_not_their_mask(make_app: AppFactory) -> None:
    app = make_app()
    seen: list[str] = []

    @app.step(name="charge")
    async def charge(card: Card, pin: SecretStr) -> SecretStr:
        seen.append(f"{card.number.get_secret_value()}/{pin.get_secret_value()}")
        return SecretStr("token-" + card.number.get_secret_value()[-4:])

    @app.workflow(name="pay")
    async def pay(card: Card, pin: SecretStr) -> str:
        token = await charge(card, pin)
        return token.get_secret_value()

    async with app:
        card = Card(holder="ann", number=SecretStr("4242424242424242"))
        handle = await app.start(pay, card, SecretStr("1234"))
        assert await handle.result(timeout=10) == "token-4242"
        assert seen == ["4242424242424242/1234"]
