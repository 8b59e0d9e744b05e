"""Who is acting: the operator behind an action, for the audit log (migration 0007).

Every operator action (cancel, resume, retry or skip a compensation, fork, bulk actions, moves,
schedule changes) is written to ``audit_log`` with who did it, from which surface, and why.
The surface sets who acts for the calls made inside it::

    with acting_as(Actor("alice", role="operator", surface="http")):
        await app.cancel(workflow_id)  # audited as alice, over HTTP

Outside any ``acting_as``, a Python call is audited as the process's user (``getpass``) on
the ``python`` surface; inside a workflow, as ``workflow:<id>``. An explicit ``by=`` names the
person and keeps the surface.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace

SURFACES = ("python", "http", "console", "cli")
MAX_ACTOR_CHARS = 200
MAX_REASON_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts: a name, the role the service granted ("operator", "reader"; None in Python)
    and the surface the action came from (one of ``SURFACES``)."""

    name: str
    role: str | None = None
    surface: str = "python"


_acting: ContextVar[Actor | None] = ContextVar("orchestrator_actor", default=None)


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    """Make ``actor`` the one audited for the operator calls made inside the block."""
    token = _acting.set(actor)
    try:
        yield actor
    finally:
        _acting.reset(token)


def set_actor(actor: Actor) -> None:
    """Make ``actor`` the one audited from here to the end of the current task's context
    (a request's: the HTTP service sets it per request, whose context ends with it)."""
    _acting.set(actor)


def current_actor(by: str | None = None, *, workflow_id: str | None = None) -> Actor:
    """Who an operator call made now is audited as (``by`` renames the person)."""
    actor = _acting.get()
    if actor is None:
        actor = Actor(f"workflow:{workflow_id}" if workflow_id else _user())
    if by is not None and by.strip():
        actor = replace(actor, name=by.strip()[:MAX_ACTOR_CHARS])
    return actor


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment (a container without passwd entry)
        return "unknown"
