"""Inventory: products and stock; reserve stock per order, release it, fulfil it.

Run alone: ``uvicorn services.inventory:app --port 8001`` (tables in ``DATABASE_URL``'s schema
``inventory`` on PostgreSQL, else ``$SHOP_DATA_DIR/inventory.db``). Out of stock is a 409.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.common import service_app
from services.database import Cursor, Database, database_from_env
from services.ledger import IdempotencyKey, Ledger, Outcome, Rejected

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    sku TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    price_cents BIGINT NOT NULL,
    stock BIGINT NOT NULL CHECK (stock >= 0)
);
CREATE TABLE IF NOT EXISTS reservations (
    reservation_id TEXT PRIMARY KEY,
    order_id TEXT NOT NULL,
    status TEXT NOT NULL,
    total_cents BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS reservation_lines (
    reservation_id TEXT NOT NULL,
    sku TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    price_cents BIGINT NOT NULL,
    PRIMARY KEY (reservation_id, sku)
)
"""

CATALOG = [  # seeded into an empty products table
    ("book", "The Saga Handbook", 2_500),
    ("mug", "Compensation Mug", 1_200),
    ("shirt", "Exactly-Once T-Shirt", 1_999),
]
DEFAULT_STOCK = 1_000


class Line(BaseModel):
    sku: str = Field(min_length=1, max_length=100)
    quantity: int = Field(ge=1, le=1_000)


class ReserveRequest(BaseModel):
    order_id: str = Field(min_length=1, max_length=200)
    items: list[Line] = Field(min_length=1, max_length=50)


class StockUpdate(BaseModel):
    stock: int = Field(ge=0)
    name: str | None = None
    price_cents: int | None = Field(default=None, ge=0)


def _reservation(cursor: Cursor, reservation_id: str) -> dict[str, Any] | None:
    row = cursor.execute(
        "SELECT reservation_id, order_id, status, total_cents FROM reservations"
        " WHERE reservation_id = ?",
        (reservation_id,),
    ).one()
    if row is None:
        return None
    lines = cursor.execute(
        "SELECT sku, quantity, price_cents FROM reservation_lines WHERE reservation_id = ?"
        " ORDER BY sku",
        (reservation_id,),
    ).all()
    return {**row, "items": lines}


def _reserve(cursor: Cursor, request: ReserveRequest) -> Outcome:
    quantities: dict[str, int] = {}
    for line in request.items:
        quantities[line.sku] = quantities.get(line.sku, 0) + line.quantity
    total = 0
    prices: dict[str, int] = {}
    for sku in sorted(quantities):  # a fixed order: concurrent reservations lock rows alike
        # Decrement only if enough is left: the check and the write are one statement.
        updated = cursor.execute(
            "UPDATE products SET stock = stock - ? WHERE sku = ? AND stock >= ?",
            (quantities[sku], sku, quantities[sku]),
        ).rowcount
        product = cursor.execute(
            "SELECT price_cents, stock FROM products WHERE sku = ?", (sku,)
        ).one()
        if product is None:
            raise Rejected(404, {"error": "unknown_sku", "message": f"no product {sku!r}"})
        if updated == 0:
            raise Rejected(
                409,
                {
                    "error": "out_of_stock",
                    "message": f"only {product['stock']} of {sku!r} left",
                    "sku": sku,
                    "available": product["stock"],
                },
            )
        prices[sku] = product["price_cents"]
        total += product["price_cents"] * quantities[sku]
    reservation_id = f"res_{uuid.uuid4().hex[:16]}"
    cursor.execute(
        "INSERT INTO reservations (reservation_id, order_id, status, total_cents)"
        " VALUES (?, ?, 'held', ?)",
        (reservation_id, request.order_id, total),
    )
    for sku, quantity in quantities.items():
        cursor.execute(
            "INSERT INTO reservation_lines (reservation_id, sku, quantity, price_cents)"
            " VALUES (?, ?, ?, ?)",
            (reservation_id, sku, quantity, prices[sku]),
        )
    reservation = _reservation(cursor, reservation_id)
    assert reservation is not None
    return 201, reservation


