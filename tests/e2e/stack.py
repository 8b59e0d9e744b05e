"""The sample shop as real processes: three uvicorn services and `saga up` on PostgreSQL."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from orchestrator.cli.stack import free_port
from tests.processes import ROOT, stop, wait_healthy

SECRET = "whsec_" + base64.b64encode(b"e2e-payments-webhook-secret-0001").decode()
SERVICES = ("inventory", "payments", "shipping")


@dataclass
class ShopStack:
    """Services started once; the orchestrator (`saga up`) can be SIGKILLed and restarted."""

    database_url: str
    log_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    services: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    orchestrator: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def _env(self, extra: dict[str, str]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SHOP_", "PAYMENTS_"))}
        env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        return {**env, "DATABASE_URL": self.database_url, "PYTHONUNBUFFERED": "1", **extra}

    def _spawn(self, argv: list[str], log: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.log_dir / log).open("ab") as out:
            return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=out)

    def start(self) -> None:
        for name in ("orchestrator", *SERVICES):
            self.ports[name] = free_port()
        for name in SERVICES:
            env = self._env(
                {
                    "PAYMENTS_WEBHOOK_URL": f"{self.url('orchestrator')}/webhooks/payments",
                    "PAYMENTS_WEBHOOK_SECRET": SECRET,
                    "PAYMENTS_PUBLIC_URL": self.url("payments"),
                    "PAYMENTS_WEBHOOK_BACKOFF_SECONDS": "0.2",
                    "PAYMENTS_WEBHOOK_MAX_BACKOFF_SECONDS": "1",
                }
            )
            argv = [sys.executable, "-m", "uvicorn", f"services.{name}:app", "--port"]
            argv += [str(self.ports[name]), "--log-level", "warning"]
            self.services[name] = self._spawn(argv, f"{name}.log", env)
        for name in SERVICES:
            wait_healthy(self.url(name), self.services[name])
        self.start_orchestrator()

    def start_orchestrator(self) -> None:
        env = self._env(
            {
                "PAYMENTS_WEBHOOK_SECRET": SECRET,
                **{f"SHOP_{n.upper()}_URL": self.url(n) for n in SERVICES},
                "SHOP_PUBLIC_URL": self.url("orchestrator"),
            }
        )
        argv = [sys.executable, "-m", "orchestrator.cli", "up", "sagas.shop:stack"]
        argv += ["--port", str(self.ports["orchestrator"])]
        self.starts += 1
        self.orchestrator = self._spawn(argv, f"orchestrator-{self.starts}.log", env)
        wait_healthy(self.url("orchestrator"), self.orchestrator)

    def kill_orchestrator(self) -> None:
        assert self.orchestrator is not None
        self.orchestrator.kill()  # SIGKILL: no shutdown, no cleanup
        self.orchestrator.wait()

    def stop(self) -> None:
        if self.orchestrator is not None:
            stop(self.orchestrator)
        for process in self.services.values():
            stop(process)


class Shop:
    """What a client of the shop does, over HTTP."""

    def __init__(self, stack: ShopStack) -> None:
        self.stack = stack
        self.http = httpx.Client(timeout=60)

    def api(self, path: str) -> str:
        return f"{self.stack.url('orchestrator')}{path}"

    def place(
        self, order_id: str, sku: str, quantity: int = 1, address: str = "1 Main St", **extra: Any
    ) -> None:
        body = {"order_id": order_id, "items": [{"sku": sku, "quantity": quantity}]}
        response = self.http.post(
            self.api("/workflows/checkout"),
            json={**body, "address": address, **extra},
            headers={"Idempotency-Key": order_id},
        )
        assert response.status_code == 202, response.text

    def payment_url(self, order_id: str) -> str:
        response = self.http.get(self.api(f"/workflows/{order_id}/events/payment_url?timeout=30"))
        assert response.status_code == 200, response.text
        return str(response.json()["value"])

    def click(self, payment_url: str, button: str) -> httpx.Response:
        """The customer clicks Pay or Cancel on the payment page."""
        return self.http.post(f"{payment_url}/{button}")

    def result(self, order_id: str, timeout: float = 60) -> dict[str, Any]:
        """The workflow's final status and output (or error), polling until it ends."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                response = self.http.get(self.api(f"/workflows/{order_id}/result?timeout=10"))
            except httpx.HTTPError:
                time.sleep(0.2)  # the orchestrator is restarting
                continue
            if response.status_code == 200:
                return {"status": response.json()["status"], "output": response.json()["output"]}
            if response.status_code == 409:
                return response.json()["detail"]
        raise AssertionError(f"{order_id} did not finish in {timeout} s")

    def get(self, service: str, path: str, **params: Any) -> Any:
        response = self.http.get(f"{self.stack.url(service)}{path}", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def set_stock(self, sku: str, stock: int) -> None:
        url = f"{self.stack.url('inventory')}/products/{sku}"
        response = self.http.put(url, json={"stock": stock, "price_cents": 1_000})
        assert response.status_code == 200, response.text

    def stock(self, sku: str) -> int:
        products = self.get("inventory", "/products")
        return next(int(p["stock"]) for p in products if p["sku"] == sku)

    def ledger(self, order_id: str) -> dict[str, list[dict[str, Any]]]:
        """Every keyed request each service saw for this order's steps (key = order:step)."""
        return {name: self.get(name, "/ledger", prefix=f"{order_id}:") for name in SERVICES}

    def assert_applied_once(self, order_id: str) -> None:
        for service, entries in self.ledger(order_id).items():
            for entry in entries:
                assert entry["applied"] == 1, (service, entry)


@dataclass
class SagaUp:
    """`saga up` (no argument: the sample shop) as a newcomer runs it, on embedded SQLite."""

    process: subprocess.Popen[str]
    urls: dict[str, str]
    output: list[str]

    def interrupt(self) -> int:
        """Ctrl-C; returns the exit code."""
        self.process.send_signal(signal.SIGINT)
        try:
            code = self.process.wait(30)
        finally:
            assert self.process.stdout is not None
            self.output += self.process.stdout.read().splitlines()
        return code


def saga_up(data_dir: Path, *args: str, timeout: float = 60.0) -> SagaUp:
    """Start `saga up ARGS` with its data under ``data_dir``; returns once it printed "up"."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SHOP_", "PAYMENTS_", "DATABASE_URL", "ORCHESTRATOR_", "OTEL_"))
    }
    env |= {
        "ORCHESTRATOR_DATA_DIR": str(data_dir),
        "SHOP_DATA_DIR": str(data_dir / "shop"),
        "PYTHONUNBUFFERED": "1",
    }
    argv = [sys.executable, "-m", "orchestrator.cli", "up", *args]
    process = subprocess.Popen(
        argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    output: list[str] = []
    urls: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    for line in process.stdout:
        output.append(line.rstrip())
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("http://"):
            urls[parts[0]] = parts[1]
        if line.startswith("up:") or time.monotonic() > deadline:
            break
    if not any(line.startswith("up:") for line in output):
        process.kill()
        raise AssertionError("saga up did not come up:\n" + "\n".join(output))
    return SagaUp(process, urls, output)


def refuses_connections(url: str) -> bool:
    try:
        httpx.get(f"{url}/healthz", timeout=1)
    except httpx.ConnectError:
        return True
    return False
