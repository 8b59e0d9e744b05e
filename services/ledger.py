"""Idempotency-Key handling: a ledger applies each keyed effect once and replays its answer.

Every mutating endpoint runs its effect through ``Ledger.run``: the first request with a key
applies the effect and stores the response in the same transaction; a repeat (a retried step,
a redelivery, a client that timed out) gets the stored response and changes nothing. Every
attempt is recorded too, so tests can prove "attempted twice, applied once".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.database import Cursor, Database

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status_code INTEGER NOT NULL,
    response TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS request_attempts (
    id TEXT PRIMARY KEY,
    key TEXT,
    endpoint TEXT NOT NULL,
    outcome TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS request_attempts_key ON request_attempts (key)
"""

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=255),
]
Outcome = tuple[int, dict[str, Any]]  # (status code, JSON body)
Effect = Callable[[Cursor], Outcome]


class Rejected(Exception):
    """A business refusal (409 out of stock, 422 bad address): the effect's writes roll back,
    but the answer is stored under the key like any other, so a repeat gets the same one."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(body.get("message"))
        self.status = status
        self.body = body


class Unavailable(Exception):
    """A transient failure: answered 503 and NOT stored, so a retry with the key may succeed."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


class Ledger:
    """The idempotency ledger of one service (tables in that service's database)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.script(SCHEMA)

    def _attempt(self, cursor: Cursor, key: str | None, endpoint: str, outcome: str) -> None:
        cursor.execute(
            "INSERT INTO request_attempts (id, key, endpoint, outcome, at) VALUES (?, ?, ?, ?, ?)",
            (uuid.uuid4().hex, key, endpoint, outcome, _now()),
        )

    def run(self, key: str | None, endpoint: str, body: Any, effect: Effect) -> JSONResponse:
        """Apply ``effect`` once per ``key`` (every time without a key) and answer with its
        response; a repeated key answers the stored response with ``Idempotent-Replayed``."""
        try:
            return self._run(key, endpoint, body, effect)
        except Rejected as refusal:  # its writes are rolled back; record the answer alone
            answer: Outcome = (refusal.status, refusal.body)
            return self._run(key, endpoint, body, lambda _: answer)

    def _run(self, key: str | None, endpoint: str, body: Any, effect: Effect) -> JSONResponse:
        request_hash = _hash({"endpoint": endpoint, "body": body})
        try:
            with self.db.transaction() as cursor:
                replayed = False
                if key is not None:
                    claimed = cursor.execute(
                        "INSERT INTO idempotency_keys"
                        " (key, endpoint, request_hash, status_code, response, created_at)"
                        " VALUES (?, ?, ?, 0, '', ?) ON CONFLICT (key) DO NOTHING",
                        (key, endpoint, request_hash, _now()),
                    ).rowcount
                    replayed = claimed == 0
                if replayed:
                    stored = cursor.execute(
                        "SELECT endpoint, request_hash, status_code, response"
                        " FROM idempotency_keys WHERE key = ?",
                        (key,),
                    ).one()
                    assert stored is not None
                    self._attempt(cursor, key, endpoint, "replayed")
                    if stored["request_hash"] != request_hash:
                        status, answer = (
                            422,
                            {
                                "error": "idempotency_key_reused",
                                "message": f"key {key!r} was used for another request "
                                f"({stored['endpoint']})",
                            },
                        )
                    else:
                        status, answer = stored["status_code"], json.loads(stored["response"])
                else:
                    status, answer = effect(cursor)
                    self._attempt(cursor, key, endpoint, "applied")
                    if key is not None:
                        cursor.execute(
                            "UPDATE idempotency_keys SET status_code = ?, response = ?"
                            " WHERE key = ?",
                            (status, json.dumps(answer), key),
                        )
        except Unavailable as exc:
            with self.db.transaction() as cursor:
                self._attempt(cursor, key, endpoint, "unavailable")
            return JSONResponse(
                {"error": "unavailable", "message": str(exc)},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        headers = {"Idempotent-Replayed": "true"} if replayed else {}
        return JSONResponse(answer, status_code=status, headers=headers)

    def entry(self, key: str) -> LedgerEntry:
        with self.db.transaction() as cursor:
            stored = cursor.execute(
                "SELECT endpoint, status_code FROM idempotency_keys WHERE key = ?", (key,)
            ).one()
            rows = cursor.execute(
                "SELECT outcome FROM request_attempts WHERE key = ?", (key,)
            ).all()
        outcomes = [row["outcome"] for row in rows]
        return LedgerEntry(
            key=key,
            endpoint=None if stored is None else stored["endpoint"],
            status_code=None if stored is None else stored["status_code"],
            attempts=len(outcomes),
            applied=outcomes.count("applied"),
            replayed=outcomes.count("replayed"),
            unavailable=outcomes.count("unavailable"),
        )

    def entries(self, prefix: str) -> list[LedgerEntry]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self.db.transaction() as cursor:
            rows = cursor.execute(
                "SELECT DISTINCT key FROM request_attempts WHERE key LIKE ? ESCAPE '\\'"
                " ORDER BY key",
                (escaped + "%",),
            ).all()
        return [self.entry(row["key"]) for row in rows]


class LedgerEntry(BaseModel):
    key: str
    endpoint: str | None
    status_code: int | None
    attempts: int
    applied: int
    replayed: int
    unavailable: int


def ledger_router(ledger: Ledger) -> APIRouter:
    """``GET /ledger?prefix=`` and ``GET /ledger/{key}``: what each key attempted and applied."""
    router = APIRouter(tags=["ledger"])

    @router.get("/ledger", response_model=list[LedgerEntry])
    def list_entries(prefix: Annotated[str, Query(min_length=1)]) -> list[LedgerEntry]:
        return ledger.entries(prefix)

    @router.get("/ledger/{key}", response_model=LedgerEntry)
    def get_entry(key: str) -> LedgerEntry:
        entry = ledger.entry(key)
        if entry.attempts == 0:
            raise HTTPException(404, f"no request with key {key!r}")
        return entry

    return router
