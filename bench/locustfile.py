"""Load test of the sample shop (locust): customers order, pay (or cancel 10 %), and wait.

Each simulated customer starts a checkout (``POST /workflows/checkout``), long-polls the
``payment_url`` event, clicks Pay or Cancel on the payment provider's page, and polls the
result. Besides locust's per-request rows it reports two end-to-end rows (type ``FLOW``):
``order -> payment URL`` and ``order -> completion`` (completed or compensated as intended;
anything else is a failure). Run by ``make load`` (bench/load.py) against ``saga up``.
"""

from __future__ import annotations

import os
import random
import time
import uuid

from locust import HttpUser, between, task

CANCEL_SHARE = 0.10
SKUS = ("book", "mug", "shirt")
RESULT_POLL_SECONDS = 30  # the service clamps long polls to its maximum
MAX_WAIT_SECONDS = 120.0


class Customer(HttpUser):
    wait_time = between(0.1, 0.5)

    def on_start(self) -> None:
        api_key = os.environ.get("ORCHESTRATOR_API_KEY")  # saga up off loopback needs one
        if api_key:
            self.client.headers["Authorization"] = f"Bearer {api_key}"

    def _flow(self, name: str, started: float, error: str | None = None) -> None:
        self.environment.events.request.fire(
            request_type="FLOW",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=None if error is None else RuntimeError(error),
            context={},
        )

    @task
    def checkout(self) -> None:
        order_id = f"load-{uuid.uuid4().hex[:16]}"
        cancel = random.random() < CANCEL_SHARE
        order = {
            "order_id": order_id,
            "items": [{"sku": random.choice(SKUS), "quantity": random.randint(1, 3)}],
            "address": "1 Load Street",
        }
        started = time.perf_counter()
        with self.client.post(
            "/workflows/checkout",
            json=order,
            headers={"Idempotency-Key": order_id},
            name="POST /workflows/checkout",
            catch_response=True,
        ) as placed:
            if placed.status_code != 202:
                placed.failure(f"start answered {placed.status_code}")
                return
        event = self.client.get(
            f"/workflows/{order_id}/events/payment_url?timeout=30",
            name="GET /workflows/{id}/events/payment_url",
        )
        if event.status_code != 200:
            self._flow("order -> payment URL", started, f"no payment URL ({event.status_code})")
            return
        self._flow("order -> payment URL", started)
        button = "cancel" if cancel else "pay"
        self.client.post(
            f"{event.json()['value']}/{button}",
            name=f"POST payments /pay/{{id}}/{button}",
            allow_redirects=False,
        )
        expected = "COMPENSATED" if cancel else "SUCCESS"
        deadline = time.monotonic() + MAX_WAIT_SECONDS
        while time.monotonic() < deadline:
            with self.client.get(
                f"/workflows/{order_id}/result?timeout={RESULT_POLL_SECONDS}",
                name="GET /workflows/{id}/result",
                catch_response=True,
            ) as result:
                if result.status_code == 202:
                    result.success()
                    continue
                status = (
                    result.json().get("status")
                    if result.status_code == 200
                    else result.json().get("detail", {}).get("status")
                )
                result.success()  # a 409 is the compensated saga's answer, not an error
            error = None if status == expected else f"ended {status}, expected {expected}"
            self._flow("order -> completion", started, error)
            return
        self._flow("order -> completion", started, f"not finished in {MAX_WAIT_SECONDS} s")
