"""From one Kafka record of a watched topic to what Airflow's triggerer would have made of it.

Airflow's ``AwaitMessageTrigger`` hands each message (a ``confluent_kafka.Message``) to its
``apply_function``; a truthy result is the ``TriggerEvent`` payload, a falsy one means "not an
event"; without an ``apply_function`` the payload is the value decoded as UTF-8 (a tombstone is no
event). The triggerer then registers an asset event with ``extra={"from_trigger": True,
"payload": payload}`` for the watched asset. Here the same event gets an ID from the record's
position, and goes to each DAG scheduled on the asset: a DAG whose condition that asset satisfies
alone gets a run of its own keyed by the record's position (``asset_triggered__<topic>-<partition>-
<offset>``), unless the routes file batches its watcher events; any other DAG gets the event in its
``assets:<dag_id>`` queue, as Airflow's scheduler would queue it.

No I/O, but user code: ``apply_function`` runs here, as the provider runs it, so the bridge calls
``WatcherRouter.route`` off its event loop, one record at a time (the provider calls it in sequence).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_LOG_APPEND_TIME, TIMESTAMP_NOT_AVAILABLE, Message

from bridge.routing import RecordView
from schemas.ids import asset_watcher_event_id, asset_watcher_run_id
from schemas.messages import bounded_conf
from schemas.runs import AssetEventPayload, DagRunRequest, RunOptions, RunType
from schemas.watchers import KafkaAssetWatcher

# aiokafka's timestamp types (Kafka's own: 0 create time, 1 log append time) as confluent-kafka names them.
_TIMESTAMP_TYPES = {0: TIMESTAMP_CREATE_TIME, 1: TIMESTAMP_LOG_APPEND_TIME}


@dataclass(frozen=True)
class CompiledWatcher:
    spec: KafkaAssetWatcher
    names: frozenset[str]
    patterns: tuple[re.Pattern[str], ...]
    apply: Callable[[Message], Any] | None

    def reads(self, topic: str) -> bool:
        return topic in self.names or any(pattern.fullmatch(topic) for pattern in self.patterns)


@dataclass(frozen=True)
class Watchers:
    watchers: list[CompiledWatcher]

    @property
    def topics(self) -> set[str]:
        return {name for watcher in self.watchers for name in watcher.names}

    @property
    def patterns(self) -> list[str]:
        return [pattern.pattern for watcher in self.watchers for pattern in watcher.patterns]


NO_WATCHERS = Watchers(watchers=[])


@dataclass
class CompiledWatchers:
    watchers: Watchers
    skipped: list[str] = field(default_factory=list)


def compile_watchers(specs: list[KafkaAssetWatcher]) -> CompiledWatchers:
    """Import each watcher's ``apply_function`` and compile its topic patterns; a watcher that cannot be
    served is left out, with one line saying why (as Airflow's triggerer fails only that trigger)."""
    compiled: list[CompiledWatcher] = []
    skipped: list[str] = []
    for spec in specs:
        try:
            compiled.append(_compile(spec))
        except Exception as err:  # an import runs the module: anything can come out of it
            skipped.append(f"watcher {spec.label} (asset {spec.asset.name!r}): {type(err).__name__}: {err}")
    return CompiledWatchers(Watchers(compiled), skipped)


def _compile(spec: KafkaAssetWatcher) -> CompiledWatcher:
    # Kafka (librdkafka) reads a subscribed name that starts with ^ as a regular expression.
    names = frozenset(topic for topic in spec.topics if not topic.startswith("^"))
    patterns = tuple(re.compile(topic) for topic in spec.topics if topic.startswith("^"))
    apply = None
    if spec.apply_function:
        from airflow.providers.common.compat.module_loading import import_string

        apply = functools.partial(
            import_string(spec.apply_function), *spec.apply_function_args, **spec.apply_function_kwargs
        )
    return CompiledWatcher(spec=spec, names=names, patterns=patterns, apply=apply)


@dataclass
class WatchedRecord:
    """What one record asks for: runs to start, events to queue per DAG, and each watcher's verdict."""

    runs: list[DagRunRequest] = field(default_factory=list)
    queued: dict[str, list[AssetEventPayload]] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)  # the watchers that made an event of it
    filtered: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


