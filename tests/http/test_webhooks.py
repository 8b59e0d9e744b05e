"""Webhook vectors per scheme: valid, rotated keys, tampering, wrong secret, stale, replays."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from orchestrator.errors import ConfigurationError
from orchestrator.http.webhooks import StandardWebhooks, WebhookSource
from tests.http.webhook_sources import (
    CLOCK,
    GENERIC_SECRET,
    GITHUB_SECRET,
    NEW_STD_SECRET,
    OLD_STD_SECRET,
    STRIPE_SECRET,
    to_collector,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    CLOCK.offset = 0.0
    yield
    CLOCK.offset = 0.0


async def _collector(client: httpx.AsyncClient, count: int) -> str:
    started = await client.post("/workflows/collect", json={"count": count})
    workflow_id: str = started.json()["workflow_id"]
    return workflow_id


async def _result(client: httpx.AsyncClient, workflow_id: str) -> Any:
    result = await client.get(f"/workflows/{workflow_id}/result", params={"timeout": 5})
    assert result.status_code == 200, result.text
    return result.json()["output"]


def _std_headers(
    body: str, *secrets: str, msg_id: str | None = None, at: float | None = None
) -> dict[str, str]:
    """Signed by the standardwebhooks package: code we did not write."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = dt.datetime.fromtimestamp(int(at or time.time()), tz=dt.UTC)
    signatures = " ".join(Webhook(s).sign(msg_id, timestamp, body) for s in secrets)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(timestamp.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
    }