def _transition(cursor: Cursor, reservation_id: str, target: str) -> Outcome:
    """held -> released (stock back) | fulfilled (stock shipped) | restocked (returned)."""
    reservation = _reservation(cursor, reservation_id)
    if reservation is None:
        return 404, {"error": "not_found", "message": f"no reservation {reservation_id!r}"}
    allowed = {"released": "held", "fulfilled": "held", "restocked": "fulfilled"}[target]
    if reservation["status"] == target:
        return 200, reservation  # already there: the undo or the step is idempotent by state
    if reservation["status"] != allowed:
        return 409, {
            "error": "invalid_state",
            "message": f"reservation is {reservation['status']}, cannot become {target}",
            "status": reservation["status"],
        }
    cursor.execute(
        "UPDATE reservations SET status = ? WHERE reservation_id = ?", (target, reservation_id)
    )
    if target in ("released", "restocked"):
        for line in reservation["items"]:
            cursor.execute(
                "UPDATE products SET stock = stock + ? WHERE sku = ?",
                (line["quantity"], line["sku"]),
            )
    updated = _reservation(cursor, reservation_id)
    assert updated is not None
    return 200, updated


def create_app(db: Database | None = None, initial_stock: int | None = None) -> FastAPI:
    """The inventory service over ``db`` (default: from the environment)."""
    db = db or database_from_env("inventory")
    db.script(SCHEMA)
    stock = initial_stock if initial_stock is not None else _env_stock()
    with db.transaction() as cursor:
        for sku, name, price in CATALOG:
            cursor.execute(
                "INSERT INTO products (sku, name, price_cents, stock) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (sku) DO NOTHING",
                (sku, name, price, stock),
            )
    ledger = Ledger(db)
    api = service_app("inventory", db, ledger)
    ReservationId = Annotated[str, Path(min_length=1, max_length=100)]

    run = ledger.run

    @api.get("/products", tags=["products"])
    def list_products() -> list[dict[str, Any]]:
        with db.transaction() as cursor:
            return cursor.execute("SELECT * FROM products ORDER BY sku").all()

    @api.put("/products/{sku}", tags=["products"])
    def set_stock(sku: str, update: StockUpdate, key: IdempotencyKey = None) -> JSONResponse:
        def effect(cursor: Cursor) -> Outcome:
            cursor.execute(
                "INSERT INTO products (sku, name, price_cents, stock) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (sku) DO UPDATE SET stock = excluded.stock",
                (sku, update.name or sku, update.price_cents or 1_000, update.stock),
            )
            if update.name is not None or update.price_cents is not None:
                cursor.execute(
                    "UPDATE products SET name = COALESCE(?, name),"
                    " price_cents = COALESCE(?, price_cents) WHERE sku = ?",
                    (update.name, update.price_cents, sku),
                )
            row = cursor.execute("SELECT * FROM products WHERE sku = ?", (sku,)).one()
            assert row is not None
            return 200, row

        return run(key, f"PUT /products/{sku}", update.model_dump(), effect)

    @api.post("/reservations", status_code=201, tags=["reservations"])
    def reserve(request: ReserveRequest, key: IdempotencyKey = None) -> JSONResponse:
        """Hold stock for an order: 201 with the reservation, 409 when out of stock."""
        return run(key, "POST /reservations", request.model_dump(), lambda c: _reserve(c, request))

    @api.get("/reservations/{reservation_id}", tags=["reservations"])
    def get_reservation(reservation_id: ReservationId) -> dict[str, Any]:
        with db.transaction() as cursor:
            found = _reservation(cursor, reservation_id)
        if found is None:
            raise HTTPException(404, f"no reservation {reservation_id!r}")
        return found

    @api.get("/reservations", tags=["reservations"])
    def find_reservations(order_id: str) -> list[dict[str, Any]]:
        with db.transaction() as cursor:
            rows = cursor.execute(
                "SELECT reservation_id FROM reservations WHERE order_id = ? ORDER BY 1",
                (order_id,),
            ).all()
            found = [_reservation(cursor, row["reservation_id"]) for row in rows]
        return [reservation for reservation in found if reservation is not None]

    for action, target in (
        ("release", "released"),
        ("fulfil", "fulfilled"),
        ("restock", "restocked"),
    ):
        _add_transition(api, run, action, target)
    return api


def _add_transition(
    api: FastAPI, run: Callable[..., JSONResponse], action: str, target: str
) -> None:
    @api.post(f"/reservations/{{reservation_id}}/{action}", tags=["reservations"], name=action)
    def transition(reservation_id: str, key: IdempotencyKey = None) -> JSONResponse:
        return run(
            key,
            f"POST /reservations/{reservation_id}/{action}",
            None,
            lambda cursor: _transition(cursor, reservation_id, target),
        )


def _env_stock() -> int:
    return int(os.environ.get("INVENTORY_INITIAL_STOCK", DEFAULT_STOCK))


def __getattr__(name: str) -> Any:
    # `uvicorn services.inventory:app` builds the app on first access, not at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
