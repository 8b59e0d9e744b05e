"""The console tests' application: sagas that end COMPENSATION_FAILED, run slowly, have
children, or wait forever (for bulk cancel), on a real Orchestrator served by uvicorn."""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from opentelemetry.sdk.trace import TracerProvider

from orchestrator import Orchestrator, Retry
from orchestrator.http import create_app

ONE_TRY = Retry(max_attempts=1)


@dataclass
class Switches:
    """Flags the sagas read: the tests flip them to make a compensation work again."""

    release_broken: bool = True
    calls: list[str] = field(default_factory=list)


def build(database_url: str, switches: Switches) -> Orchestrator:
    """An Orchestrator with the console tests' workflows registered."""
    app = Orchestrator(
        "console",
        database_url,
        app_version="v1",
        executor_id="console-test",
        tracer_provider=TracerProvider(),
    )
    app.queue("payments", concurrency=4, worker_concurrency=2)

    @app.step(name="reserve_stock")
    async def reserve_stock(order_id: str) -> dict[str, Any]:
        return {"reservation": f"res-{order_id}", "items": 2}

    @reserve_stock.compensation(retry=ONE_TRY)
    async def release_stock(order_id: str, reservation: dict[str, Any]) -> None:
        switches.calls.append(f"release {order_id}")
        if switches.release_broken:
            raise RuntimeError("inventory service unavailable (503)")

    @app.step(name="charge_card")
    async def charge_card(order_id: str, amount_cents: int) -> dict[str, Any]:
        return {"charge": f"ch-{order_id}", "amount_cents": amount_cents}

    @charge_card.compensation(retry=ONE_TRY)
    async def refund_card(order_id: str, amount_cents: int, charge: dict[str, Any]) -> None:
        switches.calls.append(f"refund {order_id}")

    @app.step(name="ship_parcel", retry=Retry(max_attempts=2, base_interval=0.05))
    async def ship_parcel(order_id: str) -> str:
        raise RuntimeError("carrier refused the parcel")

    @app.workflow(name="fragile_checkout")
    async def fragile_checkout(order_id: str) -> str:
        """Reserve, charge, ship: the shipping fails and the stock release fails too."""
        await reserve_stock(order_id)
        await charge_card(order_id, 4200)
        return await ship_parcel(order_id)

    @app.step(name="notify")
    async def notify(order_id: str, what: str) -> str:
        return f"{what} sent for {order_id}"

    @app.workflow(name="gift_wrap")
    async def gift_wrap(order_id: str) -> str:
        await app.sleep(0.05)
        return await notify(order_id, "wrapped")

    @app.workflow(name="slow_checkout")
    async def slow_checkout(order_id: str, pause_seconds: float = 1.0) -> str:
        """Durable sleeps between steps, an event, a message to itself and a child."""
        await reserve_stock(order_id)
        await app.set_event("payment_url", f"https://pay.example/{order_id}")
        await app.sleep(pause_seconds)
        await charge_card(order_id, 1999)
        child = await app.start(gift_wrap, order_id, workflow_id=f"{order_id}-wrap")
        await child.result()
        await app.send(order_id, {"paid": True}, topic="self")  # its workflow id
        await app.recv("self", timeout=5)
        await app.sleep(pause_seconds)
        await notify(order_id, "receipt")
        await app.sleep(pause_seconds)
        return "shipped"

    @app.workflow(name="await_payment")
    async def await_payment(order_id: str) -> Any:
        """Waits for a payment message that never comes (bulk cancel's targets)."""
        await notify(order_id, "payment link")
        return await app.recv("payment", timeout=3600)

    @app.workflow(name="nightly_report", schedule="0 0 3 * * *")
    async def nightly_report(scheduled: dt.datetime) -> str:
        return "reported"

    return app


@dataclass
class Service:
    """The HTTP service on a loopback port, in a thread (uvicorn runs the lifespan: the
    Orchestrator launches and shuts down with it)."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def serve(app: Orchestrator, **create_kwargs: Any) -> Service:
    """Start uvicorn with ``create_app(app, **create_kwargs)``; return once it answers."""
    config = uvicorn.Config(
        create_app(app, **create_kwargs), host="127.0.0.1", port=0, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="console-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the console test service did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return Service(server=server, thread=thread, url=f"http://127.0.0.1:{port}")
