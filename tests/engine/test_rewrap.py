"""Retiring a master key (docs/data.md): after a rotation, rewrap_data_keys wraps every
subject's data key under the new master key, so a keyring WITHOUT the old one reads every
payload of every subject; erasure still shreds a subject afterwards. Both stores."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator import (
    ConfigurationError,
    InvalidArgumentError,
    Keyring,
    Orchestrator,
    PayloadUndecodableError,
    SubjectCodec,
    WorkflowFunction,
)
from orchestrator.cli import cli
from tests.conftest import AppFactory
from tests.engine.test_codec import CARD, KEY_1, KEY_2, raw_text

SUBJECTS = ("customer:c-1", "customer:c-2", "customer:c-3")


def subject_codec(keys: dict[str, bytes], current: str) -> SubjectCodec:
    return SubjectCodec(Keyring(keys, current))


def define(app: Orchestrator) -> WorkflowFunction[[str], dict[str, str]]:
    @app.step(name="charge")
    async def charge(card: str) -> dict[str, str]:
        return {"charged": card}

    @app.workflow(name="pay")
    async def pay(card: str) -> dict[str, str]:
        charged = await charge(card)
        await app.set_event("charged", charged)
        return charged

    return pay


async def read_all(app: Orchestrator, workflow_ids: list[str]) -> dict[str, list[Any]]:
    """Every payload of these workflows, read back: output, event, step outputs."""
    values: dict[str, list[Any]] = {}
    for workflow_id in workflow_ids:
        values[workflow_id] = [
            await app.retrieve(workflow_id).result(timeout=10),
            await app.get_event(workflow_id, "charged", timeout=0),
            *(step.output for step in await app.list_steps(workflow_id)),
        ]
    return values


def wrapped_under(database_url: str) -> str:
    return raw_text(database_url, ("subject_keys",))


async def test_after_rotation_and_rewrap_the_old_master_key_can_go(
    make_app: AppFactory, database_url: str
) -> None:
    old = make_app(codec=subject_codec({"m1": KEY_1}, "m1"))
    pay = define(old)
    async with old:
        for n, subject in enumerate(SUBJECTS):
            handle = await old.start(pay, CARD, workflow_id=f"pay-{n}", subject=subject)
            await handle.result(timeout=10)
        before = await read_all(old, ["pay-0", "pay-1", "pay-2"])
    assert all(v[:3] == [{"charged": CARD}] * 3 for v in before.values())  # output, event, step
    assert wrapped_under(database_url).count("'m1:") == 3

    # Without the old master key, nothing can be unwrapped: a clear error, nothing changed.
    bare = make_app(codec=subject_codec({"m2": KEY_2}, "m2"))
    define(bare)
    async with bare:
        with pytest.raises(PayloadUndecodableError, match="not in the keyring: 'm1' \\(3\\)"):
            await bare.rewrap_data_keys()
    assert wrapped_under(database_url).count("'m1:") == 3

    # Rotated (m2 current, m1 kept to decrypt): two rewraps at once, one key per batch.
    rotated = make_app(codec=subject_codec({"m1": KEY_1, "m2": KEY_2}, "m2"))
    define(rotated)
    async with rotated:
        counts = await asyncio.gather(
            rotated.rewrap_data_keys(batch_size=1, reason="rotation 2025-07"),
            rotated.rewrap_data_keys(batch_size=1),
        )
        assert sum(counts) == 3  # each key rewrapped once, by one of them
        assert await rotated.rewrap_data_keys() == 0  # resumable: nothing is left
        entries, _ = await rotated.list_audit(action="rewrap_data_keys")
        assert {entry.reason for entry in entries} >= {"rotation 2025-07"}
    raw = wrapped_under(database_url)
    assert raw.count("'m2:") == 3 and "'m1:" not in raw

    # The old master key retired: every payload of every subject still reads.
    retired = make_app(codec=subject_codec({"m2": KEY_2}, "m2"))
    pay = define(retired)
    async with retired:
        assert await read_all(retired, ["pay-0", "pay-1", "pay-2"]) == before
        # A subject's later workflows use its (rewrapped) key; erasure still shreds.
        handle = await retired.start(pay, CARD, workflow_id="pay-1b", subject="customer:c-2")
        assert await handle.result(timeout=10) == {"charged": CARD}
        assert await retired.erase_subject("customer:c-2", reason="request 4")
        for workflow_id in ("pay-1", "pay-1b"):
            with pytest.raises(PayloadUndecodableError, match="customer:c-2 was erased"):
                await retired.retrieve(workflow_id).result(timeout=10)
        del before["pay-1"]
        assert await read_all(retired, ["pay-0", "pay-2"]) == before


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no store involved
async def test_rewrap_needs_a_subject_codec_and_a_sane_batch(make_app: AppFactory) -> None:
    plain = make_app()
    async with plain:
        with pytest.raises(ConfigurationError, match="needs a SubjectCodec"):
            await plain.rewrap_data_keys()
    app = make_app(codec=subject_codec({"m1": KEY_1}, "m1"))
    async with app:
        with pytest.raises(InvalidArgumentError, match="batch_size"):
            await app.rewrap_data_keys(batch_size=0)
        assert await app.rewrap_data_keys() == 0  # no data keys at all


@pytest.mark.sqlite
def test_saga_subjects_rewrap(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/keys.db"
    monkeypatch.setenv("KEYS_APP_URL", url)

    async def create() -> None:
        app = Orchestrator("keys", url, codec=subject_codec({"m1": KEY_1}, "m1"))
        pay = define(app)
        async with app:
            await (await app.start(pay, CARD, subject="customer:c-1")).result(timeout=10)

    asyncio.run(create())
    answer = CliRunner().invoke(
        cli, ["subjects", "rewrap", "--app", "tests.engine.keys_app:app", "--reason", "rotated"]
    )
    assert answer.exit_code == 0, answer.output
    assert "rewrapped 1 data key(s)" in answer.output
    assert wrapped_under(url).count("'m2:") == 1
