"""Settings from the environment (orchestrator/config.py): names, precedence and errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.config import Settings, load_settings
from orchestrator.errors import ConfigurationError


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting from the caller's environment (a developer's ORCHESTRATOR_DATA_DIR, CI's)."""
    for name in list(os.environ):
        if name.upper() == "DATABASE_URL" or name.upper().startswith("ORCHESTRATOR_"):
            monkeypatch.delenv(name)


def test_each_setting_comes_from_its_variable_in_any_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_LEASE_SECONDS", "2.5")
    monkeypatch.setenv("orchestrator_executor_id", "w-1")
    monkeypatch.setenv("ORCHESTRATOR_CHECK_STEP_ARGUMENTS", "yes")
    monkeypatch.setenv("ORCHESTRATOR_DATA_DIR", "/srv/data")
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_POOLING", "transaction")
    settings = Settings()
    assert settings.lease_seconds == 2.5
    assert settings.executor_id == "w-1"
    assert settings.check_step_arguments is True
    assert settings.data_dir == Path("/srv/data")
    assert settings.database_pooling == "transaction"


def test_unset_settings_take_their_defaults() -> None:
    settings = Settings()
    assert settings.database_url is None
    assert settings.executor_id == "local"
    assert settings.data_dir == Path(".orchestrator")


def test_the_database_url_prefers_its_own_variable_then_database_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://plain")
    assert Settings().database_url == "postgresql://plain"
    monkeypatch.setenv("ORCHESTRATOR_DATABASE_URL", "postgresql://own")
    assert Settings().database_url == "postgresql://own"


def test_a_keyword_wins_over_the_environment_and_unknown_keywords_are_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ORCHESTRATOR_EXECUTOR_ID", "from-env")
    monkeypatch.setenv("DATABASE_URL", "postgresql://env")
    assert Settings(executor_id="kw").executor_id == "kw"
    assert Settings(database_url="sqlite:///kw.db").database_url == "sqlite:///kw.db"
    assert Settings(DATABASE_URL="sqlite:///alias.db").database_url == "sqlite:///alias.db"
    assert Settings(no_such_setting=1).executor_id == "from-env"  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("ORCHESTRATOR_LEASE_SECONDS", "", "ORCHESTRATOR_LEASE_SECONDS"),
        ("ORCHESTRATOR_MAX_PAYLOAD_BYTES", "0", "ORCHESTRATOR_MAX_PAYLOAD_BYTES"),
        ("ORCHESTRATOR_DATABASE_POOLING", "statement", "ORCHESTRATOR_DATABASE_POOLING"),
        ("ORCHESTRATOR_DATABASE_POOL_SIZE", "1", "ORCHESTRATOR_DATABASE_POOL_SIZE"),
        ("ORCHESTRATOR_DATABASE_POOL_SIZE", "many", "ORCHESTRATOR_DATABASE_POOL_SIZE"),
    ],
)
def test_a_bad_value_is_a_configuration_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=named):
        load_settings()


def test_loading_the_engine_loads_no_settings_framework_and_no_cron_parser() -> None:
    """Startup cost of every process: neither pydantic-settings nor croniter is imported until
    a cron expression is parsed (the CLI, services and workers start ~90 ms sooner)."""
    code = (
        "import sys, orchestrator, orchestrator.cli; "
        "print(sorted(m for m in ('pydantic_settings', 'croniter') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
