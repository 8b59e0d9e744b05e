"""The collector threshold an application raises while it runs (orchestrator/process.py):
raised at launch, put back at the last shutdown, left alone when told (0) or when the program
set it higher or turned the collector off."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator import Orchestrator, process
from orchestrator.config import Settings


@pytest.fixture(autouse=True)
def default_thresholds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """CPython's defaults, and no holder of a raised threshold left by an earlier test of
    this process (an application it did not shut down would hold it still)."""
    monkeypatch.setattr(process, "_raised", process._RaisedThreshold())
    before, enabled = gc.get_threshold(), gc.isenabled()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)
    (gc.enable if enabled else gc.disable)()


def app(tmp_path: Path, name: str, threshold: int | None = None) -> Orchestrator:
    settings = Settings() if threshold is None else Settings(gc_threshold=threshold)
    orchestrator = Orchestrator(name, f"sqlite:///{tmp_path / name}.db", settings=settings)

    @orchestrator.workflow(name="noop")
    async def noop() -> int:
        return 1

    return orchestrator


async def test_raised_while_running_and_put_back_by_the_last_shutdown(tmp_path: Path) -> None:
    first, second = app(tmp_path, "one"), app(tmp_path, "two")
    async with first:
        assert gc.get_threshold() == (10_000, 10, 100)
        async with second:
            assert gc.get_threshold() == (10_000, 10, 100)
        assert gc.get_threshold() == (10_000, 10, 100)  # the first still runs
        await first.launch()  # launching again holds nothing more
    assert gc.get_threshold() == (700, 10, 10)
    await first.shutdown()  # a second shutdown changes nothing
    assert gc.get_threshold() == (700, 10, 10)


async def test_zero_leaves_it_as_it_is(tmp_path: Path) -> None:
    async with app(tmp_path, "zero", threshold=0):
        assert gc.get_threshold() == (700, 10, 10)


async def test_a_higher_threshold_or_a_disabled_collector_is_left_alone(tmp_path: Path) -> None:
    gc.set_threshold(50_000, 20, 5)
    async with app(tmp_path, "higher"):
        assert gc.get_threshold() == (50_000, 20, 5)
    assert gc.get_threshold() == (50_000, 20, 5)
    gc.set_threshold(700, 10, 10)
    gc.disable()
    async with app(tmp_path, "off"):
        assert gc.get_threshold() == (700, 10, 10)
        assert not gc.isenabled()


def test_the_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_GC_THRESHOLD", "0")
    assert Settings().gc_threshold == 0
    monkeypatch.setenv("ORCHESTRATOR_GC_THRESHOLD", "-1")
    with pytest.raises(ValueError):
        Settings()


async def test_what_the_program_sets_while_one_runs_is_its_own(tmp_path: Path) -> None:
    """Set or disabled while an application holds the raised threshold: a second application
    does not raise it again, and the last shutdown does not put back the old value over it."""
    first = app(tmp_path, "first")
    async with first:
        assert gc.get_threshold() == (10_000, 10, 100)
        gc.set_threshold(2_000, 10, 10)
        gc.disable()
        async with app(tmp_path, "second"):
            assert gc.get_threshold() == (2_000, 10, 10)
    assert gc.get_threshold() == (2_000, 10, 10)
    assert not gc.isenabled()


async def test_generation_two_is_only_raised(tmp_path: Path) -> None:
    gc.set_threshold(700, 10, 500)
    async with app(tmp_path, "oldest"):
        assert gc.get_threshold() == (10_000, 10, 500)
    assert gc.get_threshold() == (700, 10, 500)
