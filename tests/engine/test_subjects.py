"""Per-subject data keys (SubjectCodec, docs/data.md): each customer's payloads sealed with
their own key, stored wrapped; erase_subject crypto-shreds one customer and nobody else."""

from __future__ import annotations

import base64

import httpx
import pytest

from orchestrator import (
    ChainCodec,
    CodecContext,
    CompressionCodec,
    InvalidArgumentError,
    Keyring,
    Orchestrator,
    PayloadUndecodableError,
    SubjectCodec,
    WorkflowFunction,
    WorkflowStatus,
)
from orchestrator.http import create_app
from tests.conftest import AppFactory
from tests.engine.test_codec import CARD, EMAIL, KEY_1, raw_text

ERASED = "the data key of subject customer:c-7 was erased"
SUBJECT_TABLES = ("workflows", "steps", "events", "streams", "subject_keys")


def codec() -> ChainCodec:
    return ChainCodec(CompressionCodec(min_chars=64), SubjectCodec(Keyring({"m1": KEY_1}, "m1")))


def define(app: Orchestrator) -> WorkflowFunction[[dict[str, str]], str]:
    @app.step(name="charge")
    async def charge(card: str) -> dict[str, str]:
        return {"charged": card, "receipt_to": EMAIL}

    @app.workflow(name="receipt")
    async def receipt(email: str) -> str:
        return f"sent to {email}"

    @app.workflow(name="checkout")
    async def checkout(order: dict[str, str]) -> str:
        charged = await charge(order["card"])
        await app.set_event("receipt", charged)
        await app.write_stream("progress", {"email": order["email"]})
        await app.close_stream("progress")
        child = await app.start(receipt, order["email"], workflow_id=f"{order['id']}-receipt")
        return await child.result(timeout=10)

    return checkout


async def start(
    app: Orchestrator,
    checkout: WorkflowFunction[[dict[str, str]], str],
    workflow_id: str,
    subject: str | None,
) -> str:
    order = {"id": workflow_id, "card": CARD, "email": EMAIL}
    handle = await app.start(checkout, order, workflow_id=workflow_id, subject=subject)
    result: str = await handle.result(timeout=10)
    return result


