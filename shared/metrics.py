"""Metrics every process pushes into Redis, so that one scrape of the gateway
shows the workers' figures too (Prometheus text format at ``/metrics``).

Workers run in many processes, on many machines; rather than a scrape per
process, each observation is added to a Redis hash: counters keep a total
per label set, histograms a count per bucket plus a sum and a count. The
gateway's collector reads the hashes at scrape time. Hashes expire a week
after their last write, so Redis never keeps them forever.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import redis
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from shared import keys
from shared.tally import TALLY

log = logging.getLogger(__name__)

METRIC_TTL_S = 7 * 24 * 3600
DURATION_BUCKETS_S = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)
LATENCY_BUCKETS_S = (
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
    10,
)
MEMORY_BUCKETS_BYTES = tuple(2**power * 1024 * 1024 for power in range(4, 14))

# name -> (kind, help, label names, buckets)
METRICS: dict[str, tuple[str, str, tuple[str, ...], tuple[float, ...]]] = {
    "eduml_jobs_finished_total": (
        "counter",
        "Jobs that reached a final state.",
        ("status",),
        (),
    ),
    "eduml_job_step_seconds": (
        "histogram",
        "Wall-clock seconds of a job step.",
        ("step",),
        DURATION_BUCKETS_S,
    ),
    "eduml_job_step_cpu_seconds": (
        "histogram",
        "CPU seconds used by a job step.",
        ("step",),
        DURATION_BUCKETS_S,
    ),
    "eduml_job_step_peak_memory_bytes": (
        "histogram",
        "Peak resident memory of the worker process during a job step.",
        ("step",),
        MEMORY_BUCKETS_BYTES,
    ),
    "eduml_inference_seconds": (
        "histogram",
        "Seconds a serving worker spent predicting one task.",
        (),
        LATENCY_BUCKETS_S,
    ),
    "eduml_tasks_published_total": (
        "counter",
        "Tasks sent to a queue.",
        ("queue",),
        (),
    ),
    "eduml_tasks_done_total": (
        "counter",
        "Tasks a worker finished, by queue and outcome.",
        ("queue", "outcome"),
        (),
    ),
}


def inc(
    connection: redis.Redis, name: str, labels: dict[str, str], amount: float = 1
) -> None:
    _write(connection, name, [(_field(labels, ""), amount)])


def observe(
    connection: redis.Redis, name: str, labels: dict[str, str], value: float
) -> None:
    _write(connection, name, _observation(name, labels, value))


def _observation(
    name: str, labels: dict[str, str], value: float
) -> list[tuple[str, float]]:
    """The hash fields one histogram observation adds to."""
    buckets = METRICS[name][3]
    fields = [(_field(labels, "sum"), value), (_field(labels, "count"), 1)]
    fields += [
        (_field(labels, f"le={bound}"), 1) for bound in buckets if value <= bound
    ]
    return fields


def inc_later(
    connection: redis.Redis, name: str, labels: dict[str, str], amount: float = 1
) -> None:
    """``inc``, summed in the process and written within a second (shared/tally.py)."""
    TALLY.add(connection, keys.metric(name), amount, METRIC_TTL_S, _field(labels, ""))


def observe_later(
    connection: redis.Redis, name: str, labels: dict[str, str], value: float
) -> None:
    """``observe``, summed in the process and written within a second."""
    key = keys.metric(name)
    for field, amount in _observation(name, labels, value):
        TALLY.add(connection, key, amount, METRIC_TTL_S, field)


def _write(connection: redis.Redis, name: str, fields: list[tuple[str, float]]) -> None:
    try:
        pipe = connection.pipeline(transaction=False)
        _add(pipe, name, fields)
        pipe.execute()
    except redis.RedisError as error:
        log.warning("metrics: %s not recorded: %s", name, error)


def _add(
    pipe: redis.client.Pipeline, name: str, fields: list[tuple[str, float]]
) -> None:
    key = keys.metric(name)
    for field, amount in fields:
        pipe.hincrbyfloat(key, field, amount)
    pipe.expire(key, METRIC_TTL_S)


def _field(labels: dict[str, str], part: str) -> str:
    return json.dumps([sorted(labels.items()), part])


class RedisMetrics(Collector):
    """Exposes the pushed metrics, plus gauges computed at scrape time."""

    def __init__(self, connection: redis.Redis, gauges: Iterable[Any] = ()) -> None:
        self.connection = connection
        self.gauges = list(gauges)

    def collect(self) -> Iterator[Any]:
        for name, (kind, text, label_names, buckets) in METRICS.items():
            try:
                raw = self.connection.hgetall(keys.metric(name))
            except redis.RedisError:
                continue
            values = {keys.text(key): float(value) for key, value in raw.items()}
            if kind == "counter":
                yield _counter(name, text, label_names, values)
            else:
                yield _histogram(name, text, label_names, buckets, values)
        for gauge in self.gauges:
            yield from gauge(self.connection)


def _parsed(values: dict[str, float]) -> Iterator[tuple[dict[str, str], str, float]]:
    for field, value in values.items():
        labels, part = json.loads(field)
        yield dict(labels), part, value


def _counter(
    name: str, text: str, label_names: tuple[str, ...], values: dict[str, float]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name.removesuffix("_total"), text, labels=label_names)
    for labels, _, value in _parsed(values):
        family.add_metric([labels.get(n, "") for n in label_names], value)
    return family


def _histogram(
    name: str,
    text: str,
    label_names: tuple[str, ...],
    buckets: tuple[float, ...],
    values: dict[str, float],
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, text, labels=label_names)
    series: dict[tuple[str, ...], dict[str, float]] = {}
    for labels, part, value in _parsed(values):
        series.setdefault(tuple(labels.get(n, "") for n in label_names), {})[part] = (
            value
        )
    for label_values, parts in series.items():
        cumulative = [(str(bound), parts.get(f"le={bound}", 0.0)) for bound in buckets]
        cumulative.append(("+Inf", parts.get("count", 0.0)))
        family.add_metric(list(label_values), cumulative, parts.get("sum", 0.0))
    return family


def gauge(
    name: str,
    text: str,
    label_names: tuple[str, ...],
    samples: Iterable[tuple[list[str], float]],
) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=label_names)
    for label_values, value in samples:
        family.add_metric(label_values, value)
    return family
