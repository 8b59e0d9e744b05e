"""The plans of messages by business key (orchestrator/store/plans.py), driven by hand: a send
to a key delivers to its holder or keeps the message; a claim moves kept messages under the
key's lock; a repeat stores nothing. With a sealer, a holder (or claimer) with a subject gets
the payload sealed again under its subject's key, in the same plan (transaction)."""

from __future__ import annotations

import dataclasses
import json

from orchestrator.store import plans
from orchestrator.store.base import KeyedDelivery, KeyedMessage, WrappedSubjectKey
from tests.unit.test_store_plans import (
    NEW,
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
        ("key_holder", rows({"workflow_id": "wf", "subject": None})),
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


def test_a_repeat_of_a_generated_key_answers_as_the_lost_first_commit() -> None:
    # The store's own key (no user key): a repeat is this send retried after its commit's
    # answer was lost, so it answers stored, and where the first try put it.
    message = dataclasses.replace(MESSAGE, idempotency_key=plans.retry_key())
    used = Script(LOCK, ("key_message_used", rows({"destination_id": "wf"})))
    delivered = used.run(plans.send_to_key(message, None, generated_key=True))
    assert delivered == KeyedDelivery("wf", None, True)
    kept = Script(
        LOCK,
        UNUSED,
        ("key_holder", NOTHING),
        ("delete_expired_pending_key", changed(0)),
        ("keep_message", NOTHING),
        ("kept_message_expiry", rows({"expires_at": 456})),
    )
    assert kept.run(plans.send_to_key(message, None, generated_key=True)) == KeyedDelivery(
        None, 456, True
    )
    assert plans.retry_key() != plans.retry_key()


def test_a_claim_locks_moves_then_forgets_the_keys_messages() -> None:
    script = Script(
        LOCK, ("claim_pending_messages", changed(2)), ("delete_pending_messages", changed(3))
    )
    script.run(plans.claim_pending_messages("wf", {"order_id": "42"}))
    assert script.issued[1].params == {"keys": '{"order_id": "42"}', "workflow_id": "wf"}


class Sealer:
    """A MessageSealer that says what it was asked (the real one is tested on both stores)."""

    def new_key(self, subject: str) -> tuple[str, str]:
        return "new-id", f"wrapped({subject})"

    def reseal(self, payload: str, workflow_id: str, subject: str, key: tuple[str, str]) -> str:
        return f"sealed({payload}, {workflow_id}, {subject}, {key[0]})"


SUBJECT_KEY = rows({"key_id": "k1", "wrapped_key": "m1:abc"})


def test_a_holder_with_a_subject_gets_the_payload_sealed_under_its_key() -> None:
    script = Script(
        LOCK,
        UNUSED,
        ("key_holder", rows({"workflow_id": "wf", "subject": "customer:c-7"})),
        ("get_subject_key", SUBJECT_KEY),
        ("get_workflow", rows(workflow_row("wf"))),
        ("message_key_used", NOTHING),
        ("insert_message", changed(1)),
    )
    assert script.run(plans.send_to_key(MESSAGE, None, Sealer())).workflow_id == "wf"
    assert script.issued[2].params["subject_attribute"] == "subject"
    sealed = script.issued[-1].params["payload"]
    assert sealed == 'sealed({"n": 1}, wf, customer:c-7, k1)'


def test_a_holder_whose_subject_has_no_key_yet_gets_one_in_the_same_plan() -> None:
    script = Script(
        LOCK,
        UNUSED,
        ("key_holder", rows({"workflow_id": "wf", "subject": "customer:c-7"})),
        ("get_subject_key", NOTHING),  # erased (or never written): a new key
        ("insert_subject_key", changed(1)),
        ("get_subject_key", rows({"key_id": "new-id", "wrapped_key": "wrapped(customer:c-7)"})),
        ("get_workflow", rows(workflow_row("wf"))),
        ("message_key_used", NOTHING),
        ("insert_message", changed(1)),
    )
    script.run(plans.send_to_key(MESSAGE, None, Sealer()))
    assert script.issued[4].params["wrapped_key"] == "wrapped(customer:c-7)"
    assert script.issued[-1].params["payload"].endswith("customer:c-7, new-id)")


def test_a_holder_without_a_subject_gets_the_payload_as_sent() -> None:
    script = Script(
        LOCK,
        UNUSED,
        ("key_holder", rows({"workflow_id": "wf", "subject": None})),
        ("get_workflow", rows(workflow_row("wf"))),
        ("message_key_used", NOTHING),
        ("insert_message", changed(1)),
    )
    script.run(plans.send_to_key(MESSAGE, None, Sealer()))
    assert script.issued[-1].params["payload"] == MESSAGE.payload


def test_claimed_messages_are_sealed_again_for_a_claimer_with_a_subject() -> None:
    claimed = rows({"message_id": 7, "payload": "~m1"}, {"message_id": 8, "payload": "~m2"})
    script = Script(
        LOCK,
        ("claim_pending_messages", claimed),
        ("delete_pending_messages", changed(2)),
        ("get_workflow_attributes", rows({"name": "subject", "value": "customer:c-7"})),
        ("get_subject_key", SUBJECT_KEY),
        ("set_message_payload", changed(1)),
        ("set_message_payload", changed(1)),
    )
    script.run(plans.claim_pending_messages("wf", {"order_id": "42"}, Sealer()))
    assert [s.params for s in script.issued[-2:]] == [
        {"message_id": 7, "payload": "sealed(~m1, wf, customer:c-7, k1)"},
        {"message_id": 8, "payload": "sealed(~m2, wf, customer:c-7, k1)"},
    ]
    # A claimer without a subject keeps them as they are (sealed as a send to it would be).
    plain = Script(
        LOCK,
        ("claim_pending_messages", claimed),
        ("delete_pending_messages", changed(2)),
        ("get_workflow_attributes", rows({"name": "order_id", "value": "42"})),
    )
    plain.run(plans.claim_pending_messages("wf", {"order_id": "42"}, Sealer()))


def test_a_fork_claims_the_messages_kept_for_the_keys_it_copied() -> None:
    fork = dataclasses.replace(NEW, workflow_id="fork")
    script = Script(
        ("get_workflow", rows(workflow_row("src", status="ERROR"))),
        ("insert_workflow", rows(workflow_row("fork"))),
        ("copy_steps", changed(2)),
        ("copy_workflow_attributes", changed(1)),
        ("get_workflow_attributes", rows({"name": "order_id", "value": "42"})),
        LOCK,
        ("claim_pending_messages", changed(1)),
        ("delete_pending_messages", changed(1)),
    )
    script.run(plans.fork_workflow(fork, "src", 3))
    assert script.issued[6].params == {"keys": '{"order_id": "42"}', "workflow_id": "fork"}


def test_a_rewrap_compare_and_sets_each_key_in_subject_order() -> None:
    b = WrappedSubjectKey("customer:b", "kb", "m1:bbb")
    a = WrappedSubjectKey("customer:a", "ka", "m1:aaa")
    script = Script(("rewrap_subject_key", changed(1)), ("rewrap_subject_key", changed(0)))
    assert script.run(plans.rewrap_subject_keys([(b, "m2:b2"), (a, "m2:a2")])) == 1
    assert [s.params for s in script.issued] == [
        {
            "subject": "customer:a",
            "key_id": "ka",
            "wrapped_key": "m1:aaa",
            "new_wrapped_key": "m2:a2",
        },
        {
            "subject": "customer:b",
            "key_id": "kb",
            "wrapped_key": "m1:bbb",
            "new_wrapped_key": "m2:b2",
        },
    ]  # the second changed meanwhile (erased, renewed, rewrapped elsewhere): left as it is
