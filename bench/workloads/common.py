"""Timing, SQL counting and statistics shared by the workloads."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Stats:
    ops: int
    seconds: float
    throughput: float  # operations (or rows) per second
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    sql_per_op: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Result:
    workload: str
    description: str
    measured: Stats
    baseline: Stats | None
    baseline_description: str
    unit: str = "ops"
    target: str = ""
    target_met: bool | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["measured"] = self.measured.as_dict()
        d["baseline"] = self.baseline.as_dict() if self.baseline else None
        return d


def percentile(sorted_ns: list[int], pct: float) -> float:
    """Nearest-rank percentile of sorted nanosecond latencies, in milliseconds."""
    if not sorted_ns:
        return 0.0
    k = max(0, min(len(sorted_ns) - 1, int(round(pct / 100 * len(sorted_ns) + 0.5)) - 1))
    return sorted_ns[k] / 1e6


def stats_from(latencies_ns: list[int], *, sql: int | None = None) -> Stats:
    lat = sorted(latencies_ns)
    total_s = sum(lat) / 1e9
    n = len(lat)
    return Stats(
        ops=n,
        seconds=round(total_s, 3),
        throughput=round(n / total_s, 1) if total_s else 0.0,
        p50_ms=round(percentile(lat, 50), 3),
        p95_ms=round(percentile(lat, 95), 3),
        p99_ms=round(percentile(lat, 99), 3),
        max_ms=round(lat[-1] / 1e6, 3) if lat else 0.0,
        sql_per_op=round(sql / n, 2) if sql is not None and n else None,
    )


class SqlCounter:
    """Counts SQL statements sent through Django's connection (``execute_wrapper``)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ):
        self.count += 1
        return execute(sql, params, many, context)


@contextmanager
def counting_sql():
    from django.db import connection

    counter = SqlCounter()
    with connection.execute_wrapper(counter):
        yield counter


def time_each(
    fn: Callable[[Any], Any], inputs: Iterable[Any], keep: Callable[[Any, Any], Any] | None = None
) -> tuple[list[int], list[Any]]:
    """Call ``fn`` on each input; per-call latency in ns and ``keep(input, result)`` of each.

    Results are reduced by ``keep`` at once (nothing big is retained: a growing heap would make
    the garbage collector, not the code under test, set the tail latencies), and a collection
    runs before the loop so that the warm-up's garbage is not paid for inside it.
    """
    latencies: list[int] = []
    kept: list[Any] = []
    clock = time.perf_counter_ns
    gc.collect()
    for item in inputs:
        t0 = clock()
        out = fn(item)
        latencies.append(clock() - t0)
        if keep is not None:
            kept.append(keep(item, out))
        del out
    return latencies, kept
