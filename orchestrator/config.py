"""Settings (environment variables or arguments) and which store a database URL selects."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.errors import ConfigurationError
from orchestrator.serialization import DEFAULT_MAX_PAYLOAD_BYTES

_APP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
ENV_PREFIX = "ORCHESTRATOR_"
# Other environment variables a setting is read from, after its own ORCHESTRATOR_<NAME>.
_ALSO = {"database_url": ("DATABASE_URL",)}
# Keywords that set a field of another name (as the environment variables do).
_KEYWORDS = {"DATABASE_URL": "database_url", "ORCHESTRATOR_DATABASE_URL": "database_url"}


class Settings(BaseModel):
    """Orchestrator settings; each field can come from ``ORCHESTRATOR_<NAME>`` (any case;
    ``database_url`` from ``DATABASE_URL`` too), a keyword argument taking precedence.

    The environment is read here rather than by pydantic-settings, whose import (its cloud
    secret sources, dotenv) cost every process ~80 ms of startup for what this does: the CLI,
    each worker and each service pays that on every start.
    """

    model_config = ConfigDict(extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="postgresql://… or sqlite:///path; unset: embedded SQLite under data_dir",
    )
    read_database_url: str | None = Field(
        default=None,
        description="postgresql://… of a replica for read-only listings (list_workflows, pages,"
        " counts, the console's lists); unset: the primary. Writes never go there",
    )
    schema_name: str = Field(default="orchestrator", description="PostgreSQL schema")
    database_pooling: Literal["session", "transaction"] = Field(
        default="session",
        description="'transaction': database_url goes through a transaction pooler (PgBouncer "
        "pool_mode=transaction): no connect options, no prepared statements, session-bound "
        "work on direct_database_url (docs/operations.md#pgbouncer)",
    )
    direct_database_url: str | None = Field(
        default=None,
        description="postgresql://… straight to the server, for what cannot go through a "
        "transaction pooler: the LISTEN connection and the migration lock; unset with "
        "database_pooling='transaction': waits poll, pending migrations refuse to launch",
    )
    database_pool_size: int = Field(
        default=20,
        ge=2,
        le=1000,
        description="connections this process may open to PostgreSQL (its pool; the LISTEN "
        "connection comes on top, a read_database_url's pool too): a worker uses ~4-10 at its "
        "peak, whatever its concurrency (writes are batched); size it to that when many "
        "workers share one server (docs/scaling.md)",
    )
    data_dir: Path = Field(default=Path(".orchestrator"), description="embedded SQLite folder")
    executor_id: str = Field(default="local", description="stable id of this process")
    app_version: str | None = Field(default=None, description="default: hash of the workflows")
    shutdown_timeout: float = Field(default=10.0, description="seconds to let work finish")
    lease_seconds: float = Field(
        default=30.0, gt=0, description="a worker silent this long is dead (taken over)"
    )
    check_step_arguments: bool = Field(
        default=False,
        description="record a hash of each step's arguments; a replay with others is named",
    )
    max_payload_bytes: int = Field(
        default=DEFAULT_MAX_PAYLOAD_BYTES,
        gt=0,
        description="the largest stored value (input, output, message, event...) in bytes of JSON",
    )
    stranded_check_seconds: float = Field(
        default=60.0,
        gt=0,
        description="how often a worker counts the workflows no live worker's version serves",
    )
    retention: str | None = Field(
        default=None,
        description="how long finished workflows are kept per final status, e.g. "
        "'SUCCESS=7d,COMPENSATED=30d,CANCELLED=30d' (s, m, h, d); unlisted: for ever",
    )
    retention_sweep_seconds: float = Field(
        default=60.0, gt=0, description="how often a worker deletes expired workflows"
    )
    retention_batch: int = Field(
        default=500, ge=1, le=10_000, description="workflows deleted per transaction"
    )
    pending_message_seconds: float = Field(
        default=86400.0,
        gt=0,
        description="how long a message sent to a business key no workflow holds yet is kept",
    )
    gc_threshold: int = Field(
        default=10_000,
        ge=0,
        description="raise the garbage collector's generation-0 threshold to this while the app"
        " runs (CPython's default 700 costs a busy worker 15-20 % of its CPU), and consider"
        " full collections ten times less often; 0: leave the collector as it is",
    )

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, given: Any) -> Any:
        """The environment's values under the keywords given (a keyword wins)."""
        if not isinstance(given, dict):
            return given
        environment = {name.upper(): value for name, value in os.environ.items()}
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            for key in (ENV_PREFIX + name.upper(), *_ALSO.get(name, ())):
                if key in environment:
                    values[name] = environment[key]
                    break
        for keyword, value in given.items():
            values[_KEYWORDS.get(str(keyword), str(keyword))] = value
        return values


def load_settings() -> Settings:
    """The settings from the environment; ConfigurationError naming the variables that do not
    parse or are out of range (``ORCHESTRATOR_MAX_PAYLOAD_BYTES=0``)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"ORCHESTRATOR_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigurationError(f"invalid settings in the environment: {problems}") from exc


def resolve_database_url(app_name: str, settings: Settings) -> str:
    """The URL the store is created from: the setting, or the embedded SQLite file."""
    if not _APP_NAME.match(app_name):
        raise ConfigurationError(
            f"app_name {app_name!r} must be 1-100 letters, digits, '_', '.', or '-'"
        )
    if settings.database_url:
        return settings.database_url
    return f"sqlite:///{settings.data_dir / (app_name + '.db')}"
