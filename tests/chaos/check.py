"""The chaos checker: the store's histories and the effects' ledger must tell the same story.

For every checkout saga (and its child ``packing``):
- it ended: SUCCESS, COMPENSATED, or CANCELLED (a cancel with rollback that found nothing to
  undo, or came after the pivot); nothing is left running;
- both directions: every forward step recorded as done applied its effect exactly once, and
  every applied effect belongs to a forward step recorded as done; every compensation recorded
  applied its effect once, under its own key, and every applied compensation is recorded;
- a COMPENSATED saga undid each of its completed compensable steps exactly once, newest first
  (by the order in which the forward steps were recorded); a SUCCESS saga undid nothing;
- nothing was undone once the pivot (ship) completed;
- no step was recorded after its workflow's final status (the audit trigger's clock);
- a duplicated payment message was stored once and consumed at most once.
Any violation is reported with the saga's id and what was seen.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import psycopg

from tests.chaos.app import COMPENSABLE, PIVOT
from tests.recovery.ledger import LedgerSnapshot

ENDED = {"SUCCESS", "COMPENSATED", "CANCELLED"}

AUDIT_SQL = """
CREATE TABLE IF NOT EXISTS chaos_audit (
    id bigserial PRIMARY KEY, workflow_id text NOT NULL, what text NOT NULL,
    detail text, at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE OR REPLACE FUNCTION chaos_audit_step() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chaos_audit (workflow_id, what, detail)
    VALUES (NEW.workflow_id, 'step', NEW.step_number::text || ' ' || NEW.name);
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION chaos_audit_end() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO chaos_audit (workflow_id, what, detail) VALUES (NEW.workflow_id, 'end', NEW.status);
    RETURN NULL;
END $$;
DROP TRIGGER IF EXISTS chaos_audit_step ON steps;
CREATE TRIGGER chaos_audit_step AFTER INSERT ON steps
    FOR EACH ROW EXECUTE FUNCTION chaos_audit_step();
DROP TRIGGER IF EXISTS chaos_audit_end ON workflows;
CREATE TRIGGER chaos_audit_end AFTER UPDATE OF status ON workflows
    FOR EACH ROW WHEN (NEW.status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'COMPENSATED',
                                      'COMPENSATION_FAILED', 'MAX_RECOVERY_ATTEMPTS_EXCEEDED')
                       AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION chaos_audit_end();
"""


def install_audit(url: str, schema: str = "orchestrator") -> None:
    """Triggers that log, with the database's clock, each step inserted and each final status
    written: the checker compares them (a step after the end is a violation)."""
    with psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}") as db:
        db.execute(AUDIT_SQL)


@dataclass
class Step:
    workflow_id: str
    number: int
    name: str
    kind: str
    error: str | None
    compensates: int | None
    seq: int

    @property
    def key(self) -> str:
        return f"{self.workflow_id}:{self.number}"

    @property
    def done(self) -> bool:
        return self.error is None


@dataclass
class Report:
    sagas: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    reexecutions: int = 0
    compensations: int = 0

    def fail(self, saga: str, message: str) -> None:
        self.violations.append(f"{saga}: {message}")


def _owner(key: str) -> str:
    return key.rsplit(":", 1)[0]


def _cut_short_past_the_pivot(
    saga: str, status: object, history: list[Step], unrecorded: set[str]
) -> set[str]:
    """The one applied effect a CANCELLED saga may leave unrecorded (docs/sagas.md, "Crashes,
    pauses and cancels"): a cancel with rollback came after the pivot was recorded, and the
    worker died while the next step ran. Past the pivot nothing is undone and the saga ends
    CANCELLED as a plain cancel does, without running that step again: its effect may have
    happened (once), unrecorded; a resume would run it again with the same key. Only that
    step qualifies: the saga's own, numbered right after its last record, with the pivot
    recorded before it."""
    if status != "CANCELLED" or not unrecorded:
        return set()
    own = [s for s in history if s.workflow_id == saga]
    if not any(s.name == PIVOT and s.kind == "step" and s.done for s in own):
        return set()
    in_flight = f"{saga}:{max(s.number for s in own) + 1}"
    return {in_flight} if unrecorded == {in_flight} else set()


def check(
    url: str, snapshot: LedgerSnapshot, saga_ids: list[str], schema: str = "orchestrator"
) -> Report:
    """Check every saga in ``saga_ids`` (see the module docstring)."""
    with psycopg.connect(url, options=f"-c search_path={schema}") as db:
        statuses = dict(db.execute("SELECT workflow_id, status FROM workflows").fetchall())
        steps: dict[str, list[Step]] = defaultdict(list)
        for row in db.execute(
            "SELECT workflow_id, step_number, name, kind, error, compensates_step, seq"
            " FROM steps ORDER BY workflow_id, step_number"
        ):
            steps[row[0]].append(Step(*row))
        ends: dict[str, Any] = {}
        late: dict[str, list[str]] = defaultdict(list)
        audit = db.execute(
            "SELECT workflow_id, what, detail, at FROM chaos_audit ORDER BY id"
        ).fetchall()
        for workflow_id, what, detail, at in audit:
            if what == "end":
                ends.setdefault(workflow_id, at)
            elif workflow_id in ends and at > ends[workflow_id]:
                late[workflow_id].append(
                    f"step {detail} at {at} after the end at {ends[workflow_id]}"
                )
        messages = db.execute(
            "SELECT destination_id, idempotency_key, consumed FROM messages"
        ).fetchall()

    report = Report(sagas=len(saga_ids))
    forward_applied = {e.removeprefix("fwd:") for e in snapshot.applied if e.startswith("fwd:")}
    comp_pairs = [
        e.removeprefix("comp:").split("@") for e in snapshot.applied if e.startswith("comp:")
    ]
    undone_by_owner: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for own, target in comp_pairs:
        undone_by_owner[_owner(own)].append((own, target))
    report.compensations = len(comp_pairs)
    report.reexecutions = sum(snapshot.attempts.values()) - len(snapshot.applied)
    sent = Counter((destination, key) for destination, key, _ in messages if key is not None)
    for (destination, key), count in sent.items():
        if count > 1:
            report.fail(destination, f"message {key} stored {count} times")

    for saga in saga_ids:
        child = f"{saga}-packing"
        status = statuses.get(saga)
        report.statuses[str(status)] += 1
        if status not in ENDED:
            report.fail(saga, f"did not end: {status}")
            continue
        if statuses.get(child) not in (None, *ENDED, "ERROR"):
            report.fail(saga, f"its child did not end: {statuses.get(child)}")
        for workflow_id in (saga, child):
            for line in late.get(workflow_id, []):
                report.fail(workflow_id, f"recorded after its end: {line}")
        history = steps.get(saga, []) + steps.get(child, [])
        forward = {s.key: s for s in history if s.kind == "step" and s.done}
        effectful = {k: s for k, s in forward.items() if s.name in (*COMPENSABLE, PIVOT, "notify")}
        applied = {k for k in forward_applied if _owner(k) in (saga, child)}
        applied -= _cut_short_past_the_pivot(saga, status, history, applied - set(effectful))
        if set(effectful) != applied:
            report.fail(
                saga,
                f"recorded forward steps {sorted(effectful)} but applied effects {sorted(applied)}",
            )
        comps = [s for s in history if s.kind == "compensation" and s.done]
        ledger_comps = undone_by_owner.get(saga, []) + undone_by_owner.get(child, [])
        if {s.key for s in comps} != {own for own, _ in ledger_comps}:
            report.fail(
                saga,
                f"recorded compensations {sorted(s.key for s in comps)} but applied"
                f" {sorted(own for own, _ in ledger_comps)}",
            )
        targets = Counter(target for _, target in ledger_comps)
        twice = [target for target, count in targets.items() if count > 1]
        if twice:
            report.fail(saga, f"undone more than once: {twice}")
        stray = [target for target in targets if target not in effectful]
        if stray:
            report.fail(saga, f"compensations of steps not recorded as done: {stray}")
        compensable_done = {k for k, s in effectful.items() if s.name in COMPENSABLE}
        shipped = any(s.name == PIVOT for s in effectful.values())
        if shipped and targets:
            report.fail(saga, f"undone after the pivot completed: {sorted(targets)}")
        if status == "COMPENSATED" and set(targets) != compensable_done:
            report.fail(
                saga,
                f"COMPENSATED but undid {sorted(targets)} of {sorted(compensable_done)}",
            )
        if status == "SUCCESS" and (targets or not shipped):
            report.fail(saga, f"SUCCESS but undid {sorted(targets)} (shipped: {shipped})")
        if status == "CANCELLED" and (targets or (compensable_done and not shipped)):
            report.fail(
                saga,
                f"CANCELLED with {sorted(compensable_done)} done, {sorted(targets)} undone,"
                f" shipped: {shipped}",
            )
        # Newest first: the saga's own compensation records, in step order, undo forward
        # steps recorded ever earlier (seq is the store's order of recording).
        target_of = dict(ledger_comps)
        order = [
            effectful[target_of[s.key]].seq
            for s in sorted(comps, key=lambda s: s.number)
            if s.workflow_id == saga and target_of.get(s.key) in effectful
        ]
        if order != sorted(order, reverse=True):
            report.fail(saga, f"compensations not in reverse order: forward seqs {order}")
        received = [s for s in steps.get(saga, []) if s.kind == "recv" and s.done]
        if len(received) > 1:
            report.fail(saga, f"received {len(received)} payments")
    return report
