"""The shop's web page, served by the orchestrator's service: place an order, go pay, watch it.

``GET /shop`` lists the products; the order form posts to ``POST /shop/orders``, which starts
the checkout saga (workflow id = order id), waits for its ``payment_url`` event and redirects
the browser there. The payment page sends the customer back to ``/shop/orders/{id}``, which
polls ``/shop/orders/{id}/status`` until the saga ends: ``completed`` or ``compensated``.
While the order awaits payment, that page shows the payment link the saga published; it links
the order to its saga in the orchestrator's console (``/console/#/workflows/{id}``).
"""

from __future__ import annotations

import html
import json
import uuid
from typing import Annotated, Any
from urllib.parse import parse_qs

import httpx
from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from orchestrator import WorkflowStatus
from orchestrator.errors import WorkflowNotFoundError
from sagas.app import app
from sagas.checkout import checkout
from sagas.config import ShopConfig
from sagas.models import LineItem, Order, Receipt, RefundRequest
from sagas.refund import refund

router = APIRouter(prefix="/shop", tags=["shop"])
OrderId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]
PAYMENT_URL_WAIT_SECONDS = 30.0

_STATES = {
    WorkflowStatus.SUCCESS: "completed",
    WorkflowStatus.COMPENSATED: "compensated",
    WorkflowStatus.COMPENSATING: "compensating",
    WorkflowStatus.COMPENSATION_FAILED: "needs attention",
}

_STYLE = """body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;color:#222}
.card{border:1px solid #ddd;border-radius:12px;padding:1.5rem;margin-bottom:1rem}
label{display:block;margin:.6rem 0 .2rem} input,select{font-size:1rem;padding:.3rem;width:100%}
button{font-size:1rem;padding:.6rem 1.4rem;border-radius:8px;border:0;background:#0a7;
color:#fff;cursor:pointer;margin-top:1rem} code{background:#f4f4f4;padding:0 .2rem}
#status{font-weight:bold} .completed{color:#0a7} .compensated,.failed{color:#c40}"""


def _page(title: str, body: str, script: str = "") -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body><h1>{html.escape(title)}</h1>{body}<script>{script}</script></body></html>"""
    )


async def _products() -> list[dict[str, Any]]:
    url = f"{ShopConfig.from_env().inventory_url}/products"
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            products: list[dict[str, Any]] = (await client.get(url)).raise_for_status().json()
    except (httpx.HTTPError, ValueError):
        return []
    return products


@router.get("", response_class=HTMLResponse, summary="The shop page")
async def shop_page() -> HTMLResponse:
    options = "".join(
        f'<option value="{html.escape(p["sku"])}">{html.escape(p["name"])} — '
        f"{p['price_cents'] / 100:.2f} EUR ({p['stock']} in stock)</option>"
        for p in await _products()
    )
    if not options:
        return _page("Saga Shop", "<p>The inventory service is not reachable.</p>")
    return _page(
        "Saga Shop",
        f"""<form class="card" method="post" action="/shop/orders">
