"""The printed table (each figure, DBOS's, the ratio) and the JSON file of all figures."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import platform
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.workloads import Sizes


@dataclass(frozen=True)
class Row:
    family: str
    metric: str
    label: str
    unit: str
    better: str  # "lower" or "higher"


def rows(sizes: Sizes) -> list[Row]:
    """The table's rows, labelled with the sizes they were run at."""
    n_tp, n_q, n_park = f"{sizes.throughput:,}", f"{sizes.queue:,}", f"{sizes.parked:,}"
    runs = f"{sizes.latency_runs}"
    flight = "all at once" if sizes.inflight <= 0 else f"{sizes.inflight} in flight"
    return [
        Row("latency", "seq3_median_ms", f"3-step workflow, median ({runs} runs)", "ms", "lower"),
        Row("latency", "seq3_p99_ms", "3-step workflow, p99", "ms", "lower"),
        Row("latency", "seq0_median_ms", "0-step workflow, median", "ms", "lower"),
        Row("latency", "seq0_p99_ms", "0-step workflow, p99", "ms", "lower"),
        Row("latency", "per_step_ms", "per-step overhead (3-step - 0-step) / 3", "ms", "lower"),
        Row("latency", "seq5_median_ms", "5-step workflow, median", "ms", "lower"),
        Row(
            "latency",
            "marginal_step_ms",
            "a step among others (5-step - 3-step) / 2",
            "ms",
            "lower",
        ),
        Row(
            "latency",
            "checkpoint_statement_ms",
            "  the checkpoint statement alone (raw psycopg)",
            "ms",
            "lower",
        ),
        Row(
            "latency",
            "per_step_above_statement_ms",
            "  a step among others, above that statement",
            "ms",
            "lower",
        ),
        Row("throughput", "workflows_per_s", f"throughput, {n_tp} ({flight})", "wf/s", "higher"),
        Row("throughput", "steps_per_s", "throughput, steps", "steps/s", "higher"),
        Row("queue", "workflows_per_s", f"queue throughput, {n_q} ({flight})", "wf/s", "higher"),
        Row("queue", "steps_per_s", "queue throughput, steps", "steps/s", "higher"),
        Row("messaging", "send_recv_median_ms", "send -> recv, median", "ms", "lower"),
        Row("messaging", "send_recv_p99_ms", "send -> recv, p99", "ms", "lower"),
        Row("messaging", "send_return_median_ms", "send -> send returns, median", "ms", "lower"),
        Row("messaging", "send_return_p99_ms", "send -> send returns, p99", "ms", "lower"),
        Row("messaging", "start_get_event_median_ms", "start -> get_event, median", "ms", "lower"),
        Row("messaging", "start_get_event_p99_ms", "start -> get_event, p99", "ms", "lower"),
        Row(
            "commits",
            "commits_per_wf_idle",
            f"commits / 3-step wf, {sizes.commits_sequential} sequential",
            "commits",
            "lower",
        ),
        Row(
            "commits",
            "commits_per_wf_load",
            f"commits / 3-step wf, {sizes.commits_concurrent} ({flight})",
            "commits",
            "lower",
        ),
        Row(
            "commits",
            "write_commits_per_wf_idle",
            "write transactions / wf, sequential",
            "commits",
            "lower",
        ),
        Row(
            "commits",
            "write_commits_per_wf_load",
            "write transactions / wf, concurrent",
            "commits",
            "lower",
        ),
        Row(
            "parked", "kib_per_workflow", f"memory per parked wf ({n_park} in recv)", "KiB", "lower"
        ),
        Row("parked", "park_s", f"park {n_park} (start, all in recv)", "s", "lower"),
        Row("parked", "wake_s", f"wake {n_park} (send all, await all)", "s", "lower"),
    ]


