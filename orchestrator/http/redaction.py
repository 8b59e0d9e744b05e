"""What the service shows of stored values to people: through a redaction hook, and with
links to traces.

Workflow inputs, outputs and step results are the application's data: card fingerprints,
addresses, tokens. The service renders them (in listings, a workflow's page, its steps and its
rollback plan) through a redactor, ``redact(value, context) -> value``. The default,
``redact_secrets``, masks the values of keys that name secrets (password, token, api_key,
card_number, cvv, iban…) at any depth. An application sets its own with
``create_app(app, redact=...)`` or ``app.redact = ...`` on the Orchestrator; a redactor that
raises shows ``"[redaction failed]"``, never the value. Results and events read by programs
(``/result``, ``/events``) are not redacted: they are the workflow's answer to its caller.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

DEFAULT_TRACE_URL = "http://localhost:16686/trace/{trace_id}"  # Jaeger's UI
MASK = "[redacted]"
FAILED = "[redaction failed]"

SECRET_KEYS = re.compile(  # a key naming a secret, alone or as a part: "payment_token"
    r"(?:^|[_\-.])(?:pass(?:word|wd|phrase)?|secret|token|api[_\-]?key|authorization|"
    r"credentials?|card[_\-]?(?:number|no)|pan|cvv|cvc|iban|ssn|private[_\-]?key)(?:$|[_\-.])",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class RedactionContext:
    """Which value is shown: ``what`` is "input", "output", "step_output" or
    "compensation_input"; the workflow (and step) it belongs to."""

    what: str
    workflow_id: str
    workflow_name: str | None = None
    step_name: str | None = None

    def with_what(self, what: str) -> RedactionContext:
        return RedactionContext(what, self.workflow_id, self.workflow_name, self.step_name)


Redactor = Callable[[Any, RedactionContext], Any]


def redact_secrets(value: Any, context: RedactionContext) -> Any:
    """Mask the values of secret-named keys, at any depth."""
    if isinstance(value, dict):
        return {
            key: MASK
            if isinstance(key, str) and SECRET_KEYS.search(key)
            else redact_secrets(item, context)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_secrets(item, context) for item in value]
    return value


def shown(redact: Redactor, value: Any, context: RedactionContext) -> Any:
    """``value`` through ``redact``; a failing redactor hides the value."""
    if value is None:
        return None
    try:
        return redact(value, context)
    except Exception:
        return FAILED


@dataclass(frozen=True, slots=True)
class View:
    """How the service shows stored values to people: a redactor and a trace URL template."""

    redact: Redactor = redact_secrets
    trace_url: str = DEFAULT_TRACE_URL

    def value(self, value: Any, context: RedactionContext) -> Any:
        return shown(self.redact, value, context)

    def trace(self, trace_id: str | None, find: str | None = None) -> str | None:
        return trace_link(self.trace_url, trace_id, find)


def trace_link(template: str, trace_id: str | None, find: str | None = None) -> str | None:
    """The trace's URL from the template (``{trace_id}``); ``find`` highlights spans whose
    text matches it (Jaeger's ``uiFind``)."""
    if not trace_id or not template:
        return None
    url = template.replace("{trace_id}", quote(trace_id, safe=""))
    if find:
        url += ("&" if "?" in url else "?") + "uiFind=" + quote(find, safe="")
    return url