<label for="sku">Product</label><select id="sku" name="sku">{options}</select>
<label for="quantity">Quantity</label>
<input id="quantity" name="quantity" type="number" min="1" max="100" value="1">
<label for="address">Ship to</label>
<input id="address" name="address" value="1 Durable Street, Replay City">
<button id="order" type="submit">Place order</button></form>
<p>Placing an order starts the <code>checkout</code> saga; you are sent to the payment page.</p>""",
    )


@router.post("/orders", summary="Place an order (form post): start checkout, go pay")
async def place_order(request: Request) -> Response:
    form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
    try:
        order = Order(
            order_id=f"order-{uuid.uuid4().hex[:12]}",
            items=[LineItem(sku=form.get("sku", ""), quantity=int(form.get("quantity") or 1))],
            address=form.get("address") or "unknown",
        )
    except ValueError as invalid:  # (pydantic's ValidationError is one): nothing started
        reason = html.escape(str(invalid).splitlines()[-1].strip() or str(invalid))
        page = _page(
            "Order not placed",
            f"<p id='error'>The order was not placed: choose a product and a quantity"
            f" ({reason}).</p>",
        )
        page.status_code = 422
        return page
    await app.start(checkout, order, workflow_id=order.order_id)
    url = await app.get_event(order.order_id, "payment_url", timeout=PAYMENT_URL_WAIT_SECONDS)
    target = url if isinstance(url, str) else f"/shop/orders/{order.order_id}"
    return RedirectResponse(target, status_code=303)


async def _state(workflow_id: str) -> dict[str, Any] | None:
    try:
        info = await app.retrieve(workflow_id).status()
    except WorkflowNotFoundError:
        return None
    events = await app.get_events(workflow_id)
    state = _STATES.get(info.status)
    if state is None:
        state = "failed" if info.status.is_terminal else str(events.get("status", "processing"))
    return {
        "workflow_id": workflow_id,
        "state": state,
        "workflow_status": info.status.value,
        "events": events,
        "error": info.error,
        "output": info.output if info.status is WorkflowStatus.SUCCESS else None,
    }


@router.get("/orders/{order_id}/status", summary="An order's state (JSON)")
async def order_status(order_id: OrderId) -> JSONResponse:
    state = await _state(order_id)
    if state is None:
        return JSONResponse({"error": "not_found", "message": f"no order {order_id}"}, 404)
    state["refund"] = await _state(f"refund-{order_id}")
    return JSONResponse(json.loads(json.dumps(state, default=str)))


@router.get("/orders/{order_id}", response_class=HTMLResponse, summary="An order's page")
async def order_page(order_id: OrderId, request: Request) -> HTMLResponse:
    oid = html.escape(order_id)
    # This page is served by the orchestrator's service: its console is under the same base.
    console = html.escape(f"{str(request.base_url).rstrip('/')}/console/#/workflows/{order_id}")
    body = f"""<div class="card"><p>Order <code>{oid}</code></p>
<p>Status: <span id="status">loading…</span></p><p id="detail"></p>
<p id="payment" hidden><a id="payment-link" href="">Pay for this order</a></p>
<form method="post" action="/shop/orders/{oid}/refund" id="refund-form" hidden>
<button id="refund" type="submit">Refund this order</button></form>
<p>Refund: <span id="refund-status">none</span></p></div>
<p><a href="/shop">Back to the shop</a> · <a id="console-link" href="{console}">This order's
saga in the console</a> · <a href="/docs">API</a></p>"""
    script = f"""const final=new Set(["completed","compensated","failed","needs attention"]);
async function poll(){{
  const r=await fetch("/shop/orders/{oid}/status"); const s=await r.json();
  const el=document.getElementById("status"); el.textContent=s.state; el.className=s.state;
  document.getElementById("detail").textContent=s.error?("why: "+s.error):"";
  const pay=s.events.payment_url, waiting=s.events.status==="awaiting_payment"&&!final.has(s.state)
    &&typeof pay==="string"&&(pay.startsWith("http://")||pay.startsWith("https://"));
  document.getElementById("payment").hidden=!waiting;
  if(waiting) document.getElementById("payment-link").href=pay;
  document.getElementById("refund-form").hidden=!(s.state==="completed"&&!s.refund);
  if(s.refund) document.getElementById("refund-status").textContent=s.refund.state;
  if(!final.has(s.state)||(s.refund&&!final.has(s.refund.state))) setTimeout(poll,500);
}}
poll();"""
    return _page("Your order", body, script)


@router.post("/orders/{order_id}/refund", summary="Refund a completed order (form post)")
async def refund_order(order_id: OrderId) -> RedirectResponse:
    info = await app.retrieve(order_id).status()
    if info.status is WorkflowStatus.SUCCESS:
        receipt = Receipt.model_validate(info.output)
        await app.start(refund, RefundRequest(receipt=receipt), workflow_id=f"refund-{order_id}")
    return RedirectResponse(f"/shop/orders/{order_id}", status_code=303)
