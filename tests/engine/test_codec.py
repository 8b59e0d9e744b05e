"""Payload codecs (orchestrator/codec.py): encrypted and compressed stored values on both
stores, key rotation, lost keys shown as undecodable, mixed plaintext rows, no codec as before."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import psycopg
import pytest

from orchestrator import (
    AesGcmCodec,
    ChainCodec,
    CodecContext,
    CompressionCodec,
    ConfigurationError,
    Keyring,
    Orchestrator,
    PayloadUndecodableError,
    WorkflowFunction,
    WorkflowStatus,
)
from orchestrator.http import create_app
from tests.conftest import AppFactory

CARD = "4111111111111111"
EMAIL = "jane.doe@example.com"
KEY_1 = bytes(range(32))
KEY_2 = bytes(range(32, 64))


def aes(keys: dict[str, bytes], current: str) -> ChainCodec:
    return ChainCodec(CompressionCodec(min_chars=64), AesGcmCodec(Keyring(keys, current)))


PAYLOAD_TABLES = ("workflows", "steps", "messages", "events", "streams", "pending_messages")


def raw_text(database_url: str, tables: tuple[str, ...] = PAYLOAD_TABLES) -> str:
    """Every row of the payload tables, as the database holds them."""
    if database_url.startswith("sqlite:///"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            rows = [row for table in tables for row in db.execute(f"SELECT * FROM {table}")]
    else:
        with psycopg.connect(database_url) as db:
            rows = [
                row
                for table in tables
                for row in db.execute(f"SELECT * FROM orchestrator.{table}").fetchall()
            ]
    return "\n".join(repr(row) for row in rows)


def define(app: Orchestrator) -> WorkflowFunction[[dict[str, str]], str]:
    @app.step(name="charge")
    async def charge(card: str) -> dict[str, str]:
        return {"charged": card, "receipt_to": EMAIL}

    @app.workflow(name="checkout")
    async def checkout(order: dict[str, str]) -> str:
        receipt = await charge(order["card"])
        await app.set_event("receipt", receipt)
        await app.write_stream("progress", {"email": order["email"]})
        await app.close_stream("progress")
        note = await app.recv("note", timeout=10)
        return f"{receipt['receipt_to']} {note}"

    return checkout


async def run_checkout(app: Orchestrator, workflow_id: str) -> str:
    checkout = define(app)
    async with app:
        handle = await app.start(checkout, {"card": CARD, "email": EMAIL}, workflow_id=workflow_id)
        await app.send(workflow_id, {"card": CARD}, topic="note")
        result: str = await handle.result(timeout=10)
        return result


async def test_an_encrypted_saga_runs_and_its_rows_hold_no_plaintext(
    make_app: AppFactory, database_url: str
) -> None:
    app = make_app(codec=aes({"k1": KEY_1}, "k1"))
    assert await run_checkout(app, "enc-1") == f"{EMAIL} {{'card': '{CARD}'}}"
    raw = raw_text(database_url)
    assert CARD not in raw
    assert EMAIL not in raw
    assert "~aes-gcm:k1:" in raw
    # Read through the app, everything is plain again.
    async with app:
        info = await app.retrieve("enc-1").status()
        assert info.input == {"args": [{"card": CARD, "email": EMAIL}], "kwargs": {}}
        steps = await app.list_steps("enc-1")
        assert {"charged": CARD, "receipt_to": EMAIL} in [s.output for s in steps]
        assert await app.get_event("enc-1", "receipt") == {"charged": CARD, "receipt_to": EMAIL}


async def test_rotation_new_writes_use_the_new_key_and_old_rows_still_read(
    make_app: AppFactory, database_url: str
) -> None:
    await run_checkout(make_app(codec=aes({"k1": KEY_1}, "k1")), "old")
    rotated = make_app(codec=aes({"k1": KEY_1, "k2": KEY_2}, "k2"), executor_id="rotated")
    await run_checkout(rotated, "new")
    raw = raw_text(database_url)
    assert "~aes-gcm:k1:" in raw and "~aes-gcm:k2:" in raw
    async with rotated:
        old = await rotated.retrieve("old").status()
        assert old.input["args"][0]["card"] == CARD
        assert await rotated.retrieve("old").result(timeout=5) == f"{EMAIL} {{'card': '{CARD}'}}"

    # Without k1, the old saga's payloads are undecodable: shown as such, refused to run on;
    # its status, step names and timings stay readable, and the new saga is untouched.
    forgetful = make_app(codec=aes({"k2": KEY_2}, "k2"), executor_id="forgetful")
    define(forgetful)
    async with forgetful:
        old = await forgetful.retrieve("old").status()
        assert old.status is WorkflowStatus.SUCCESS
        assert set(old.input) == {"$undecodable"} and "'k1'" in old.input["$undecodable"]
        assert set(old.output) == {"$undecodable"}
        steps = await forgetful.list_steps("old")
        assert "charge" in [s.name for s in steps]
        assert all(s.finished_at is not None for s in steps)
        with pytest.raises(PayloadUndecodableError):
            await forgetful.retrieve("old").result(timeout=5)
        with pytest.raises(PayloadUndecodableError):
            await forgetful.get_event("old", "receipt")
        new = await forgetful.retrieve("new").status()
        assert new.input["args"][0]["email"] == EMAIL
        # Over HTTP (the console reads the same answers): the marker, never an error.
        transport = httpx.ASGITransport(app=create_app(forgetful))
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            shown = await http.get("/workflows/old")
            assert shown.status_code == 200, shown.text
            assert set(shown.json()["input"]) == {"$undecodable"}
            steps = await http.get("/workflows/old/steps")
            assert steps.status_code == 200, steps.text
            result = await http.get("/workflows/old/result")
            assert result.json()["error"] == "payload_undecodable", result.text


async def test_plaintext_rows_written_before_the_codec_still_read(
    make_app: AppFactory, database_url: str
) -> None:
    await run_checkout(make_app(), "plain")
    assert CARD in raw_text(database_url)  # no codec: stored as JSON, as before
    app = make_app(codec=aes({"k1": KEY_1}, "k1"), executor_id="later")
    define(app)
    async with app:
        assert (await app.retrieve("plain").status()).input["args"][0]["card"] == CARD
        assert await app.get_event("plain", "receipt") == {"charged": CARD, "receipt_to": EMAIL}


async def test_a_message_kept_for_a_business_key_is_encrypted_too(
    make_app: AppFactory, database_url: str
) -> None:
    app = make_app(codec=aes({"k1": KEY_1}, "k1"))

    @app.workflow(name="awaits_payment")
    async def awaits_payment() -> Any:
        return await app.recv("payment", timeout=30)

    async with app:
        kept = await app.send_to_key("order_id:42", {"card": CARD}, topic="payment")
        assert not kept.delivered
        assert CARD not in raw_text(database_url, ("pending_messages",))
        handle = await app.start(awaits_payment, attributes={"order_id": "42"})
        assert await handle.result(timeout=10) == {"card": CARD}
    assert CARD not in raw_text(database_url)


async def test_without_a_codec_the_store_is_not_wrapped(make_app: AppFactory) -> None:
    app = make_app()
    assert type(app.store).__name__ in {"SQLiteStore", "PostgresStore"}
    assert type(make_app(codec=CompressionCodec()).store).__name__ == "EncodedStore"


# -- the codecs alone (no database) ---------------------------------------------------------
CONTEXT = CodecContext("w", "input")


def test_compression_is_kept_only_when_it_saves_space() -> None:
    codec = CompressionCodec()
    short = '{"a":1}'
    assert codec.encode(short, CONTEXT) == short
    long = '{"items":' + "[1,2,3]," * 200 + "0}"
    packed = codec.encode(long, CONTEXT)
    assert packed.startswith("~z:") and len(packed) < len(long)
    assert codec.decode(packed, CONTEXT) == long
    assert codec.decode(short, CONTEXT) == short


def test_aes_gcm_round_trips_refuses_tampering_and_unknown_keys() -> None:
    codec = AesGcmCodec(Keyring({"k1": KEY_1}, "k1"))
    sealed = codec.encode('"secret"', CONTEXT)
    assert sealed.startswith("~aes-gcm:k1:") and "secret" not in sealed
    assert codec.encode('"secret"', CONTEXT) != sealed  # a fresh nonce each time
    assert codec.decode(sealed, CONTEXT) == '"secret"'
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(PayloadUndecodableError):
        codec.decode(tampered, CONTEXT)
    with pytest.raises(PayloadUndecodableError, match="'k9'"):
        codec.decode("~aes-gcm:k9:AAAA", CONTEXT)


@pytest.mark.parametrize(
    ("keys", "current"),
    [({"k1": b"short"}, "k1"), ({"k1": KEY_1}, "k2"), ({"a:b": KEY_1}, "a:b")],
)
def test_keyring_refuses_bad_keys(keys: dict[str, bytes], current: str) -> None:
    with pytest.raises(ConfigurationError):
        Keyring(keys, current)


def test_generated_keys_are_fresh_32_bytes() -> None:
    first: Any = Keyring.generate_key()
    assert len(first) == 32 and first != Keyring.generate_key()
