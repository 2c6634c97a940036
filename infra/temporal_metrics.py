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

from prometheus_client import Counter, Gauge, Histogram
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


class MultiprocessTemporalMetrics:
    """In prometheus-client's multiprocess mode, writes the SDK's updates where the supervisor reads them.

    A process of a multi-process worker serves no ``/metrics`` of its own: its supervisor serves
    the sum of every process's metric files. A custom collector is not in those files, so each
    update goes to a prometheus-client metric instead, one per SDK name and set of label names
    (the SDK's label names vary between updates of one name; the files key each sample by its
    own label names, so the supervisor still merges them into one family per name).
    """

    def __init__(self, buffer: MetricBuffer) -> None:
        self._buffer = buffer
        self._metrics: dict[tuple[str, tuple[str, ...]], Counter | Gauge | Histogram] = {}
        self._lock = threading.Lock()

    def drain(self) -> None:
        with self._lock:
            for update in self._buffer.retrieve_updates():
                names = tuple(sorted(update.attributes))
                metric = self._metric(update.metric.name, update.metric.description, update.metric.kind, names)
                child = metric.labels(*(str(update.attributes[name]) for name in names)) if names else metric
                if isinstance(child, Counter):
                    child.inc(update.value)
                elif isinstance(child, Histogram):
                    child.observe(update.value)
                else:
                    child.set(update.value)

    def _metric(
        self, name: str, description: str | None, kind: int, label_names: tuple[str, ...]
    ) -> Counter | Gauge | Histogram:
        metric = self._metrics.get((name, label_names))
        if metric is None:
            documentation = description or name
            # registry=None: in multiprocess mode the values reach the files whatever the registry,
            # and two metrics of one name (other label names) cannot share a registry.
            if kind == BUFFERED_METRIC_KIND_COUNTER:
                metric = Counter(name, documentation, label_names, registry=None)
            elif kind == BUFFERED_METRIC_KIND_HISTOGRAM:
                metric = Histogram(name, documentation, label_names, registry=None, buckets=BUCKETS)
            else:
                # Slots, pollers, cached workflows: the machine's figure is the sum over live processes.
                metric = Gauge(name, documentation, label_names, registry=None, multiprocess_mode="livesum")
            self._metrics[(name, label_names)] = metric
        return metric


_install_lock = threading.Lock()


def install(*, multiprocess: bool = False) -> TemporalMetricsCollector | MultiprocessTemporalMetrics:
    """Route the SDK's metrics of every client created from now on to ``/metrics``; idempotent.

    ``multiprocess``: this process is one of a multi-process worker, in prometheus-client's
    multiprocess mode, and its supervisor serves the metrics. One runtime per process: each
    runtime owns a thread pool, and a worker must share the runtime of the client it was built from.
    """
    with _install_lock:
        return _installed(multiprocess)


@functools.cache
def _installed(multiprocess: bool) -> TemporalMetricsCollector | MultiprocessTemporalMetrics:
    """Done once per process (callers hold ``_install_lock``)."""
    buffer = MetricBuffer(_BUFFER_SIZE, MetricBufferDurationFormat.SECONDS)
    # service_name would be the same constant on every series.
    runtime = Runtime(telemetry=TelemetryConfig(metrics=buffer, attach_service_name=False))
    Runtime.set_default(runtime, error_if_already_set=False)
    collector: TemporalMetricsCollector | MultiprocessTemporalMetrics
    if multiprocess:
        collector = MultiprocessTemporalMetrics(buffer)
    else:
        collector = TemporalMetricsCollector(buffer)
        REGISTRY.register(collector)
    threading.Thread(target=_drain_forever, args=(collector,), name="temporal-metrics", daemon=True).start()
    return collector


def _drain_forever(collector: TemporalMetricsCollector | MultiprocessTemporalMetrics) -> None:
    # Between scrapes the buffer must still be emptied, or core starts dropping updates.
    while True:
        time.sleep(_DRAIN_INTERVAL_SECONDS)
        collector.drain()
