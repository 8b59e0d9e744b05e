"""Replay a saved history against the current code (#19): the regression test of a
production run. Export a workflow's history (``saga workflows export ID -o history.json``),
commit it, and ``assert_replays`` it in CI: a change that would strand such a workflow
(a step inserted, renamed or removed before its end) fails the test, naming the step.

The replay is the upgrade check's (``orchestrator.engine.replay.replay_history``), with the
same verdicts: ``compatible``, ``needs_patch`` (the step, the recorded and the called name) or
``unknown_workflow``. It executes nothing: no step runs, nothing is written, nothing waits.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.app import Orchestrator
from orchestrator.engine.replay import ReplayVerdict, replay_history
from orchestrator.errors import InvalidArgumentError
from orchestrator.history import read_history

History = dict[str, Any] | str | Path


def load_history(history: History) -> dict[str, Any]:
    """A history document from a dict, a JSON text, or the path of a JSON file.

    Raises:
        InvalidArgumentError: the file cannot be read, or the text is not JSON.
    """
    if isinstance(history, dict):
        return history
    if isinstance(history, Path):
        try:
            text = history.read_text(encoding="utf-8")
        except OSError as exc:
            raise InvalidArgumentError(f"cannot read the history file {history}: {exc}") from None
    elif isinstance(history, str):
        text = history
    else:
        raise InvalidArgumentError(
            "a history is a dict, a JSON text or a Path to a JSON file, "
            f"not {type(history).__name__}"
        )
    try:
        document: Any = json.loads(text)
    except ValueError as exc:
        where = f"the file {history}" if isinstance(history, Path) else "the text"
        raise InvalidArgumentError(
            f"{where} is not a JSON history document ({exc}); to read a file, pass a Path"
        ) from None
    if not isinstance(document, dict):
        raise InvalidArgumentError("a history document is a JSON object")
    return document


async def replay(history: History, app: Orchestrator) -> ReplayVerdict:
    """Replay a saved history (``saga workflows export``) against ``app``'s registered
    workflows, executing nothing; the verdict says whether this code carries it on.

    ``app`` need not be launched: its database is opened for the replay and closed after
    (the replay reads the stored workflows of a history's child sagas, if any, from it).

    Raises:
        InvalidArgumentError: the history is malformed or of another format version.
        StoreUnavailableError: ``app``'s database cannot be reached.
    """
    record, steps = read_history(load_history(history))
    engine = app.engine
    opened = not app.launched
    if opened:
        await app.store.open()
    try:
        return await replay_history(
            engine.registry.workflows.get(record.name),
            record,
            steps,
            store=app.store,
            clock=engine.clock,
            saga=engine.saga,
        )
    finally:
        if opened and not app.launched:
            await app.store.close()


async def assert_replays(history: History, app: Orchestrator) -> ReplayVerdict:
    """Replay ``history`` against ``app`` (see ``replay``) and fail unless compatible.

    Raises:
        AssertionError: the code diverges from the history: the step number, the recorded
            and the called name, and what to do.
        InvalidArgumentError: the history is malformed or of another format version.
    """
    verdict = await replay(history, app)
    if not verdict.compatible:
        hint = (
            " (wrap the change in app.patched(...), see docs/upgrading.md)"
            if verdict.verdict == "needs_patch"
            else ""
        )
        raise AssertionError(
            f"workflow {verdict.workflow_id} ({verdict.workflow_name}) does not replay: "
            f"{verdict.reason}{hint}"
        )
    return verdict
