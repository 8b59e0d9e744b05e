"""Shipping: create shipments (and returns), failing a configurable share of requests.

Run alone: ``uvicorn services.shipping:app --port 8003``. For failure demos and load tests,
``SHIPPING_TRANSIENT_FAILURE_RATE`` (answered 503, retryable) and
``SHIPPING_TERMINAL_FAILURE_RATE`` (answered 422 "carrier refused", final) are shares in
[0, 1], also settable at run time with ``PUT /admin/faults``. An address containing
``"nowhere"`` is always refused: a deterministic terminal failure.
"""

from __future__ import annotations

import os
import random
import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.common import service_app
from services.database import Cursor, Database, database_from_env
from services.ledger import IdempotencyKey, Ledger, Outcome, Rejected, Unavailable

SCHEMA = """
CREATE TABLE IF NOT EXISTS shipments (
    shipment_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    address TEXT NOT NULL,
    items TEXT NOT NULL,
    tracking_number TEXT NOT NULL,
    returns_shipment TEXT
)
"""
UNDELIVERABLE = "nowhere"
ShipmentId = Annotated[str, Path(min_length=1, max_length=100)]


class Item(BaseModel):
    sku: str = Field(min_length=1, max_length=100)
    quantity: int = Field(ge=1)


class ShipmentRequest(BaseModel):
    order_id: str = Field(min_length=1, max_length=200)
    address: str = Field(min_length=1, max_length=500)
    items: list[Item] = Field(min_length=1, max_length=50)


class Faults(BaseModel):
    transient_rate: float = Field(default=0.0, ge=0, le=1)
    terminal_rate: float = Field(default=0.0, ge=0, le=1)


@dataclass
class FaultInjector:
    faults: Faults
    random: random.Random

    def check(self, address: str) -> None:
        """Raise Unavailable (503) or Rejected (422) for a share of requests."""
        draw = self.random.random()
        if draw < self.faults.transient_rate:
            raise Unavailable("the carrier's API is temporarily unavailable (injected)")
        if UNDELIVERABLE in address.lower() or draw < (
            self.faults.transient_rate + self.faults.terminal_rate
        ):
            raise Rejected(
                422,
                {"error": "carrier_refused", "message": f"no carrier delivers to {address!r}"},
            )


def _shipment(cursor: Cursor, shipment_id: str) -> dict[str, Any]:
    row = cursor.execute("SELECT * FROM shipments WHERE shipment_id = ?", (shipment_id,)).one()
    if row is None:
        raise Rejected(404, {"error": "not_found", "message": f"no shipment {shipment_id!r}"})
    return row


def _insert(
    cursor: Cursor, order_id: str, kind: str, address: str, items: str, *, of: str | None
) -> str:
    shipment_id = f"shp_{uuid.uuid4().hex[:16]}"
    cursor.execute(
        "INSERT INTO shipments (shipment_id, order_id, kind, status, address, items,"
        " tracking_number, returns_shipment) VALUES (?, ?, ?, 'created', ?, ?, ?, ?)",
        (shipment_id, order_id, kind, address, items, f"TRK{uuid.uuid4().hex[:10].upper()}", of),
    )
    return shipment_id


def create_app(
    db: Database | None = None, faults: Faults | None = None, seed: int | None = None
) -> FastAPI:
    """The shipping service over ``db``, failing per ``faults`` (default: env)."""
    db = db or database_from_env("shipping")
    db.script(SCHEMA)
    ledger = Ledger(db)
    injector = FaultInjector(
        faults
        or Faults(
            transient_rate=float(os.environ.get("SHIPPING_TRANSIENT_FAILURE_RATE", "0")),
            terminal_rate=float(os.environ.get("SHIPPING_TERMINAL_FAILURE_RATE", "0")),
        ),
        random.Random(seed),
    )
    api = service_app("shipping", db, ledger)

    @api.post("/shipments", status_code=201, tags=["shipments"])
    def create_shipment(body: ShipmentRequest, key: IdempotencyKey = None) -> JSONResponse:
        """Hand an order to the carrier: 201, 503 (transient: retry) or 422 (refused)."""

        def effect(cursor: Cursor) -> Outcome:
            injector.check(body.address)
            items = body.model_dump_json(include={"items"})
            shipment_id = _insert(cursor, body.order_id, "delivery", body.address, items, of=None)
            return 201, _shipment(cursor, shipment_id)

        return ledger.run(key, "POST /shipments", body.model_dump(), effect)

    @api.post("/shipments/{shipment_id}/return", status_code=201, tags=["shipments"])
    def create_return(shipment_id: ShipmentId, key: IdempotencyKey = None) -> JSONResponse:
        """Open a return (a pickup from the customer) for a delivered shipment."""

        def effect(cursor: Cursor) -> Outcome:
            original = _shipment(cursor, shipment_id)
            if original["kind"] != "delivery":
                raise Rejected(409, {"error": "invalid_state", "message": "not a delivery"})
            return_id = _insert(
                cursor,
                original["order_id"],
                "return",
                original["address"],
                original["items"],
                of=shipment_id,
            )
            return 201, _shipment(cursor, return_id)

        return ledger.run(key, f"POST /shipments/{shipment_id}/return", None, effect)

    @api.post("/shipments/{shipment_id}/cancel", tags=["shipments"])
    def cancel_shipment(shipment_id: ShipmentId, key: IdempotencyKey = None) -> JSONResponse:
        """Cancel a shipment or return (idempotent: a cancelled one stays cancelled)."""

        def effect(cursor: Cursor) -> Outcome:
            _shipment(cursor, shipment_id)
            cursor.execute(
                "UPDATE shipments SET status = 'cancelled' WHERE shipment_id = ?", (shipment_id,)
            )
            return 200, _shipment(cursor, shipment_id)

        return ledger.run(key, f"POST /shipments/{shipment_id}/cancel", None, effect)

    @api.get("/shipments", tags=["shipments"])
    def find_shipments(order_id: str) -> list[dict[str, Any]]:
        with db.transaction() as cursor:
            return cursor.execute(
                "SELECT * FROM shipments WHERE order_id = ? ORDER BY kind, shipment_id",
                (order_id,),
            ).all()

    @api.get("/shipments/{shipment_id}", tags=["shipments"])
    def get_shipment(shipment_id: ShipmentId) -> dict[str, Any]:
        with db.transaction() as cursor:
            row = cursor.execute(
                "SELECT * FROM shipments WHERE shipment_id = ?", (shipment_id,)
            ).one()
        if row is None:
            raise HTTPException(404, f"no shipment {shipment_id!r}")
        return row

    @api.get("/admin/faults", tags=["admin"])
    def get_faults() -> Faults:
        return injector.faults

    @api.put("/admin/faults", tags=["admin"])
    def set_faults(faults: Faults) -> Faults:
        """Change the injected failure shares at run time."""
        injector.faults = faults
        return faults

    return api


def __getattr__(name: str) -> Any:
    # `uvicorn services.shipping:app` builds the app on first access, not at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
