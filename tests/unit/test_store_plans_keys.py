"""The plans of messages by business key (orchestrator/store/plans.py), driven by hand: a send
to a key delivers to its holder or keeps the message; a claim moves kept messages under the
key's lock; a repeat stores nothing."""

from __future__ import annotations

import json

from orchestrator.store import plans
from orchestrator.store.base import KeyedDelivery, KeyedMessage
from tests.unit.test_store_plans import (
    NOTHING,
    RECORDED,
    STEP,
    Script,
    changed,
    rows,
    workflow_row,
)

MESSAGE = KeyedMessage("order_id", "42", "paid", '{"n": 1}', "d-1", 5000)
LOCK = ("lock_message_keys", NOTHING)
UNUSED = ("key_message_used", NOTHING)


def test_a_key_nobody_holds_keeps_the_message_after_forgetting_expired_ones() -> None:
    script = Script(
        LOCK,
        UNUSED,
        ("key_holder", NOTHING),
        ("delete_expired_pending_key", changed(1)),
        ("keep_message", rows({"expires_at": 123})),
    )
    assert script.run(plans.send_to_key(MESSAGE, None)) == KeyedDelivery(None, 123, True)
    assert script.issued[0].params == {"keys": '{"order_id": "42"}'}
    assert script.issued[4].params["keep_ms"] == 5000


def test_a_held_key_sends_to_the_holder_and_records_the_step_with_the_answer() -> None:
    script = Script(
        LOCK,
        UNUSED,
        ("key_holder", rows({"workflow_id": "wf"})),
        ("get_workflow", rows(workflow_row("wf"))),
        ("message_key_used", NOTHING),
        ("insert_message", changed(1)),
        RECORDED,
    )
    delivery = script.run(plans.send_to_key(MESSAGE, STEP))
    assert delivery == KeyedDelivery("wf", None, True) and delivery.delivered
    recorded = script.issued[-1].params["output"]
    assert KeyedDelivery.from_json(recorded) == delivery
    assert json.loads(recorded)["workflow_id"] == "wf"


def test_a_repeated_idempotency_key_stores_nothing() -> None:
    used = Script(LOCK, ("key_message_used", rows({"used": 1})))
    assert used.run(plans.send_to_key(MESSAGE, None)) == KeyedDelivery(None, None, False)
    kept = Script(
        LOCK,
        UNUSED,
        ("key_holder", NOTHING),
        ("delete_expired_pending_key", changed(0)),
        ("keep_message", NOTHING),
    )
    assert not kept.run(plans.send_to_key(MESSAGE, None)).stored


def test_a_claim_locks_moves_then_forgets_the_keys_messages() -> None:
    script = Script(
        LOCK, ("claim_pending_messages", changed(2)), ("delete_pending_messages", changed(3))
    )
    script.run(plans.claim_pending_messages("wf", {"order_id": "42"}))
    assert script.issued[1].params == {"keys": '{"order_id": "42"}', "workflow_id": "wf"}
