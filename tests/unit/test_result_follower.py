"""Follower (engine/results.py): a result waiter of a run in this process follows its outcome
without owning it, and leaves nothing behind when it gives up."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator.engine.results import Follower


def callbacks(future: asyncio.Future[Any]) -> int:
    """How many done callbacks wait on ``future`` (the C future exposes them for debugging)."""
    return len(future._callbacks or [])


async def test_a_follower_resolves_as_the_outcome_does() -> None:
    loop = asyncio.get_running_loop()
    value, error = loop.create_future(), loop.create_future()
    first, second, failing = Follower(value), Follower(value), Follower(error)
    value.set_result("done")
    error.set_exception(KeyError("boom"))
    assert await first.future == "done"
    assert await second.future == "done"
    with pytest.raises(KeyError, match="boom"):
        await failing.future


async def test_an_outcome_already_there_is_awaited_as_it_is() -> None:
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    outcome.set_result("done")
    follower = Follower(outcome)
    assert follower.future is outcome
    follower.stop()
    assert await follower.future == "done"


async def test_a_waiter_that_gives_up_leaves_the_outcome_alone_and_no_callback() -> None:
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def wait(seconds: float) -> str:
        follower = Follower(outcome)
        try:
            return await asyncio.wait_for(follower.future, seconds)
        finally:
            follower.stop()

    for _ in range(50):  # a client polling a run that goes on for days
        with pytest.raises(TimeoutError):
            await wait(0.001)
    cancelled = asyncio.create_task(wait(60))
    await asyncio.sleep(0)
    assert callbacks(outcome) == 1
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert not outcome.done()
    assert callbacks(outcome) == 0
    staying = asyncio.create_task(wait(60))
    await asyncio.sleep(0)
    outcome.set_result("done")
    assert await staying == "done"


async def test_a_cancelled_outcome_cancels_its_followers() -> None:
    outcome: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    follower = Follower(outcome)
    outcome.cancel()
    with pytest.raises(asyncio.CancelledError):
        await follower.future
