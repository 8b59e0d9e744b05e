"""Payments: a stand-in payment provider (checkout sessions, a payment page, capture, void,
refund) that reports the customer's choice with signed, retried webhooks.

Run alone: ``uvicorn services.payments:app --port 8002`` with ``PAYMENTS_WEBHOOK_URL`` and
``PAYMENTS_WEBHOOK_SECRET`` (``whsec_…``) set. A session goes ``open`` → ``paid`` (the customer
clicked Pay: the amount is authorized) → ``captured`` → ``refunded``; or ``open`` →
``cancelled`` (the customer clicked Cancel) / ``voided`` (the merchant gave up).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import html
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from services.common import service_app
from services.database import Cursor, Database, database_from_env
from services.ledger import IdempotencyKey, Ledger, Outcome, Rejected
from services.webhook_sender import SCHEMA as OUTBOX_SCHEMA
from services.webhook_sender import SenderConfig, WebhookSender, enqueue_event

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    status TEXT NOT NULL,
    url TEXT NOT NULL,
    return_url TEXT,
    metadata TEXT NOT NULL,
    refunded_cents BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""
SessionId = Annotated[str, Path(min_length=1, max_length=100)]


class SessionRequest(BaseModel):
    order_id: str = Field(min_length=1, max_length=200)
    amount_cents: int = Field(ge=1)
    currency: str = Field(default="EUR", min_length=3, max_length=3)
    return_url: str | None = Field(default=None, max_length=2000)
    metadata: dict[str, str] = Field(default_factory=dict)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _session(cursor: Cursor, session_id: str) -> dict[str, Any]:
    row = cursor.execute("SELECT * FROM sessions WHERE session_id = ?", (session_id,)).one()
    if row is None:
        raise Rejected(404, {"error": "not_found", "message": f"no session {session_id!r}"})
    return {**row, "metadata": json.loads(row["metadata"])}


def _event_data(session: dict[str, Any]) -> dict[str, Any]:
    keys = ("session_id", "order_id", "amount_cents", "currency", "status", "metadata")
    return {key: session[key] for key in keys}


# A customer's second click finds its first one's outcome, however far the merchant has taken
# it meanwhile (a pay click after the capture is the same redirect, not an error).
_CLICKED = {"paid": {"paid", "captured", "refunded"}, "cancelled": {"cancelled"}}


def _move(
    cursor: Cursor, session_id: str, allowed: dict[str, str], done: set[str], event: str | None
) -> Outcome:
    """Move a session along ``allowed`` (from status -> to status); statuses in ``done``
    answer 200 unchanged (already there: idempotent by state); anything else is a 409."""
    session = _session(cursor, session_id)
    status = session["status"]
    if status in done:
        return 200, session
    if status not in allowed:
        raise Rejected(
            409,
            {
                "error": "invalid_state",
                "message": f"session {session_id} is {status}",
                "status": status,
            },
        )
    cursor.execute(
        "UPDATE sessions SET status = ?, updated_at = ? WHERE session_id = ?",
        (allowed[status], _now(), session_id),
    )
    session["status"] = allowed[status]
    if event is not None:
        enqueue_event(cursor, session_id, event, _event_data(session))
    return 200, session


def create_app(db: Database | None = None, sender: SenderConfig | None = None) -> FastAPI:
    """The payment provider over ``db``, posting webhooks per ``sender`` (default: env)."""
    db = db or database_from_env("payments")
    db.script(SCHEMA)
    db.script(OUTBOX_SCHEMA)
    ledger = Ledger(db)
    webhooks = WebhookSender(db, sender or SenderConfig.from_env())
    public_url = os.environ.get("PAYMENTS_PUBLIC_URL")

    loop_holder: list[asyncio.AbstractEventLoop] = []

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loop_holder.append(asyncio.get_running_loop())
        task = asyncio.create_task(webhooks.run(), name="webhook-sender")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    api = service_app("payments", db, ledger, lifespan)

    def wake_sender() -> None:  # called from endpoint threads after a commit
        if loop_holder:
            loop_holder[0].call_soon_threadsafe(webhooks.wake.set)

    @api.post("/sessions", status_code=201, tags=["sessions"])
    def create_session(
        request: Request, body: SessionRequest, key: IdempotencyKey = None
    ) -> JSONResponse:
        """Open a checkout session; its ``url`` is the page where the customer pays."""
        base = (public_url or str(request.base_url)).rstrip("/")

        def effect(cursor: Cursor) -> Outcome:
            session_id = f"cs_{uuid.uuid4().hex[:20]}"
            now = _now()
            cursor.execute(
                "INSERT INTO sessions (session_id, order_id, amount_cents, currency, status,"
                " url, return_url, metadata, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, 'open', ?, ?, ?, ?, ?)",
                (
                    session_id,
                    body.order_id,
                    body.amount_cents,
                    body.currency.upper(),
                    f"{base}/pay/{session_id}",
                    body.return_url,
                    json.dumps(body.metadata),
                    now,
                    now,
                ),
            )
            return 201, _session(cursor, session_id)

        return ledger.run(key, "POST /sessions", body.model_dump(), effect)

    @api.get("/sessions", tags=["sessions"])
    def find_sessions(order_id: str) -> list[dict[str, Any]]:
        with db.transaction() as cursor:
            rows = cursor.execute(
                "SELECT * FROM sessions WHERE order_id = ? ORDER BY created_at", (order_id,)
            ).all()
        return [{**row, "metadata": json.loads(row["metadata"])} for row in rows]

    @api.get("/sessions/{session_id}", tags=["sessions"])
    def get_session(session_id: SessionId) -> dict[str, Any]:
        with db.transaction() as cursor:
            row = cursor.execute("SELECT * FROM sessions WHERE session_id = ?", (session_id,)).one()
        if row is None:
            raise HTTPException(404, f"no session {session_id!r}")
        return {**row, "metadata": json.loads(row["metadata"])}

    def merchant_action(action: str, allowed: dict[str, str], done: set[str]) -> None:
        def handler(session_id: SessionId, key: IdempotencyKey = None) -> JSONResponse:
            return ledger.run(
                key,
                f"POST /sessions/{session_id}/{action}",
                None,
                lambda cursor: _move(cursor, session_id, allowed, done, None),
            )

        handler.__name__ = f"{action}_session"
        api.post(f"/sessions/{{session_id}}/{action}", tags=["sessions"])(handler)

    # capture: take the authorized money; void: give up before capture (nothing is charged);
    # refund: give captured money back (the whole amount).
    merchant_action("capture", {"paid": "captured"}, {"captured"})
    merchant_action(
        "void", {"open": "voided", "paid": "voided"}, {"voided", "cancelled", "refunded"}
    )
    merchant_action("refund", {"captured": "refunded"}, {"refunded"})

    @api.get("/pay/{session_id}", response_class=HTMLResponse, tags=["customer"])
    def payment_page(session_id: SessionId) -> HTMLResponse:
        """The page the customer is sent to: the amount, Pay and Cancel."""
        with db.transaction() as cursor:
            try:
                session = _session(cursor, session_id)
            except Rejected:
                return HTMLResponse(_page("Unknown payment", "<p>No such payment.</p>"), 404)
        return HTMLResponse(_payment_page(session))

    def customer_choice(session_id: str, target: str, event: str) -> Response:
        try:
            with db.transaction() as cursor:
                _, session = _move(cursor, session_id, {"open": target}, _CLICKED[target], event)
        except Rejected as refusal:
            status = refusal.body.get("status", "unknown")
            message = f"<p id='result'>This payment can no longer change: it is {status}.</p>"
            return HTMLResponse(_page("Payment closed", message), refusal.status)
        wake_sender()
        if session["return_url"]:
            return RedirectResponse(session["return_url"], status_code=303)
        text = "Payment received" if target == "paid" else "Payment cancelled"
        return HTMLResponse(_page(text, f"<p id='result'>{text}.</p>"))

    @api.post("/pay/{session_id}/pay", tags=["customer"])
    def pay(session_id: SessionId) -> Response:
        """The customer clicked Pay: authorize, post ``payment.succeeded``, go back."""
        return customer_choice(session_id, "paid", "payment.succeeded")

    @api.post("/pay/{session_id}/cancel", tags=["customer"])
    def cancel(session_id: SessionId) -> Response:
        """The customer clicked Cancel: post ``payment.cancelled``, go back."""
        return customer_choice(session_id, "cancelled", "payment.cancelled")

    @api.get("/webhooks/outbox", tags=["webhooks"])
    def outbox(session_id: str) -> list[dict[str, Any]]:
        """The events of a session and their delivery state (for tests and operators)."""
        with db.transaction() as cursor:
            return cursor.execute(
                "SELECT event_id, type, status, attempts, last_error, delivered_at"
                " FROM webhook_outbox WHERE session_id = ? ORDER BY event_id",
                (session_id,),
            ).all()

    return api


def _page(title: str, body: str) -> str:
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;color:#222}}
.card{{border:1px solid #ddd;border-radius:12px;padding:1.5rem}}
button{{font-size:1rem;padding:.6rem 1.4rem;border-radius:8px;border:0;cursor:pointer}}
#pay{{background:#635bff;color:#fff}} #cancel{{background:#eee}}</style></head>
<body><div class="card"><h1>{html.escape(title)}</h1>{body}</div></body></html>"""


def _payment_page(session: dict[str, Any]) -> str:
    amount = f"{session['amount_cents'] / 100:.2f} {html.escape(session['currency'])}"
    sid = html.escape(session["session_id"])
    if session["status"] != "open":
        status = html.escape(session["status"])
        return _page("Payment", f"<p id='result'>This payment is {status}.</p>")
    return _page(
        "Stand-in Pay",
        f"""<p>Order <b>{html.escape(session["order_id"])}</b></p>
<p>Amount: <b id="amount">{amount}</b></p>
<form method="post" action="/pay/{sid}/pay" style="display:inline">
<button id="pay" type="submit">Pay</button></form>
<form method="post" action="/pay/{sid}/cancel" style="display:inline">
<button id="cancel" type="submit">Cancel</button></form>""",
    )


def __getattr__(name: str) -> Any:
    # `uvicorn services.payments:app` builds the app on first access, not at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
