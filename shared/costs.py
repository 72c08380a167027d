"""What a job step costs: CPU seconds, wall seconds, peak resident memory.

Training costs energy and money; every job record carries the cost of each
step, and the same figures go to the metrics. Memory is the worker
process's resident size, sampled every ``SAMPLE_EVERY_S`` while the step
runs (so a peak shorter than that can be missed).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from shared import metrics

SAMPLE_EVERY_S = 0.2
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
MIB = 1024 * 1024


def resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return 0


class Cost:
    def __init__(self) -> None:
        self.started_wall = time.perf_counter()
        self.started_cpu = time.process_time()
        self.peak = resident_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="cost", daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            self.peak = max(self.peak, resident_bytes())

    def summary(self) -> dict[str, Any]:
        self.peak = max(self.peak, resident_bytes())
        return {
            "wall_s": round(time.perf_counter() - self.started_wall, 3),
            "cpu_s": round(time.process_time() - self.started_cpu, 3),
            "peak_memory_mib": round(self.peak / MIB, 1),
        }


@contextmanager
def measure() -> Iterator[Cost]:
    cost = Cost()
    cost._thread.start()
    try:
        yield cost
    finally:
        cost._stop.set()


def report(connection: redis.Redis, step: str, summary: dict[str, Any]) -> None:
    labels = {"step": step}
    metrics.observe(connection, "eduml_job_step_seconds", labels, summary["wall_s"])
    metrics.observe(connection, "eduml_job_step_cpu_seconds", labels, summary["cpu_s"])
    metrics.observe(
        connection,
        "eduml_job_step_peak_memory_bytes",
        labels,
        summary["peak_memory_mib"] * MIB,
    )