class WatcherRouter:
    """Maps records of watched topics; the watchers of each topic are looked up once per topic name."""

    def __init__(
        self, watchers: Watchers, *, batched_dags: frozenset[str], max_payload_bytes: int, options: RunOptions
    ) -> None:
        self._watchers = watchers
        self._batched = batched_dags
        self._max_payload_bytes = max_payload_bytes
        self._options = options
        self._by_topic: dict[str, list[CompiledWatcher]] = {}

    def watchers_of(self, topic: str) -> list[CompiledWatcher]:
        found = self._by_topic.get(topic)
        if found is None:
            found = self._by_topic[topic] = [w for w in self._watchers.watchers if w.reads(topic)]
        return found

    def route(self, record: RecordView) -> WatchedRecord:
        """Every watcher of the record's topic applied to it, and where the events it made go."""
        result = WatchedRecord()
        runs: dict[str, list[AssetEventPayload]] = {}
        for watcher in self.watchers_of(record.topic):
            label = watcher.spec.label
            try:
                payload = _payload(watcher, record)
                if not payload:
                    result.filtered.append(label)
                    continue
                event = self._event(watcher.spec, record, payload)
            except WatcherError as err:
                result.errors.append((label, f"asset watcher {label}: {err}"))
                continue
            result.events.append(label)
            for target in watcher.spec.targets:
                if target.alone and target.dag_id not in self._batched:
                    runs.setdefault(target.dag_id, []).append(event)
                else:
                    result.queued.setdefault(target.dag_id, []).append(event)
        run_after = _record_time(record)
        for dag_id, events in runs.items():
            result.runs.append(
                DagRunRequest(
                    dag_id=dag_id,
                    run_id=asset_watcher_run_id(record.topic, record.partition, record.offset),
                    logical_date=None,
                    run_type=RunType.ASSET_TRIGGERED,
                    run_after=run_after,
                    triggering_asset_events=events,
                    options=self._options,
                )
            )
        return result

    def _event(self, spec: KafkaAssetWatcher, record: RecordView, payload: Any) -> AssetEventPayload:
        try:
            extra = bounded_conf({"from_trigger": True, "payload": payload}, self._max_payload_bytes)
        except ValueError as err:  # NaN, Infinity, or too large
            raise WatcherError(f"the event's extra {err}") from None
        except TypeError as err:  # a value JSON has no type for (a set, bytes, an object)
            raise WatcherError(f"the event's extra is not plain JSON: {err}") from None
        return AssetEventPayload(
            asset_name=spec.asset.name,
            asset_uri=spec.asset.uri,
            asset_group=spec.asset_group,
            extra=extra,
            timestamp=_record_time(record),
            event_id=asset_watcher_event_id(record.topic, record.partition, record.offset, spec.asset.uri),
        )


class WatcherError(Exception):
    """The watcher cannot make an event of the record: the record goes to the DLQ with this reason."""


def _payload(watcher: CompiledWatcher, record: RecordView) -> Any:
    """The ``TriggerEvent`` payload ``AwaitMessageTrigger`` would yield for the record (falsy: none)."""
    if watcher.apply is None:
        if record.value is None:
            return None  # a tombstone: the provider keeps polling
        try:
            return record.value.decode("utf-8")
        except UnicodeDecodeError as err:
            raise WatcherError(f"the value is not UTF-8 text: {err}") from None
    try:
        return watcher.apply(confluent_message(record))
    except Exception as err:  # user code
        raise WatcherError(f"apply_function {watcher.spec.apply_function} raised {type(err).__name__}: {err}") from None


def confluent_message(record: RecordView) -> Message:
    """The record as the ``confluent_kafka.Message`` that Airflow's trigger hands to ``apply_function``."""
    headers: Sequence[tuple[str, bytes]] = record.headers
    timestamp_type = (
        TIMESTAMP_NOT_AVAILABLE
        if record.timestamp < 0
        else _TIMESTAMP_TYPES.get(getattr(record, "timestamp_type", 0), TIMESTAMP_CREATE_TIME)
    )
    return Message(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        # A consumed message without headers has None, not an empty list.
        headers=list(headers) if headers else None,
        timestamp=(timestamp_type, record.timestamp if record.timestamp >= 0 else 0),
    )


def _record_time(record: RecordView) -> datetime:
    # A record without a timestamp (-1) is rare; the epoch keeps the event's time deterministic.
    return datetime.fromtimestamp(max(record.timestamp, 0) / 1000, tz=UTC)
