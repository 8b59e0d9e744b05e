"""Named SQL queries, read once per dialect from ``sql/<dialect>/queries.sql``."""

from __future__ import annotations

import functools
import re
from importlib import resources
from importlib.resources.abc import Traversable
from typing import LiteralString

DIALECTS = ("postgres", "sqlite")

# A block starts with "-- name --" alone on a line, then a one-line "-- description".
_HEADER = re.compile(r"^-- ([a-z][a-z0-9_]*) --$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, LiteralString]:
    """Split a queries file into ``{name: sql}``; raises ValueError on a malformed block."""
    queries: dict[str, LiteralString] = {}
    headers = list(_HEADER.finditer(text))
    for index, header in enumerate(headers):
        end = headers[index + 1].start() if index + 1 < len(headers) else len(text)
        name = header.group(1)
        lines = text[header.end() : end].strip().splitlines()
        if not lines or not lines[0].startswith("-- "):
            raise ValueError(f"query {name!r} has no one-line '-- description' after its header")
        body = "\n".join(lines[1:]).strip()
        if not body:
            raise ValueError(f"query {name!r} has no SQL")
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice")
        # Shipped with the package, never user input: LiteralString is the truth (mypy treats
        # LiteralString as str, so no cast is needed for it).
        queries[name] = body
    return queries


@functools.cache
def load_queries(dialect: str) -> dict[str, LiteralString]:
    """The queries of ``dialect`` ("postgres" or "sqlite"), parsed once per process."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}; expected one of {DIALECTS}")
    text = sql_directory(dialect).joinpath("queries.sql").read_text(encoding="utf-8")
    return parse_queries(text)


def sql_directory(dialect: str) -> Traversable:
    """The folder holding ``queries.sql`` and ``migrations/`` for ``dialect``."""
    return resources.files("orchestrator.store").joinpath("sql", dialect)
