"""Workflow attributes' rules: business keys (customer id, order id, amount, provider) set at a
workflow's start or from inside it, stored as text and filterable in listings.

Values are strings; a number is stored as its text (``str(42)``) and a filter on it is
equality on that text, not a range. Limits keep the side table and its index small: names
``[a-z][a-z0-9_]{0,62}``, values up to 256 characters, at most 20 attributes per workflow.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Mapping, Sequence

from orchestrator.errors import InvalidArgumentError

MAX_ATTRIBUTES = 20  # per workflow, at start and after every set
# The attribute holding a workflow's subject (``subject=`` at start, or its parent's): set with
# the row, never after, so a workflow's payloads keep one data key (docs/data.md).
SUBJECT_ATTRIBUTE = "subject"
MAX_VALUE_CHARS = 256
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,62}")


def attribute_value(name: str, value: object) -> str:
    """The stored text of one value: a string as is, a number as its text."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | decimal.Decimal):
        raise InvalidArgumentError(
            f"attribute {name!r} must be a string or a number, got {type(value).__name__}",
            name=name,
        )
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_VALUE_CHARS:
        raise InvalidArgumentError(
            f"attribute {name!r} is {len(text)} characters; at most {MAX_VALUE_CHARS}", name=name
        )
    return text


def check_attributes(attributes: object, *, what: str = "attributes") -> dict[str, str]:
    """Validated attributes (name -> text value); InvalidArgumentError names what is wrong."""
    if not isinstance(attributes, Mapping):
        raise InvalidArgumentError(f"{what} must be a mapping of name -> value")
    if len(attributes) > MAX_ATTRIBUTES:
        raise InvalidArgumentError(
            f"{what}: {len(attributes)} attributes given; at most {MAX_ATTRIBUTES} per workflow"
        )
    checked: dict[str, str] = {}
    for name, value in attributes.items():
        if not isinstance(name, str) or NAME_PATTERN.fullmatch(name) is None:
            raise InvalidArgumentError(
                f"invalid attribute name {name!r}: use [a-z][a-z0-9_]{{0,62}} (lower case,"
                " digits and _, starting with a letter)",
                name=str(name),
            )
        checked[name] = attribute_value(name, value)
    return checked


def settable_attributes(attributes: object, subject: object) -> dict[str, str] | None:
    """The attributes a start writes: the given ones (validated; ``subject`` is reserved) and
    the subject under SUBJECT_ATTRIBUTE; None when there are none."""
    checked = {} if attributes is None else check_attributes(attributes)
    refuse_subject(checked)
    if subject is not None:
        if not isinstance(subject, str) or not subject or len(subject) > MAX_VALUE_CHARS:
            raise InvalidArgumentError(
                f"subject must be a non-empty string of at most {MAX_VALUE_CHARS} characters"
            )
        if len(checked) >= MAX_ATTRIBUTES:
            raise InvalidArgumentError(
                f"attributes: {len(checked)} given and a subject; at most {MAX_ATTRIBUTES}"
                " per workflow, the subject included"
            )
        checked[SUBJECT_ATTRIBUTE] = subject
    return checked or None


def refuse_subject(attributes: Mapping[str, str]) -> None:
    """InvalidArgumentError when attributes to set name the reserved subject attribute."""
    if SUBJECT_ATTRIBUTE in attributes:
        raise InvalidArgumentError(
            f"attribute {SUBJECT_ATTRIBUTE!r} is reserved: give a workflow's subject at its"
            " start (subject=...); it cannot be set or changed later",
            name=SUBJECT_ATTRIBUTE,
        )


def parse_attribute_pairs(pairs: Sequence[str], *, what: str = "attribute") -> dict[str, str]:
    """``["customer_id=c-7", "order_id:o-42"]`` (HTTP query parameters, CLI options) as
    attributes: a name, ``=`` or ``:``, then the value (a name holds neither)."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        cut = min((i for i in (pair.find("="), pair.find(":")) if i >= 0), default=-1)
        if cut < 0:
            raise InvalidArgumentError(f"{what} {pair!r}: write it as name=value (or name:value)")
        name, value = pair[:cut], pair[cut + 1 :]
        if name in parsed and parsed[name] != value:
            raise InvalidArgumentError(f"{what} {name!r} is given twice with different values")
        parsed[name] = value
    return check_attributes(parsed, what=f"{what}s")


def parse_message_key(key: str) -> tuple[str, str]:
    """A message's business key, ``"order_id:42"`` (or ``order_id=42``), as the attribute
    (name, value) a workflow holds it by."""
    if not isinstance(key, str):
        raise InvalidArgumentError(f"a message key must be text like 'order_id:42', got {key!r}")
    ((name, value),) = parse_attribute_pairs([key], what="message key").items()
    return name, value