async def test_erasing_one_subject_shreds_its_payloads_and_nobody_elses(
    make_app: AppFactory, database_url: str
) -> None:
    app = make_app(codec=codec())
    checkout = define(app)
    async with app:
        assert await start(app, checkout, "c7-a", "customer:c-7") == f"sent to {EMAIL}"
        assert await start(app, checkout, "c8-a", "customer:c-8") == f"sent to {EMAIL}"
        assert await start(app, checkout, "anon", None) == f"sent to {EMAIL}"
        raw = raw_text(database_url, SUBJECT_TABLES)
        assert CARD not in raw and EMAIL not in raw
        assert "~aes-gcm-subject:" in raw and "~aes-gcm:m1:" in raw  # no subject: master key
        # Data keys are stored wrapped under the master key ("m1:..."), never raw.
        keys = raw_text(database_url, ("subject_keys",))
        assert keys.count("'m1:") == 2
        # The child took its parent's subject.
        child = await app.retrieve("c7-a-receipt").status()
        assert child.attributes == {"subject": "customer:c-7"}

        assert await app.erase_subject("customer:c-7", reason="GDPR request 12", by="dpo")

        for workflow_id in ("c7-a", "c7-a-receipt"):
            info = await app.retrieve(workflow_id).status()
            assert info.status is WorkflowStatus.SUCCESS  # statuses, timings: intact
            assert info.finished_at is not None
            assert info.input == {"$undecodable": ERASED}
            assert info.output == {"$undecodable": ERASED}
        steps = await app.list_steps("c7-a")
        assert "charge" in [s.name for s in steps]
        assert {"$undecodable": ERASED} in [s.output for s in steps]
        with pytest.raises(PayloadUndecodableError, match="erased"):
            await app.retrieve("c7-a").result(timeout=5)
        with pytest.raises(PayloadUndecodableError):
            await app.get_event("c7-a", "receipt")
        entries, _ = await app.list_audit(action="erase_subject")
        assert [(e.actor, e.detail) for e in entries] == [
            ("dpo", {"subject": "customer:c-7", "erased": True})
        ]
        # The other customer, and the saga without a subject: fully readable.
        other = await app.retrieve("c8-a").status()
        assert other.input["args"][0]["card"] == CARD
        assert await app.retrieve("c8-a").result(timeout=5) == f"sent to {EMAIL}"
        assert await app.get_event("c8-a", "receipt") == {"charged": CARD, "receipt_to": EMAIL}
        assert (await app.retrieve("anon").status()).input["args"][0]["card"] == CARD

        # Over HTTP (the console and CLI read the same answers): the marker, never an error.
        transport = httpx.ASGITransport(app=create_app(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            shown = await http.get("/workflows/c7-a")
            assert shown.status_code == 200, shown.text
            assert shown.json()["input"] == {"$undecodable": ERASED}
            assert shown.json()["status"] == "SUCCESS"

        # The erased subject starts again with a new key; erasing it twice is a no-op.
        assert await start(app, checkout, "c7-b", "customer:c-7") == f"sent to {EMAIL}"
        assert (await app.retrieve("c7-a").status()).input == {"$undecodable": ERASED}
        assert not await app.erase_subject("customer:c-404")


async def test_a_fresh_process_sees_the_erasure(make_app: AppFactory) -> None:
    first = make_app(codec=codec())
    checkout = define(first)
    async with first:
        await start(first, checkout, "s-1", "customer:c-7")
    second = make_app(codec=codec(), executor_id="second")
    define(second)
    async with second:
        assert (await second.retrieve("s-1").status()).input["args"][0]["card"] == CARD
        assert await second.erase_subject("customer:c-7")
        assert (await second.retrieve("s-1").status()).input == {"$undecodable": ERASED}


async def test_subject_is_reserved_and_accepted_without_a_codec(make_app: AppFactory) -> None:
    app = make_app()
    checkout = define(app)
    async with app:
        await start(app, checkout, "plain-1", "customer:c-7")  # stored, nothing encrypted
        info = await app.retrieve("plain-1").status()
        assert info.attributes == {"subject": "customer:c-7"}
        with pytest.raises(InvalidArgumentError, match="reserved"):
            await app.start(checkout, {}, attributes={"subject": "x"})


def test_a_wrapped_key_is_bound_to_its_subject() -> None:
    subjects = SubjectCodec(Keyring({"m1": KEY_1}, "m1"))
    key_id, wrapped = subjects.new_key("customer:c-7")
    assert len(subjects.unwrap("customer:c-7", key_id, wrapped)) == 32
    assert len(base64.b64decode(wrapped.partition(":")[2])) == 12 + 32 + 16
    with pytest.raises(PayloadUndecodableError):
        subjects.unwrap("customer:c-8", key_id, wrapped)  # a row moved to another subject


async def test_erasure_over_http_and_from_the_cli(make_app: AppFactory, database_url: str) -> None:
    import asyncio
    import subprocess
    import sys

    app = make_app(codec=codec())
    checkout = define(app)
    async with app:
        await start(app, checkout, "h-1", "customer:c-9")
        transport = httpx.ASGITransport(app=create_app(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            answer = await http.post(
                "/admin/subjects/customer:c-9/erase", json={"reason": "erasure request 7"}
            )
            assert answer.json() == {"subject": "customer:c-9", "erased": True}
            shown = (await http.get("/workflows/h-1")).json()
            assert shown["status"] == "SUCCESS" and set(shown["input"]) == {"$undecodable"}
        entries, _ = await app.list_audit(action="erase_subject")
        assert entries[0].reason == "erasure request 7" and entries[0].surface == "http"
    command = [
        sys.executable, "-m", "orchestrator.cli", "subjects", "erase", "customer:c-10",
        "--reason", "no such key", "--yes", "--database-url", database_url, "--app-name", "test",
    ]  # fmt: skip
    cli = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=60, check=False
    )
    assert cli.returncode == 0, cli.stderr
    assert "had no data key" in cli.stdout


# -- messages by business key: sealed for the subject of the workflow that gets them ---------


def raw_messages(database_url: str) -> list[tuple[str, str]]:
    """(destination, payload) of every stored message, as the database holds them."""
    query = "SELECT destination_id, payload FROM {}messages ORDER BY message_id"
    if database_url.startswith("sqlite:///"):
        import sqlite3

        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            return list(db.execute(query.format("")))
    import psycopg

    with psycopg.connect(database_url) as db:
        return list(db.execute(query.format("orchestrator.")).fetchall())  # type: ignore[arg-type]


def key_id_of(database_url: str, subject: str) -> str:
    return raw_text(database_url, ("subject_keys",)).split(f"'{subject}', '", 1)[1].split("'")[0]


def payer(app: Orchestrator) -> WorkflowFunction[[], dict[str, str]]:
    @app.workflow(name="payer")
    async def payer() -> dict[str, str]:
        paid: dict[str, str] = await app.recv("payment", timeout=30)
        return paid

    return payer


async def test_messages_by_key_are_sealed_for_their_subject_and_shredded_with_it(
    make_app: AppFactory, database_url: str
) -> None:
    app = make_app(codec=codec())
    pay = payer(app)
    async with app:
        # Sent to a holder that has a subject: sealed under its data key in the send.
        held = await app.start(
            pay, workflow_id="held", subject="customer:c-7", attributes={"order_id": "1"}
        )
        sent = await app.send_to_key("order_id:1", {"card": CARD}, topic="payment")
        assert sent.workflow_id == "held"
        # Kept (no holder yet), then claimed by starts with a subject: sealed again in them.
        for order in ("2", "3"):
            kept = await app.send_to_key(f"order_id:{order}", {"card": CARD}, topic="payment")
            assert not kept.delivered
        assert "~aes-gcm:m1:" in raw_text(database_url, ("pending_messages",))  # master key
        late = await app.start(
            pay, workflow_id="late", subject="customer:c-7", attributes={"order_id": "2"}
        )
        other = await app.start(
            pay, workflow_id="other", subject="customer:c-8", attributes={"order_id": "3"}
        )
        for handle in (held, late, other):
            assert await handle.result(timeout=10) == {"card": CARD}

        stored = raw_messages(database_url)
        assert [wid for wid, _ in stored] == ["held", "late", "other"]
        assert CARD not in repr(stored) and not raw_text(database_url, ("pending_messages",))
        c7, c8 = key_id_of(database_url, "customer:c-7"), key_id_of(database_url, "customer:c-8")
        expected = {"held": c7, "late": c7, "other": c8}
        for wid, payload in stored:  # none left under the master key
            assert payload.startswith(f"~aes-gcm-subject:{expected[wid]}:"), (wid, payload)

        assert await app.erase_subject("customer:c-7", reason="GDPR request 13")
        # The master keyring alone reads none of c-7's messages now; c-8's still reads.
        for wid, payload in stored[:2]:
            with pytest.raises(PayloadUndecodableError):
                codec().decode(payload, CodecContext(wid, "message"))
        for wid in ("held", "late"):
            received = [s.output for s in await app.list_steps(wid) if s.name.endswith("recv")]
            assert received == [{"$undecodable": ERASED}], received
            assert (await app.retrieve(wid).status()).output == {"$undecodable": ERASED}
        other_steps = await app.list_steps("other")
        assert {"card": CARD} in [s.output for s in other_steps]
        assert await app.retrieve("other").result(timeout=5) == {"card": CARD}
        # A fork of it (subject and key copied) claims what was kept for the key since.
        await app.send_to_key("order_id:3", {"card": "5500"}, topic="payment")
        fork = await app.fork("other", 1, new_workflow_id="other-fork")
        assert await fork.result(timeout=10) == {"card": "5500"}
        [(wid, payload)] = raw_messages(database_url)[3:]
        assert wid == "other-fork" and payload.startswith(f"~aes-gcm-subject:{c8}:")


@pytest.mark.postgres
async def test_a_transactional_start_seals_the_messages_it_claims(postgres_url: str) -> None:
    import psycopg

    app = Orchestrator("tx", postgres_url, codec=codec(), executor_id="tx", app_version="t")
    pay = payer(app)
    async with app:
        await app.send_to_key("order_id:9", {"card": CARD}, topic="payment")
        async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
            handle = await app.start_in(
                conn, pay, workflow_id="tx-1", subject="customer:c-7", attributes={"order_id": 9}
            )
            # Claimed and sealed again on the caller's connection, not yet visible elsewhere.
            assert raw_messages(postgres_url) == []
            await conn.commit()
        assert await handle.result(timeout=10) == {"card": CARD}
        [(wid, payload)] = raw_messages(postgres_url)
        key_id = key_id_of(postgres_url, "customer:c-7")
        assert wid == "tx-1" and payload.startswith(f"~aes-gcm-subject:{key_id}:")
        assert await app.erase_subject("customer:c-7")
        with pytest.raises(PayloadUndecodableError):
            codec().decode(payload, CodecContext(wid, "message"))
