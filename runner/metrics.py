"""Prometheus metrics (prometheus_client), served at /metrics.

Counters and histograms are this process's, kept correct under concurrency by the
client library's own locks; with several server processes, scrape each one (each
serves its own /metrics) and sum in Prometheus. Gauges are read at scrape time.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

RUNS = Counter("playground_runs", "Runs that ran, by language and how they ended.", ["language", "status"])
DURATION = Histogram(
    "playground_run_duration_seconds",
    "The program's own wall time, by language.",
    ["language"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
CPU = Counter("playground_run_cpu_seconds", "CPU time of runs, all their processes together.", ["language"])
REFUSALS = Counter("playground_refusals", "Runs refused before they ran, by why.", ["reason"])
SANDBOX_FAILURES = Counter("playground_sandbox_failures", "Sandboxes that could not be set up or torn down.")
WEBSOCKETS = Gauge("playground_websockets_open", "Websockets open now.")


def ran(result) -> None:
    RUNS.labels(result.language, result.status).inc()
    DURATION.labels(result.language).observe(result.duration / 1000)
    if result.cpu_time is not None:
        CPU.labels(result.language).inc(result.cpu_time / 1000)


class HostCollector:
    """The execution slots, their queue and the pre-warmed pools, as they are at scrape time."""

    def collect(self):
        from engine.backends.local import STARTS
        from sandbox.pool import POOL

        from . import conf

        slots = conf.backend().slots
        yield GaugeMetricFamily("playground_slots", "Execution slots on this host.", value=slots.size)
        yield GaugeMetricFamily(
            "playground_slots_busy", "Execution slots running a run now.", value=slots.in_use
        )
        yield GaugeMetricFamily("playground_queue_depth", "Runs waiting for a slot.", value=slots.waiting)
        pool = GaugeMetricFamily(
            "playground_pool_waiting", "Pre-warmed sandboxes waiting, by language.", labels=["language"]
        )
        for language, count in POOL.waiting().items():
            pool.add_metric([language], count)
        yield pool
        starts = CounterMetricFamily(
            "playground_starts",
            "How runs got their sandbox: pre-warmed (zygote: forked from one, counted as warm too) or cold.",
            labels=["kind"],
        )
        for kind in ("warm", "cold", "zygote"):
            starts.add_metric([kind], STARTS[kind])
        yield starts


REGISTRY.register(HostCollector())
