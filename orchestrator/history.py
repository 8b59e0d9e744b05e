"""A workflow's history as a JSON document (``saga workflows export``): its record and every
step record, as stored, so that ``orchestrator.testing.replay`` can replay it against code
elsewhere (a test, a laptop) with the same engine as the upgrade check.

The document::

    {
      "format": "saga-orchestrator/history",
      "version": 1,
      "exported_at": "2025-01-31T12:00:00.000Z",
      "workflow": {"workflow_id": "order-1", "name": "checkout", "status": "SUCCESS",
                   "input": "<stored JSON text>", "app_version": "…", …},
      "steps": [{"step_number": 1, "name": "reserve", "kind": "step", "output": "…", …}, …]
    }

Values (inputs, outputs, errors, compensation inputs) stay the stored JSON text, unchanged:
a replay compares them byte for byte. They are the application's data, not redacted: treat
an exported history as you treat the database. A child workflow's own history is not part
of its parent's document (export it by its id).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import types
import typing
from typing import Any

from orchestrator.errors import InvalidArgumentError
from orchestrator.store.base import StepRecord, WorkflowRecord
from orchestrator.types import StepKind, WorkflowStatus

HISTORY_FORMAT = "saga-orchestrator/history"
HISTORY_VERSION = 1


def history_document(
    record: WorkflowRecord, steps: list[StepRecord], *, exported_at_ms: int
) -> dict[str, Any]:
    """The JSON-able document of a workflow's record and its step records."""
    exported_at = dt.datetime.fromtimestamp(exported_at_ms / 1000, tz=dt.UTC)
    return {
        "format": HISTORY_FORMAT,
        "version": HISTORY_VERSION,
        "exported_at": exported_at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "workflow": _plain(record),
        "steps": [_plain(step) for step in sorted(steps, key=lambda s: s.step_number)],
    }


def read_history(document: object) -> tuple[WorkflowRecord, list[StepRecord]]:
    """The workflow record and step records of a history document (as ``history_document``
    writes it, parsed from JSON).

    Raises:
        InvalidArgumentError: not a history document, another version of the format, or a
            field missing or of the wrong type (the message names it).
    """
    if not isinstance(document, dict) or document.get("format") != HISTORY_FORMAT:
        raise InvalidArgumentError(
            f"not a workflow history: expected a JSON object with format {HISTORY_FORMAT!r} "
            "(written by `saga workflows export ID` or Orchestrator.export_history)"
        )
    version = document.get("version")
    if version != HISTORY_VERSION:
        raise InvalidArgumentError(
            f"history format version {version!r} is not supported: this code reads version "
            f"{HISTORY_VERSION} (export the history again with this release)",
            version=version,
        )
    record = _record(WorkflowRecord, document.get("workflow"), "workflow")
    raw_steps = document.get("steps")
    if not isinstance(raw_steps, list):
        raise InvalidArgumentError("history field 'steps' must be a list of step records")
    steps = [_record(StepRecord, raw, f"steps[{i}]") for i, raw in enumerate(raw_steps)]
    numbers = [s.step_number for s in steps]
    if len(set(numbers)) != len(numbers):
        raise InvalidArgumentError("history steps repeat a step_number", step_numbers=numbers)
    for i, step in enumerate(steps):
        if step.workflow_id != record.workflow_id:
            raise InvalidArgumentError(
                f"history field 'steps[{i}].workflow_id' is {step.workflow_id!r}, not the "
                f"workflow's {record.workflow_id!r}"
            )
    return record, sorted(steps, key=lambda s: s.step_number)


def _plain(record: WorkflowRecord | StepRecord) -> dict[str, Any]:
    return {
        field.name: value.value if isinstance(value, enum.Enum) else value
        for field in dataclasses.fields(record)
        for value in (getattr(record, field.name),)
    }


R = typing.TypeVar("R", WorkflowRecord, StepRecord)


def _record(cls: type[R], raw: object, where: str) -> R:
    """``cls`` from ``raw``'s fields, each checked against its annotation (unknown fields are
    ignored; a field with a default may be missing)."""
    if not isinstance(raw, dict):
        raise InvalidArgumentError(f"history field {where!r} must be an object")
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        name = f"{where}.{field.name}"
        if field.name not in raw:
            if field.default is dataclasses.MISSING:
                raise InvalidArgumentError(f"history field {name!r} is missing")
            continue
        values[field.name] = _checked(hints[field.name], raw[field.name], name)
    return cls(**values)


def _checked(hint: Any, value: object, name: str) -> Any:
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None and type(None) in allowed:
        return None
    for kind in allowed:
        if kind in (WorkflowStatus, StepKind) and isinstance(value, str):
            try:
                return kind(value)
            except ValueError:
                continue
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind is str and isinstance(value, str):
            return value
    raise InvalidArgumentError(f"history field {name!r} has an invalid value: {value!r}")
