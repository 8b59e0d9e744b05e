"""``app.set_attributes`` inside a workflow: a durable call that writes the workflow's
attributes with its step (the rules: orchestrator/attributes.py)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from orchestrator.attributes import MAX_ATTRIBUTES, check_attributes, refuse_subject
from orchestrator.engine.run import Attempt, Call, require_run
from orchestrator.store.base import Store
from orchestrator.types import StepKind


class Attributes:
    """``app.set_attributes`` inside a workflow: a durable call, recorded as a step with the
    attributes written in the same transaction, so a replay does not write them again."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        run = require_run("app.set_attributes()")
        checked = check_attributes(attributes)
        refuse_subject(checked)
        if not checked:
            return

        async def perform(attempt: Attempt) -> None:
            step = run.step_record(
                attempt.number,
                "set_attributes",
                StepKind.SET_ATTRIBUTES,
                output=json.dumps(sorted(checked)),
                started_at=attempt.started_at,
            )
            write = self.store.set_attributes(run.workflow_id, checked, step, limit=MAX_ATTRIBUTES)
            await run.write(write, step)

        await run.call(
            Call(
                "set_attributes",
                StepKind.SET_ATTRIBUTES,
                perform=perform,
                replay=lambda _: None,
                traced=True,
                detail=",".join(sorted(checked)),
            )
        )
