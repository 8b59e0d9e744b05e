"""Runs the families, alternating systems (ours, then DBOS), each in a fresh process and DB."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import pgadmin
from bench.workloads import COMMITS_MODES, Sizes

REPO_ROOT = Path(__file__).resolve().parent.parent
DATABASE_PREFIX = "bench"


def database_names(prefix: str = DATABASE_PREFIX) -> dict[str, str]:
    """Each system's database: <prefix>_orch and <prefix>_dbos."""
    return {"ours": f"{prefix}_orch", "dbos": f"{prefix}_dbos"}


WORKER_TIMEOUT_SECONDS = 1800.0

# results[family][system] is one of {"metrics": {...}}, {"unavailable": why},
# {"error": what}, {"skipped": why}.
Outcome = dict[str, Any]


@dataclass(frozen=True)
class RunOptions:
    admin_url: str
    sizes: Sizes
    families: list[str]
    systems: list[str]
    profile_dir: Path | None = None
    databases: dict[str, str] = dataclasses.field(default_factory=database_names)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def call_worker(
    options: RunOptions,
    system: str,
    family: str,
    *,
    mode: str = "idle",
    database: str | None = None,
) -> Outcome:
    """Run ``python -m bench.worker`` for one family on one system (on its database, or on
    ``database``); its JSON answer."""
    url = pgadmin.database_url(options.admin_url, database or options.databases[system])
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        out = Path(tmp) / "answer.json"
        command = [
            sys.executable,
            "-m",
            "bench.worker",
            f"--system={system}",
            f"--family={family}",
            f"--database-url={url}",
            f"--sizes={json.dumps(options.sizes.to_json())}",
            f"--mode={mode}",
            f"--out={out}",
        ]
        if options.profile_dir is not None:
            suffix = f"-{mode}" if family == "commits" else ""
            profile = options.profile_dir / f"profile-{family}{suffix}-{system}.html"
            command.append(f"--profile={profile}")
        try:
            completed = subprocess.run(
                command,
                cwd=REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=WORKER_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {WORKER_TIMEOUT_SECONDS:.0f}s"}
        if completed.returncode != 0 or not out.exists():
            return {
                "error": f"worker exited {completed.returncode}: {_exception(completed.stderr)}",
                "stderr_tail": completed.stderr.strip().splitlines()[-40:],
            }
        answer: Outcome = json.loads(out.read_text())
    warnings = [line for line in completed.stderr.splitlines() if "WARNING" in line]
    if warnings:
        answer["warnings"] = len(warnings)
        answer["first_warning"] = warnings[0][:300]
    return answer


def _exception(stderr: str) -> str:
    """The last exception line of a traceback (and what follows it), else the last line."""
    lines = stderr.strip().splitlines()
    for index in range(len(lines) - 1, -1, -1):
        if lines[index][:1].isalpha() and ("Error" in lines[index] or "Exception" in lines[index]):
            return " | ".join(line.strip() for line in lines[index : index + 3])
    return lines[-1] if lines else "(no output)"


def run_commits(options: RunOptions, system: str) -> Outcome:
    """Commit counts around whole process lifetimes (launch, work, shutdown).

    Each cycle's count is read after the process has exited, when every backend has flushed
    its statistics. A ``baseline`` cycle (launch and shutdown only) is subtracted.
    """
    database = options.databases[system]
    deltas: dict[str, pgadmin.Delta] = {}
    answers: dict[str, Outcome] = {}
    for mode in COMMITS_MODES:
        before = pgadmin.settled_counters(options.admin_url, database, options.databases.values())
        answer = call_worker(options, system, "commits", mode=mode)
        if "error" in answer:
            return {"error": f"commits {mode}: {answer['error']}"}
        after = pgadmin.settled_counters(options.admin_url, database, options.databases.values())
        deltas[mode] = pgadmin.Delta.between(before, after)
        answers[mode] = answer
    baseline = deltas["baseline"]
    metrics: dict[str, float] = {"baseline_commits": float(baseline.commits)}
    unmeasured: dict[str, str] = {}
    for mode in ("idle", "load"):
        count = answers[mode]["metrics"]["workflows"]
        metrics[f"commits_per_wf_{mode}"] = (deltas[mode].commits - baseline.commits) / count
        metrics[f"{mode}_elapsed_s"] = answers[mode]["metrics"]["elapsed_s"]
        # Transaction ids are cluster-wide: trust them only if no other database committed.
        if deltas[mode].others_active or baseline.others_active:
            unmeasured[f"write_commits_per_wf_{mode}"] = "server busy"
        else:
            metrics[f"write_commits_per_wf_{mode}"] = (deltas[mode].xids - baseline.xids) / count
    outcome: Outcome = {
        "metrics": metrics,
        "raw_deltas": {mode: dataclasses.asdict(delta) for mode, delta in deltas.items()},
    }
    if unmeasured:
        outcome["unmeasured"] = unmeasured
        outcome["note"] = (
            "other databases committed during the commit cycles, so the write-transaction "
            "counts (cluster-wide transaction ids) were not taken"
        )
    return outcome


def run_family(options: RunOptions, family: str, system: str) -> Outcome:
    """One family on one system, on a freshly created database."""
    pgadmin.reset_database(options.admin_url, options.databases[system])
    if family == "commits":
        return run_commits(options, system)
    return call_worker(options, system, family)


def _brief(outcome: Outcome) -> str:
    if "metrics" in outcome:
        first = next(iter(outcome["metrics"].items()))
        return f"{first[0]}={first[1]:.3g}"
    return next(f"{key}: {value}" for key, value in outcome.items())


def run_all(options: RunOptions) -> dict[str, Any]:
    """The reference commit rate, then every family for ours and DBOS in turn."""
    results: dict[str, dict[str, Outcome]] = {}
    own = set(options.databases.values())
    foreign_before = pgadmin.foreign_commits(options.admin_url, own)
    run_began = time.perf_counter()
    reference_db = options.databases["ours"]
    pgadmin.reset_database(options.admin_url, reference_db)
    log(f"PostgreSQL single-connection commit rate ({options.sizes.pg_reference_seconds:g} s)…")
    reference = pgadmin.pg_commit_rate(
        pgadmin.database_url(options.admin_url, reference_db), options.sizes.pg_reference_seconds
    )
    log(f"  {reference['commits_per_s']:.0f} commits/s ({reference['commit_ms']:.3f} ms each)")
    for family in options.families:
        results[family] = {}
        for system in ("ours", "dbos"):
            if system not in options.systems:
                results[family][system] = {"skipped": "--no-dbos"}
                continue
            log(f"{family} / {system} …")
            began = time.perf_counter()
            outcome = run_family(options, family, system)
            outcome["wall_s"] = time.perf_counter() - began
            results[family][system] = outcome
            log(f"  {_brief(outcome)}  ({outcome['wall_s']:.1f} s)")
    foreign = pgadmin.foreign_activity(
        foreign_before, pgadmin.foreign_commits(options.admin_url, own)
    )
    activity = {"foreign_commits": foreign, "run_s": time.perf_counter() - run_began}
    return {"reference": reference, "results": results, "server_activity": activity}
