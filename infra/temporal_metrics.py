"""The Temporal SDK's own metrics, served from the process's Prometheus registry.

The SDK can serve Prometheus itself (``PrometheusConfig``), but on a second port that every
deployment would have to open and scrape. Instead its core records into a ``MetricBuffer``
that this module drains into a prometheus-client collector, so ``/metrics`` of the bridge and
of the worker carry both dagbridge's and Temporal's series (``temporal_*``: request latency and
failures, workflow and activity task slots, schedule-to-start latency, sticky cache, ...).

Every client created after ``install()`` reports here, because it makes this runtime the
process default; the worker and the bridge call it before they connect.
"""

from __future__ import annotations

import bisect
import functools
import threading
import time
from collections.abc import Iterator

from prometheus_client.core import Metric
from prometheus_client.registry import REGISTRY
from temporalio.runtime import (
    BUFFERED_METRIC_KIND_COUNTER,
    BUFFERED_METRIC_KIND_HISTOGRAM,
    MetricBuffer,
    MetricBufferDurationFormat,
    Runtime,
    TelemetryConfig,
)

# The SDK's histograms are latencies in seconds, from sub-millisecond RPCs to long polls
# (~70 s); these bounds resolve both ends.
BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_INF = float("inf")
# Core drops updates once the buffer is full; at the drain interval below that needs tens of
# thousands of updates per second.
_BUFFER_SIZE = 100_000
_DRAIN_INTERVAL_SECONDS = 1.0

_Labels = tuple[tuple[str, str], ...]


class _Histogram:
    __slots__ = ("count", "counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, value)] += 1
        self.total += value
        self.count += 1


class _Family:
    def __init__(self, name: str, description: str, kind: int) -> None:
        self.name = name
        self.description = description
        self.kind = kind
        self.series: dict[_Labels, float | _Histogram] = {}


class TemporalMetricsCollector:
    """Keeps the running state of every SDK metric from the buffered updates and exposes it."""

    def __init__(self, buffer: MetricBuffer) -> None:
        self._buffer = buffer
        self._families: dict[str, _Family] = {}
        self._lock = threading.Lock()

    def drain(self) -> None:
        with self._lock:
            for update in self._buffer.retrieve_updates():
                metric = update.metric
                family = self._families.get(metric.name)
                if family is None:
                    family = self._families[metric.name] = _Family(
                        metric.name, metric.description or metric.name, metric.kind
                    )
                labels = tuple(sorted((key, str(value)) for key, value in update.attributes.items()))
                if family.kind == BUFFERED_METRIC_KIND_COUNTER:
                    family.series[labels] = family.series.get(labels, 0) + update.value
                elif family.kind == BUFFERED_METRIC_KIND_HISTOGRAM:
                    histogram = family.series.get(labels)
                    if histogram is None:
                        histogram = family.series[labels] = _Histogram()
                    histogram.observe(update.value)
                else:
                    family.series[labels] = update.value

    def describe(self) -> list[Metric]:
        # The names are only known once the SDK reports them; none of them can clash with
        # dagbridge's own, which all start with ``dagbridge_``.
        return []

    def collect(self) -> Iterator[Metric]:
        self.drain()
        with self._lock:
            families = [(family, dict(family.series)) for family in self._families.values()]
        for family, series in families:
            yield _to_metric(family, series)


def _to_metric(family: _Family, series: dict[_Labels, float | _Histogram]) -> Metric:
    if family.kind == BUFFERED_METRIC_KIND_COUNTER:
        metric = Metric(family.name, family.description, "counter")
        for labels, value in series.items():
            metric.add_sample(f"{family.name}_total", dict(labels), float(value))
    elif family.kind == BUFFERED_METRIC_KIND_HISTOGRAM:
        metric = Metric(family.name, family.description, "histogram")
        for labels, histogram in series.items():
            assert isinstance(histogram, _Histogram)
            cumulative = 0
            for bound, count in zip((*BUCKETS, _INF), histogram.counts, strict=True):
                cumulative += count
                le = "+Inf" if bound == _INF else repr(bound)
                metric.add_sample(f"{family.name}_bucket", {**dict(labels), "le": le}, cumulative)
            metric.add_sample(f"{family.name}_count", dict(labels), histogram.count)
            metric.add_sample(f"{family.name}_sum", dict(labels), histogram.total)
    else:
        metric = Metric(family.name, family.description, "gauge")
        for labels, value in series.items():
            metric.add_sample(family.name, dict(labels), float(value))
    return metric


_install_lock = threading.Lock()


def install() -> TemporalMetricsCollector:
    """Route the SDK's metrics of every client created from now on to ``/metrics``; idempotent.

    One runtime per process: each runtime owns a thread pool, and a worker must share the
    runtime of the client it was built from.
    """
    with _install_lock:
        return _installed()


@functools.cache
def _installed() -> TemporalMetricsCollector:
    """Done once per process (callers hold ``_install_lock``)."""
    buffer = MetricBuffer(_BUFFER_SIZE, MetricBufferDurationFormat.SECONDS)
    # service_name would be the same constant on every series.
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer, attach_service_name=False))
    Runtime.set_default(runtime, error_if_already_set=False)
    collector = TemporalMetricsCollector(buffer)
    REGISTRY.register(collector)
    threading.Thread(target=_drain_forever, args=(collector,), name="temporal-metrics", daemon=True).start()
    return collector


def _drain_forever(collector: TemporalMetricsCollector) -> None:
    # Between scrapes the buffer must still be emptied, or core starts dropping updates.
    while True:
        time.sleep(_DRAIN_INTERVAL_SECONDS)
        collector.drain()
