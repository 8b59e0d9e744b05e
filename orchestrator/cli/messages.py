"""`saga messages`: send a JSON message to a workflow, or to the workflow holding a business key
(kept for one yet to start with it), through the application's own code here (--app, so its
payload codec encrypts it) or through a running service (--url)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from orchestrator.app import Orchestrator
from orchestrator.cli.common import ApiKey, ServiceUrl, call_service, console, format_time, run
from orchestrator.cli.serve import load_app

messages_cli = typer.Typer(
    help="Send messages to workflows (docs/messaging.md).", no_args_is_help=True
)

Message = Annotated[str, typer.Argument(help="the message: any JSON value, e.g. '{\"n\": 1}'")]
Topic = Annotated[str, typer.Argument(help="the topic the workflow receives on (recv(topic))")]
IdempotencyKey = Annotated[
    str | None,
    typer.Option("--idempotency-key", help="a repeated send with the same key is stored once"),
]
AsJson = Annotated[bool, typer.Option("--json", help="print the answer as JSON for scripts")]
AppPath = Annotated[
    str | None,
    typer.Option(
        "--app",
        metavar="MODULE:ATTR",
        help="the Orchestrator that sends it from here, its payload codec included (or --url)",
    ),
]


def _target(app_path: str | None, url: str | None) -> str:
    if (app_path is None) == (url is None):
        raise typer.BadParameter(
            "give either --app MODULE:ATTR (sent from here by the application, encrypted by its"
            " codec if it has one) or --url (the service at that URL sends it)"
        )
    return app_path or ""


def _parsed(message: str) -> Any:
    try:
        return json.loads(message)
    except ValueError as exc:
        raise typer.BadParameter(
            f"the message must be JSON (quote a string: '\"text\"'): {exc}",
            param_hint="MESSAGE",
        ) from None


def _sent_here(app_path: str, send: Any) -> Any:
    """Launch the application here (its codec encrypts the message), send, and stop at once:
    whatever it recovered at launch is left to the workers, as ``fork --no-wait`` does."""
    app = load_app(app_path)

    async def work() -> Any:
        async with app:
            try:
                return await send(app)
            finally:
                await app.shutdown(0)

    return run(work)


@messages_cli.command("send")
def send(
    workflow_id: str,
    topic: Topic,
    message: Message,
    idempotency_key: IdempotencyKey = None,
    app_path: AppPath = None,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Send MESSAGE (JSON) to WORKFLOW_ID on TOPIC."""
    value = _parsed(message)
    target = _target(app_path, url)
    if url:
        call_service(
            url,
            api_key,
            lambda c: c.send(workflow_id, value, topic, idempotency_key=idempotency_key),
        )
    else:

        async def local(app: Orchestrator) -> None:
            await app.send(workflow_id, value, topic, idempotency_key=idempotency_key)

        _sent_here(target, local)
    console.print(f"sent to {escape(workflow_id)} on topic {escape(topic)}")


@messages_cli.command("send-to-key")
def send_to_key(
    key: Annotated[str, typer.Argument(help="name:value of a workflow attribute (order_id:42)")],
    topic: Topic,
    message: Message,
    idempotency_key: IdempotencyKey = None,
    keep_seconds: Annotated[
        float | None,
        typer.Option(
            "--keep-seconds",
            min=0,
            help="how long to keep it when no workflow holds the key yet (default: the "
            "setting ORCHESTRATOR_PENDING_MESSAGE_SECONDS, one day)",
        ),
    ] = None,
    as_json: AsJson = False,
    app_path: AppPath = None,
    url: ServiceUrl = None,
    api_key: ApiKey = None,
) -> None:
    """Send MESSAGE (JSON) on TOPIC to the newest unfinished workflow holding KEY, or keep it
    for the first workflow to start with (or set) that attribute."""
    value = _parsed(message)
    target = _target(app_path, url)
    if url:
        answer: dict[str, Any] = call_service(
            url,
            api_key,
            lambda c: c.send_to_key(
                key, value, topic, idempotency_key=idempotency_key, keep_seconds=keep_seconds
            ),
        )
    else:

        async def local(app: Orchestrator) -> dict[str, Any]:
            sent = await app.send_to_key(
                key, value, topic, idempotency_key=idempotency_key, keep_seconds=keep_seconds
            )
            return {  # the service's answer (KeyedMessageAccepted), from here too
                "key": key,
                "topic": topic,
                "idempotency_key": idempotency_key,
                "delivered": sent.delivered,
                "workflow_id": sent.workflow_id,
                "expires_at": sent.expires_at,
                "repeat": not sent.stored,
            }

        answer = _sent_here(target, local)
    if as_json:
        console.print_json(json.dumps(answer))
    elif answer["repeat"]:
        console.print(f"a repeat of idempotency key {escape(str(idempotency_key))}: nothing stored")
    elif answer["delivered"]:
        console.print(f"delivered to {escape(answer['workflow_id'])}")
    else:
        until = dt.datetime.fromtimestamp(answer["expires_at"] / 1000, dt.UTC)
        console.print(
            f"kept until {format_time(until)} for the first workflow to start with"
            f" {escape(key)} (no unfinished workflow holds it)"
        )