async def test_standard_webhooks_valid_rotated_and_deduplicated(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await _collector(client, 3)
    body = json.dumps({"workflow_id": workflow_id, "item": "a"})
    headers = _std_headers(body, OLD_STD_SECRET)
    first = await anonymous.post("/webhooks/std", content=body, headers=headers)
    assert first.status_code == 202, first.text
    assert first.json()["action"] == "send"
    replay = await anonymous.post("/webhooks/std", content=body, headers=headers)
    assert (replay.status_code, replay.json()) == (first.status_code, first.json())
    # the sender rotates: signs with an unknown new key and our new key; either matches
    body_b = json.dumps({"workflow_id": workflow_id, "item": "b"})
    unknown = "whsec_" + "QUJD" * 8
    rotated = _std_headers(body_b, unknown, NEW_STD_SECRET)
    assert (
        await anonymous.post("/webhooks/std", content=body_b, headers=rotated)
    ).status_code == 202
    body_c = json.dumps({"workflow_id": workflow_id, "item": "c"})
    ok = await anonymous.post(
        "/webhooks/std", content=body_c, headers=_std_headers(body_c, NEW_STD_SECRET)
    )
    assert ok.status_code == 202
    assert await _result(client, workflow_id) == ["a", "b", "c"]  # "a" delivered once


async def test_standard_webhooks_under_svix_header_names(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    """Svix sends the same scheme as svix-id / svix-timestamp / svix-signature."""
    workflow_id = await _collector(client, 2)
    body = json.dumps({"workflow_id": workflow_id, "item": "svix"})
    standard = _std_headers(body, NEW_STD_SECRET)
    svix = {k.replace("webhook-", "svix-"): v for k, v in standard.items()}
    assert set(svix) == {"svix-id", "svix-timestamp", "svix-signature", "content-type"}
    first = await anonymous.post("/webhooks/std", content=body, headers=svix)
    assert first.status_code == 202, first.text
    assert first.json()["delivery_id"] == standard["webhook-id"]
    again = await anonymous.post("/webhooks/std", content=body, headers=svix)
    assert again.json() == first.json()  # deduplicated by svix-id
    tampered = {**svix, "svix-signature": _std_headers("{}", NEW_STD_SECRET)["webhook-signature"]}
    refused = await anonymous.post("/webhooks/std", content=body, headers=tampered)
    assert refused.status_code == 401 and refused.json()["detail"]["reason"] == "mismatch"
    no_id = {k: v for k, v in svix.items() if k != "svix-id"}
    missing = await anonymous.post("/webhooks/std", content=body, headers=no_id)
    assert missing.status_code == 401 and missing.json()["detail"]["reason"] == "missing_header"
    body_b = json.dumps({"workflow_id": workflow_id, "item": "standard"})
    standard_b = _std_headers(body_b, NEW_STD_SECRET)
    assert (await anonymous.post("/webhooks/std", content=body_b, headers=standard_b)).is_success
    assert await _result(client, workflow_id) == ["svix", "standard"]


async def test_standard_webhooks_rejections(anonymous: httpx.AsyncClient) -> None:
    body = json.dumps({"workflow_id": "w", "item": 1})
    good = _std_headers(body, NEW_STD_SECRET)

    async def post(content: str | bytes, headers: dict[str, str]) -> httpx.Response:
        return await anonymous.post("/webhooks/std", content=content, headers=headers)

    tampered = body.replace('"item": 1', '"item": 2')
    assert len(tampered) == len(body)
    cases = {
        "tampered": await post(tampered, good),
        "wrong secret": await post(body, _std_headers(body, "whsec_" + "eHl6" * 8)),
        "stale": await post(body, _std_headers(body, NEW_STD_SECRET, at=time.time() - 400)),
        "future": await post(body, _std_headers(body, NEW_STD_SECRET, at=time.time() + 400)),
        "no signature": await post(
            body, {k: v for k, v in good.items() if k != "webhook-signature"}
        ),
        "no id": await post(body, {k: v for k, v in good.items() if k != "webhook-id"}),
        "no timestamp": await post(
            body, {k: v for k, v in good.items() if k != "webhook-timestamp"}
        ),
        "bad timestamp": await post(body, {**good, "webhook-timestamp": "soon"}),
        "v2 only": await post(
            body, {**good, "webhook-signature": good["webhook-signature"].replace("v1,", "v2,")}
        ),
    }
    for name, response in cases.items():
        assert response.status_code == 401, name
        assert response.json()["error"] == "invalid_signature", name
        assert NEW_STD_SECRET not in response.text
    reasons = {name: r.json()["detail"]["reason"] for name, r in cases.items()}
    assert reasons["stale"] == "stale"
    assert reasons["future"] == "future"
    assert reasons["tampered"] == reasons["wrong secret"] == "mismatch"
    assert reasons["no signature"] == "missing_header"


async def test_standard_webhooks_replay_after_the_window_is_401(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await _collector(client, 1)
    body = json.dumps({"workflow_id": workflow_id, "item": "x"})
    headers = _std_headers(body, NEW_STD_SECRET)
    assert (await anonymous.post("/webhooks/std", content=body, headers=headers)).status_code == 202
    CLOCK.offset = 301
    late = await anonymous.post("/webhooks/std", content=body, headers=headers)
    assert late.status_code == 401
    assert late.json()["detail"]["reason"] == "stale"
    assert await _result(client, workflow_id) == ["x"]


async def test_webhook_order_of_checks(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    def post(body: str) -> Any:
        return anonymous.post(
            "/webhooks/std", content=body, headers=_std_headers(body, NEW_STD_SECRET)
        )

    assert (await post("{not json")).status_code == 400
    unfit = await post(json.dumps({"item": 1}))
    assert unfit.status_code == 422
    assert unfit.json()["detail"]["errors"][0]["loc"] == ["body", "workflow_id"]
    unknown = await post(json.dumps({"workflow_id": f"missing-{uuid.uuid4()}"}))
    assert unknown.status_code == 404
    workflow_id = await _collector(client, 1)
    await post(json.dumps({"workflow_id": workflow_id, "item": 1}))
    await _result(client, workflow_id)
    finished = await post(json.dumps({"workflow_id": workflow_id, "item": 2}))
    assert finished.status_code == 409
    ignored = await post(json.dumps({"workflow_id": workflow_id, "item": "ignore-me"}))
    assert ignored.json()["action"] == "ignored"
    bad_sig_and_json = await anonymous.post("/webhooks/std", content="{not json", headers={})
    assert bad_sig_and_json.status_code == 401  # the signature is checked first
    assert (await anonymous.post("/webhooks/nope", content="{}")).status_code == 404


def _stripe_headers(
    body: str, secret: str = STRIPE_SECRET, at: float | None = None
) -> dict[str, str]:
    t = str(int(at or time.time()))
    v1 = hmac.new(secret.encode(), f"{t}.{body}".encode(), hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={t},v1={v1}", "content-type": "application/json"}


def _stripe_event(workflow_id: str, event_id: str | None = None) -> str:
    return json.dumps(
        {
            "id": event_id or f"evt_{uuid.uuid4().hex}",
            "type": "payment_intent.succeeded",
            "data": {"object": {"metadata": {"workflow_id": workflow_id}}},
        }
    )


async def test_stripe_vectors(anonymous: httpx.AsyncClient, client: httpx.AsyncClient) -> None:
    workflow_id = await _collector(client, 2)
    body = _stripe_event(workflow_id, "evt_1")
    headers = _stripe_headers(body)
    first = await anonymous.post("/webhooks/stripe", content=body, headers=headers)
    assert first.status_code == 202, first.text
    assert first.json()["delivery_id"] == "evt_1"
    replay = await anonymous.post("/webhooks/stripe", content=body, headers=headers)
    assert replay.json() == first.json()
    # several v1 signatures (Stripe's own secret rotation): one valid is enough
    body2 = _stripe_event(workflow_id, "evt_2")
    good = _stripe_headers(body2)["Stripe-Signature"]
    rotated = {"Stripe-Signature": good + ",v1=" + "0" * 64}
    assert (
        await anonymous.post("/webhooks/stripe", content=body2, headers=rotated)
    ).status_code == 202
    assert await _result(client, workflow_id) == ["evt_1", "evt_2"]

    tampered = body.replace("evt_1", "evt_7")
    for content, hdrs in [
        (tampered, headers),
        (body, _stripe_headers(body, "whsec_other")),
        (body, _stripe_headers(body, at=time.time() - 400)),
        (body, _stripe_headers(body, at=time.time() + 400)),
        (body, {}),
        (body, {"Stripe-Signature": "v1=" + "0" * 64}),
        (body, {"Stripe-Signature": f"t={int(time.time())}"}),
    ]:
        response = await anonymous.post("/webhooks/stripe", content=content, headers=hdrs)
        assert response.status_code == 401, (content, hdrs)
    CLOCK.offset = 301
    assert (
        await anonymous.post("/webhooks/stripe", content=body, headers=headers)
    ).status_code == 401
    CLOCK.offset = 0
    wrong_shape = json.dumps({"id": "evt_3", "type": "payment_intent.succeeded", "data": {}})
    unusable = await anonymous.post(
        "/webhooks/stripe", content=wrong_shape, headers=_stripe_headers(wrong_shape)
    )
    assert unusable.status_code == 422
    no_id = json.dumps({"type": "x"})
    assert (
        await anonymous.post("/webhooks/stripe", content=no_id, headers=_stripe_headers(no_id))
    ).status_code == 422


def _hub(body: str, secret: str = GITHUB_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


async def test_github_vectors_start_a_workflow_once(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    body = json.dumps({"a": 41})
    delivery = str(uuid.uuid4())
    headers = {"X-Hub-Signature-256": _hub(body), "X-GitHub-Delivery": delivery}
    first = await anonymous.post("/webhooks/github", content=body, headers=headers)
    assert first.status_code == 202, first.text
    assert first.json()["workflow_id"] == f"github:{delivery}"
    replay = await anonymous.post("/webhooks/github", content=body, headers=headers)
    assert replay.json() == first.json()
    assert await _result(client, f"github:{delivery}") == 42
    for content, hdrs in [
        ('{"a": 42}', headers),
        (body, {**headers, "X-Hub-Signature-256": _hub(body, "wrong")}),
        (body, {"X-GitHub-Delivery": delivery}),
        (body, {**headers, "X-Hub-Signature-256": _hub(body).removeprefix("sha256=")}),
    ]:
        assert (
            await anonymous.post("/webhooks/github", content=content, headers=hdrs)
        ).status_code == 401
    no_delivery = await anonymous.post(
        "/webhooks/github", content=body, headers={"X-Hub-Signature-256": _hub(body)}
    )
    assert no_delivery.status_code == 422
    bad_input = json.dumps({"a": "x"})
    unfit = await anonymous.post(
        "/webhooks/github",
        content=bad_input,
        headers={"X-Hub-Signature-256": _hub(bad_input), "X-GitHub-Delivery": str(uuid.uuid4())},
    )
    assert unfit.status_code == 422


async def test_generic_hmac_vectors(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    workflow_id = await _collector(client, 1)
    body = json.dumps({"workflow_id": workflow_id, "item": "g"})
    sig = "sha256=" + hmac.new(GENERIC_SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    headers = {"X-Signature": sig, "X-Delivery": "d-1"}
    assert (
        await anonymous.post("/webhooks/generic", content=body, headers=headers)
    ).status_code == 202
    assert (
        await anonymous.post("/webhooks/generic", content=body, headers=headers)
    ).status_code == 202
    assert await _result(client, workflow_id) == ["g"]
    # a retry after the workflow consumed it and finished still gets the first answer
    late = await anonymous.post("/webhooks/generic", content=body, headers=headers)
    assert late.status_code == 202
    assert late.json()["action"] == "send"
    tampered = body[:-2] + "h" + body[-1:]
    assert (
        await anonymous.post("/webhooks/generic", content=tampered, headers=headers)
    ).status_code == 401
    assert (
        await anonymous.post("/webhooks/generic", content=body, headers={"X-Delivery": "d"})
    ).status_code == 401


@pytest.mark.parametrize("topic", ["a\u0000b", "t" * 10_000])
async def test_a_handler_sending_an_unstorable_topic_is_a_400_not_a_retry(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient, topic: str
) -> None:
    """A NUL or an over-long topic from a webhook handler is the delivery's fault: 400 with a
    JSON body (a 503 would make the provider retry it for days), and no SQL in the answer."""
    workflow_id = await _collector(client, 1)
    body = json.dumps({"workflow_id": workflow_id, "item": "g", "topic": topic})
    sig = "sha256=" + hmac.new(GENERIC_SECRET.encode(), body.encode(), hashlib.sha256).hexdigest()
    headers = {"X-Signature": sig, "X-Delivery": f"bad-topic-{uuid.uuid4().hex}"}
    answer = await anonymous.post("/webhooks/generic", content=body, headers=headers)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "invalid_argument"
    assert "INSERT" not in answer.text and "SELECT" not in answer.text


def test_sources_refuse_bad_secrets() -> None:
    with pytest.raises(ConfigurationError):
        WebhookSource("s", "whsec_***", StandardWebhooks(), to_collector)
    with pytest.raises(ConfigurationError):
        WebhookSource("s", [], StandardWebhooks(), to_collector)
    source = WebhookSource("s", NEW_STD_SECRET, StandardWebhooks(), to_collector)
    assert NEW_STD_SECRET not in repr(source)


async def test_secrets_and_signatures_stay_out_of_logs_and_inputs(
    anonymous: httpx.AsyncClient, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = json.dumps({"a": 1})
    signature = _hub(body)
    delivery = str(uuid.uuid4())
    headers = {"X-Hub-Signature-256": signature, "X-GitHub-Delivery": delivery}
    assert (
        await anonymous.post("/webhooks/github", content=body, headers=headers)
    ).status_code == 202
    bad = {**headers, "X-Hub-Signature-256": _hub(body, "wrong")}
    assert (await anonymous.post("/webhooks/github", content=body, headers=bad)).status_code == 401
    unusable = json.dumps({"id": "evt_x", "type": "payment_intent.succeeded"})
    await anonymous.post("/webhooks/stripe", content=unusable, headers=_stripe_headers(unusable))
    stored = (await client.get(f"/workflows/github:{delivery}")).json()
    assert stored["input"] == {"args": [1], "kwargs": {}}
    text = "\n".join(record.getMessage() for record in caplog.records) + json.dumps(stored)
    for secret in (GITHUB_SECRET, STRIPE_SECRET, signature, signature.removeprefix("sha256=")):
        assert secret not in text
