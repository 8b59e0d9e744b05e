"""Prometheus metrics of one Orchestrator, in a registry of its own (never the global one)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from orchestrator.store.base import QueueStats, Store, WorkerRecord

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Seconds. Steps span sub-millisecond echoes to minutes-long calls; a commit is ~0.1-50 ms.
STEP_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)
# Seconds. A retention sweep: one batch is ~10-100 ms; a backlog takes minutes.
SWEEP_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300)
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)


class _StoreSnapshot(Collector):
    """Queue depths and worker leases as last read from the store (``Metrics.refresh``):
    reading them needs the database, which a synchronous ``collect`` cannot await."""

    def __init__(self) -> None:
        self.queues: list[QueueStats] = []
        self.workers: list[WorkerRecord] = []
        # Unfinished workflows of versions no live worker serves (docs/upgrading.md).
        self.stranded: dict[str | None, int] = {}

    def collect(self) -> Iterable[Metric]:
        depth = GaugeMetricFamily(
            "orchestrator_queue_depth", "Workflows waiting on a queue (ENQUEUED)", labels=["queue"]
        )
        running = GaugeMetricFamily(
            "orchestrator_queue_running",
            "Workflows of a queue running on any worker (PENDING or COMPENSATING)",
            labels=["queue"],
        )
        for stats in self.queues:
            depth.add_metric([stats.queue_name], stats.depth)
            running.add_metric([stats.queue_name], stats.running)
        leases = GaugeMetricFamily(
            "orchestrator_worker_leases",
            "Registered workers by lease state (alive: lease not expired)",
            labels=["state"],
        )
        alive = sum(1 for worker in self.workers if worker.alive)
        leases.add_metric(["alive"], alive)
        leases.add_metric(["expired"], len(self.workers) - alive)
        stranded = GaugeMetricFamily(
            "orchestrator_workflows_stranded",
            "Unfinished workflows (PENDING, COMPENSATING) of an application version that no "
            "live worker serves: nobody runs them until one comes or they are moved",
            labels=["app_version"],
        )
        for version, count in sorted(self.stranded.items(), key=lambda item: str(item[0])):
            stranded.add_metric([version or ""], count)
        return [depth, running, leases, stranded]


class Metrics:
    """Counters, histograms and gauges of one Orchestrator; ``render()`` is the text that
    ``GET /metrics`` serves. Names and labels are listed in docs/observability.md."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.workflows_started = Counter(
            "orchestrator_workflows_started",
            "Workflows created by this process (started, enqueued, child, forked)",
            ["name"],
            registry=r,
        )
        self.workflows_completed = Counter(
            "orchestrator_workflows_completed",
            "Workflow executions in this process that wrote a final status",
            ["name", "status"],
            registry=r,
        )
        self.workflows_recovered = Counter(
            "orchestrator_workflows_recovered",
            "Workflows resumed by this process after a crash or a takeover",
            ["name"],
            registry=r,
        )
        self.workflows_running = Gauge(
            "orchestrator_workflows_running", "Workflows executing in this process", registry=r
        )
        self.step_duration = Histogram(
            "orchestrator_step_duration_seconds",
            "Executed steps and compensations, all attempts and retry waits included",
            ["name", "kind", "status"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.step_retries = Counter(
            "orchestrator_step_retries",
            "Attempts of a step beyond its first (each retry counts once)",
            ["name"],
            registry=r,
        )
        self.compensations_run = Counter(
            "orchestrator_compensations_run",
            "Compensations executed (replayed ones are not counted)",
            ["name"],
            registry=r,
        )
        self.compensations_failed = Counter(
            "orchestrator_compensations_failed",
            "Compensations that failed after all their attempts",
            ["name"],
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "orchestrator_checkpoint_commit_seconds",
            "From asking the store to record a step until its commit returned",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.recv_waiters = Gauge(
            "orchestrator_recv_waiters", "Workflows waiting in recv() in this process", registry=r
        )
        self.takeovers = Counter(
            "orchestrator_workflows_taken_over",
            "Workflows this worker took over from workers whose lease expired",
            registry=r,
        )
        self.workflows_deleted = Counter(
            "orchestrator_workflows_deleted",
            "Finished workflows this process deleted, by why: an operator's delete, or retention",
            ["reason"],
            registry=r,
        )
        self.retention_sweep_seconds = Histogram(
            "orchestrator_retention_sweep_seconds",
            "One retention sweep of this process, all its batches",
            buckets=SWEEP_BUCKETS,
            registry=r,
        )
        self.snapshot = _StoreSnapshot()
        r.register(self.snapshot)

    def track_running(self, count: Callable[[], int]) -> None:
        """Read the running gauge from ``count`` at each scrape (the engine's live runs)."""
        self.workflows_running.set_function(lambda: float(count()))

    # -- observations from the engine -------------------------------------------------------
    def workflow_started(self, name: str) -> None:
        self.workflows_started.labels(name).inc()

    def workflow_completed(self, name: str, status: str) -> None:
        self.workflows_completed.labels(name, status).inc()

    def step_finished(
        self, name: str, kind: str, seconds: float, attempts: int, failed: bool
    ) -> None:
        """One executed step or compensation (never a replayed one)."""
        self.step_duration.labels(name, kind, "ERROR" if failed else "SUCCESS").observe(seconds)
        if attempts > 1:
            self.step_retries.labels(name).inc(attempts - 1)
        if kind == "compensation":
            self.compensations_run.labels(name).inc()
            if failed:
                self.compensations_failed.labels(name).inc()

    # -- scraping ---------------------------------------------------------------------------
    async def refresh(self, store: Store) -> None:
        """Read queue depths and worker leases from the store for the next ``render``."""
        self.snapshot.queues = list(await store.queue_stats(None))
        self.snapshot.workers = list(await store.list_workers())
        self.snapshot.stranded = dict(await store.stranded_counts())

    def render(self) -> bytes:
        """The Prometheus text exposition of this registry."""
        return generate_latest(self.registry)