def _cell(outcome: dict[str, Any] | None, metric: str) -> tuple[str, float | None]:
    """The printed cell and the number (None when there is no figure)."""
    if outcome is None:
        return "-", None
    if metric in outcome.get("unmeasured", {}):
        return f"n/a ({outcome['unmeasured'][metric]})", None
    if "metrics" in outcome:
        value = outcome["metrics"].get(metric)
        if isinstance(value, int | float) and math.isfinite(value):
            return _number(value), float(value)
        return "-", None
    if "unavailable" in outcome:
        return f"n/a ({outcome['unavailable']})", None
    if "skipped" in outcome:
        return "skipped", None
    return "error", None


def _number(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 10:
        return f"{value:.2f}"
    return f"{value:.3f}"


def table(sizes: Sizes, results: dict[str, Any]) -> list[dict[str, Any]]:
    """One dict per printed row: label, unit, ours, DBOS, ratio (ours / DBOS), better."""
    out: list[dict[str, Any]] = []
    for row in rows(sizes):
        if row.family not in results:
            continue
        ours_text, ours = _cell(results[row.family].get("ours"), row.metric)
        dbos_text, dbos = _cell(results[row.family].get("dbos"), row.metric)
        ratio = ours / dbos if ours is not None and dbos else None
        out.append(
            {
                "family": row.family,
                "metric": row.metric,
                "benchmark": row.label,
                "unit": row.unit,
                "better": row.better,
                "ours": ours,
                "dbos": dbos,
                "ratio": ratio,
                "ours_text": ours_text,
                "dbos_text": dbos_text,
            }
        )
    return out


def render(lines: list[dict[str, Any]], reference: dict[str, float]) -> str:
    """The table as text, with the PostgreSQL reference line under it."""
    header = ("benchmark", "unit", "ours", "DBOS", "ours/DBOS", "better")
    body = [
        (
            line["benchmark"],
            line["unit"],
            line["ours_text"],
            line["dbos_text"],
            "-" if line["ratio"] is None else f"{line['ratio']:.2f}x",
            line["better"],
        )
        for line in lines
    ]
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    aligns = ["<", "<", ">", ">", ">", "<"]

    def fmt(cells: tuple[str, ...]) -> str:
        cells_text = (f"{c:{a}{w}}" for c, a, w in zip(cells, aligns, widths, strict=True))
        return "  ".join(cells_text).rstrip()

    text = [fmt(header), "  ".join("-" * w for w in widths), *(fmt(r) for r in body)]
    text.append("")
    text.append(
        f"PostgreSQL reference, one connection, autocommit single-row INSERT: "
        f"{reference['commits_per_s']:,.0f} commits/s ({reference['commit_ms']:.3f} ms/commit)"
    )
    return "\n".join(text)


def errors(results: dict[str, Any]) -> list[str]:
    return [
        f"{family} / {system}: {outcome['error']}"
        for family, systems in results.items()
        for system, outcome in systems.items()
        if "error" in outcome
    ]


def notes(results: dict[str, Any], activity: dict[str, float]) -> list[str]:
    """Caveats: other activity on the server, and what the workers reported."""
    out: list[str] = []
    if activity["foreign_commits"]:
        out.append(
            f"other databases were busy during this {activity['run_s']:.0f} s run "
            f"({activity['foreign_commits']:,.0f} commits, creations or drops): the server was "
            "shared, figures may be perturbed"
        )
    for family, systems in results.items():
        for system, outcome in systems.items():
            if "note" in outcome:
                out.append(f"{family} / {system}: {outcome['note']}")
            if "warnings" in outcome:
                out.append(
                    f"{family} / {system}: {outcome['warnings']} warning lines, first: "
                    f"{outcome['first_warning']}"
                )
    return out


def _git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "orchestrator"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head}+dirty" if dirty else head


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")


def metadata(server: dict[str, str], dbos_version: str | None) -> dict[str, Any]:
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git": _git_revision(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "postgresql": server,
        "dbos": dbos_version,
    }
