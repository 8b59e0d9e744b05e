"""The effects a test's fakes apply, keyed by the idempotency key of the step that applied
them: what ``explore`` checks "every effect exactly once" against.

A fake service records each effect it applies. An idempotent fake (a real payment API
deduplicates by ``Idempotency-Key``) applies an effect once per key::

    ledger = Ledger()


    @app.step()
    async def charge(order: Order) -> str:
        ledger.apply_once("charge")  # keyed by this step's idempotency key
        return "ch_1"

A fake that ignores the key (a bug: the effect applies again when the step runs again after a
crash) calls ``apply`` instead, and ``explore`` reports the double application. Outside a
step, pass the key yourself (an HTTP fake reads the request's ``Idempotency-Key`` header).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from orchestrator import context
from orchestrator.errors import InvalidArgumentError


@dataclass(frozen=True, slots=True)
class Application:
    """One application of an effect: what, under which idempotency key, with what value."""

    effect: str
    key: str
    value: Any = None


class Ledger:
    """Effects applied by a test's fakes (thread-safe: sync steps run in threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._applications: list[Application] = []

    @staticmethod
    def _key(key: str | None) -> str:
        if key is not None:
            return key
        current = context.current()
        if current is None or current.step is None:
            raise InvalidArgumentError(
                "Ledger.apply needs an idempotency key outside a step (pass key=...)"
            )
        return current.step.idempotency_key

    def apply(self, effect: str, key: str | None = None, value: Any = None) -> None:
        """Record that ``effect`` was applied (again, if it was before): a non-idempotent
        effect. ``key``: the idempotency key (default: the running step's)."""
        application = Application(effect, self._key(key), value)
        with self._lock:
            self._applications.append(application)

    def apply_once(self, effect: str, key: str | None = None, value: Any = None) -> bool:
        """Apply ``effect`` unless it was applied under this key: what an idempotent service
        does. Returns True when applied now."""
        application = Application(effect, self._key(key), value)
        with self._lock:
            if any(a.effect == effect and a.key == application.key for a in self._applications):
                return False
            self._applications.append(application)
            return True

    @property
    def applications(self) -> list[Application]:
        """Every application, in order."""
        with self._lock:
            return list(self._applications)

    def counts(self) -> Counter[tuple[str, str]]:
        """How often each (effect, key) was applied."""
        return Counter((a.effect, a.key) for a in self.applications)

    def applied(
        self, effect: str | None = None, *, workflow_id: str | None = None
    ) -> list[Application]:
        """The applications of ``effect`` (any, if None), of one workflow's steps if given."""
        prefix = None if workflow_id is None else f"{workflow_id}:"
        return [
            a
            for a in self.applications
            if (effect is None or a.effect == effect)
            and (prefix is None or a.key.startswith(prefix))
        ]

    def clear(self) -> None:
        with self._lock:
            self._applications.clear()

    def __repr__(self) -> str:
        return f"Ledger({len(self.applications)} applications)"
