"""The payment provider's webhook outbox: signed deliveries, retried with backoff until a 2xx.

Events are written to ``webhook_outbox`` in the same transaction as the payment's state
change, so none is lost; a background task delivers them (Standard Webhooks signatures, made
by the independent ``standardwebhooks`` package), retrying failures with exponential backoff
like real providers. The ``webhook-id`` stays the same across retries: receivers deduplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from standardwebhooks.webhooks import Webhook

from services.database import Cursor, Database

logger = logging.getLogger("services.payments.webhooks")

SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_outbox (
    event_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    next_attempt_at DOUBLE PRECISION NOT NULL,
    last_error TEXT,
    delivered_at TEXT
);
CREATE INDEX IF NOT EXISTS webhook_outbox_due ON webhook_outbox (status, next_attempt_at)
"""
POLL_SECONDS = 0.5  # the fallback when no in-process wake-up came
BATCH = 50
REQUEST_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class SenderConfig:
    url: str | None  # None: events are kept, not delivered
    secret: str | None
    base_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    max_attempts: int = 20

    @classmethod
    def from_env(cls) -> SenderConfig:
        env = os.environ.get
        return cls(
            url=env("PAYMENTS_WEBHOOK_URL") or None,
            secret=env("PAYMENTS_WEBHOOK_SECRET") or None,
            base_backoff_seconds=float(env("PAYMENTS_WEBHOOK_BACKOFF_SECONDS", "0.5")),
            max_backoff_seconds=float(env("PAYMENTS_WEBHOOK_MAX_BACKOFF_SECONDS", "30")),
            max_attempts=int(env("PAYMENTS_WEBHOOK_MAX_ATTEMPTS", "20")),
        )

    def backoff(self, attempts: int) -> float:
        return float(min(self.max_backoff_seconds, self.base_backoff_seconds * 2 ** (attempts - 1)))


def enqueue_event(cursor: Cursor, session_id: str, event_type: str, data: dict[str, Any]) -> str:
    """Add an event to the outbox (inside the caller's transaction); returns its id."""
    event_id = f"evt_{uuid.uuid4().hex}"
    payload = {
        "id": event_id,
        "type": event_type,
        "created": int(time.time()),
        "data": data,
    }
    cursor.execute(
        "INSERT INTO webhook_outbox (event_id, session_id, type, payload, status, attempts,"
        " next_attempt_at) VALUES (?, ?, ?, ?, 'pending', 0, ?)",
        (event_id, session_id, event_type, json.dumps(payload), time.time()),
    )
    return event_id


class WebhookSender:
    """Delivers due outbox events until stopped."""

    def __init__(self, db: Database, config: SenderConfig) -> None:
        self.db = db
        self.config = config
        self.wake = asyncio.Event()
        self._signer = Webhook(config.secret) if config.secret else None

    def _due(self) -> list[dict[str, Any]]:
        with self.db.transaction() as cursor:
            return cursor.execute(
                "SELECT event_id, payload, attempts FROM webhook_outbox"
                " WHERE status = 'pending' AND next_attempt_at <= ?"
                " ORDER BY next_attempt_at LIMIT ?",
                (time.time(), BATCH),
            ).all()

    def _record(self, event_id: str, attempts: int, error: str | None) -> None:
        with self.db.transaction() as cursor:
            if error is None:
                cursor.execute(
                    "UPDATE webhook_outbox SET status = 'delivered', attempts = ?,"
                    " delivered_at = ?, last_error = NULL WHERE event_id = ?",
                    (attempts, dt.datetime.now(dt.UTC).isoformat(), event_id),
                )
                return
            given_up = attempts >= self.config.max_attempts
            cursor.execute(
                "UPDATE webhook_outbox SET status = ?, attempts = ?, last_error = ?,"
                " next_attempt_at = ? WHERE event_id = ?",
                (
                    "failed" if given_up else "pending",
                    attempts,
                    error[:500],
                    time.time() + self.config.backoff(attempts),
                    event_id,
                ),
            )

    async def _deliver(self, client: httpx.AsyncClient, event: dict[str, Any]) -> None:
        assert self.config.url is not None and self._signer is not None
        attempts = event["attempts"] + 1
        now = dt.datetime.now(dt.UTC)
        body: str = event["payload"]
        headers = {
            "content-type": "application/json",
            "webhook-id": event["event_id"],
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self._signer.sign(event["event_id"], now, body),
        }
        error: str | None = None
        try:
            response = await client.post(self.config.url, content=body, headers=headers)
            if not response.is_success:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        if error is not None:
            logger.info("webhook %s attempt %d failed: %s", event["event_id"], attempts, error)
        await asyncio.to_thread(self._record, event["event_id"], attempts, error)

    async def run(self) -> None:
        """Deliver due events, forever (cancel the task to stop)."""
        if self.config.url is None or self._signer is None:
            logger.warning("PAYMENTS_WEBHOOK_URL/SECRET unset: webhooks are not delivered")
            return
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS) as client:
            while True:
                self.wake.clear()
                try:
                    due = await asyncio.to_thread(self._due)
                    await asyncio.gather(*(self._deliver(client, event) for event in due))
                except Exception:  # the database blinked: log, wait, go on
                    logger.exception("webhook delivery loop failed; retrying")
                    due = []
                if len(due) < BATCH:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), POLL_SECONDS)
