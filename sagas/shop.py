"""The sample shop as one command: ``saga up`` (= ``saga up sagas.shop:stack``).

Runs the orchestrator's service (checkout and refund sagas, the payment webhook, the shop
page) and, as child processes, the inventory, payments and shipping services, wired through
environment variables. A service whose ``SHOP_<NAME>_URL`` is already set is not started: it
runs elsewhere (docker-compose, Kubernetes).
"""

from __future__ import annotations

import base64
import os
import secrets
import sys

from orchestrator.cli.stack import ChildProcess, Stack, UpContext
from sagas import checkout, refund  # noqa: F401  (registers the workflows)
from sagas.app import app
from sagas.storefront import router
from sagas.webhooks import SOURCE_NAME, payment_webhooks

SERVICES = ("inventory", "payments", "shipping")


def webhook_secret() -> str:
    """``PAYMENTS_WEBHOOK_SECRET``, else a fresh ``whsec_`` secret for this run."""
    return os.environ.get("PAYMENTS_WEBHOOK_SECRET") or (
        "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
    )


def stack(up: UpContext) -> Stack:
    """The shop: its service at ``up.url``, the three services beside it."""
    secret = webhook_secret()
    os.environ["PAYMENTS_WEBHOOK_SECRET"] = secret
    os.environ.setdefault("SHOP_PUBLIC_URL", up.url)
    processes = []
    for offset, name in enumerate(SERVICES, start=1):
        variable = f"SHOP_{name.upper()}_URL"
        if os.environ.get(variable):
            continue  # runs elsewhere
        port = up.free_port(preferred=up.port + offset)
        url = f"http://127.0.0.1:{port}"
        os.environ[variable] = url  # read by the steps of this process
        env = {"PYTHONUNBUFFERED": "1", "OTEL_SERVICE_NAME": name}
        if name == "payments":
            env |= {
                "PAYMENTS_WEBHOOK_URL": f"{up.url}/webhooks/{SOURCE_NAME}",
                "PAYMENTS_PUBLIC_URL": url,
            }
        argv = [sys.executable, "-m", "uvicorn", f"services.{name}:app"]
        argv += ["--host", up.child_host, "--port", str(port), "--log-level", "warning"]
        processes.append(ChildProcess(name, argv, env=env, url=url))
    return Stack(
        orchestrator=app,
        webhooks=[payment_webhooks(secret)],
        routers=[router],
        processes=processes,
        links={"shop": f"{os.environ['SHOP_PUBLIC_URL']}/shop"},
    )
