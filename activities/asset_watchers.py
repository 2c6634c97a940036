"""Which ``AssetWatcher``s of the dags folder the bridge serves, and where their events go.

Airflow runs an asset's watcher triggers in its triggerer, which registers an asset event for
every ``TriggerEvent``. The bridge serves the Kafka ones itself, from its own consumer group: a
watcher is served when its trigger serializes (as Airflow stores it) to Kafka's
``AwaitMessageTrigger``, which is what ``KafkaMessageQueueTrigger`` and ``MessageQueueTrigger``
with the ``kafka`` scheme (or a ``kafka://`` queue) become. The trigger's connection must name the
bridge's own cluster: the bridge has one consumer, on ``DAGBRIDGE_KAFKA_BOOTSTRAP``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from airflow.sdk.definitions.asset import Asset, AssetWatcher
from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable
from airflow.serialization.serialized_objects import DagSerialization

from activities.asset_consumers import asset_consumers, condition_leaves
from airflow_adapter.asset_evaluation import condition_holds_over
from schemas.assets import AssetConsumer, AssetKey
from schemas.watchers import KafkaAssetWatcher, WatcherTarget

AWAIT_MESSAGE_TRIGGER = "airflow.providers.apache.kafka.triggers.await_message.AwaitMessageTrigger"
# Airflow's Kafka hooks use this connection when a trigger names none; without it defined, it is the bridge's Kafka.
DEFAULT_KAFKA_CONNECTION = "kafka_default"
ENVIRONMENT_BACKEND = "airflow.secrets.environment_variables.EnvironmentVariablesBackend"


@dataclass
class FoundWatchers:
    """The watchers the bridge serves, and one line for each watcher it cannot serve (and why)."""

    served: list[KafkaAssetWatcher] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def kafka_asset_watchers(dags: list[Any], kafka_bootstrap: str) -> FoundWatchers:
    """The Kafka watchers of ``dags`` (Airflow DAG objects), one per asset and trigger as Airflow dedupes them."""
    found = FoundWatchers()
    consumers = asset_consumers(dags)
    by_id = {dag.dag_id: dag for dag in dags}
    conditions: dict[str, Any] = {}
    seen: set[tuple[AssetKey, str]] = set()
    for dag_id, asset, watcher in _declared_watchers(dags):
        where = f"DAG {dag_id}, asset {asset.name!r}, watcher {watcher.name!r}"
        try:
            classpath, kwargs = watcher.trigger.serialize()
        except Exception as err:  # the provider's dispatch raises ValueError for an unknown scheme, or worse
            found.skipped.append(f"{where}: its trigger cannot be serialized: {type(err).__name__}: {err}")
            continue
        if classpath != AWAIT_MESSAGE_TRIGGER:
            found.skipped.append(f"{where}: {classpath} is not a Kafka trigger; only Kafka watchers are served")
            continue
        key = AssetKey(name=asset.name, uri=asset.uri)
        identity = (key, json.dumps([classpath, kwargs], sort_keys=True, default=repr))
        if identity in seen:
            continue  # Airflow runs one trigger for the same asset and trigger declared in several DAGs
        seen.add(identity)
        problem = _connection_problem(kwargs.get("kafka_config_id") or DEFAULT_KAFKA_CONNECTION, kafka_bootstrap)
        if problem is not None:
            found.skipped.append(f"{where}: {problem}")
            continue
        targets = [
            WatcherTarget(dag_id=consumer.dag_id, alone=_holds_alone(by_id[consumer.dag_id], key, conditions))
            for consumer in consumers
            if _wants(consumer, key)
        ]
        found.served.append(
            KafkaAssetWatcher(
                name=watcher.name,
                dag_id=dag_id,
                asset=key,
                asset_group=asset.group,
                topics=list(kwargs["topics"]),
                apply_function=kwargs.get("apply_function"),
                apply_function_args=list(kwargs.get("apply_function_args") or []),
                apply_function_kwargs=dict(kwargs.get("apply_function_kwargs") or {}),
                kafka_config_id=kwargs.get("kafka_config_id") or DEFAULT_KAFKA_CONNECTION,
                targets=targets,
            )
        )
    return found


def _declared_watchers(dags: list[Any]) -> Iterator[tuple[str, Asset, AssetWatcher]]:
    for dag in sorted(dags, key=lambda d: d.dag_id):
        timetable = dag.timetable
        if not isinstance(timetable, AssetTriggeredTimetable):
            continue
        for leaf in condition_leaves(timetable.asset_condition):
            if isinstance(leaf, Asset):
                for watcher in leaf.watchers:
                    yield dag.dag_id, leaf, watcher


def _wants(consumer: AssetConsumer, key: AssetKey) -> bool:
    return key in consumer.assets or key.name in consumer.name_refs or key.uri in consumer.uri_refs


def _holds_alone(dag: Any, key: AssetKey, conditions: dict[str, Any]) -> bool:
    """Whether an event of ``key`` alone satisfies the DAG's condition, as Airflow's scheduler evaluates it."""
    if dag.dag_id not in conditions:
        conditions[dag.dag_id] = DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable.asset_condition
    return condition_holds_over(conditions[dag.dag_id], [key], [key], {})


def _connection(conn_id: str) -> Any:
    """The Airflow connection, from the configured secrets backend or ``AIRFLOW_CONN_*``; None if undefined.

    As a task's lookup, without Airflow's metadata database: dagbridge has none (Airflow's own
    lookup would create an empty one to search).
    """
    from airflow.configuration import ensure_secrets_loaded

    for backend in ensure_secrets_loaded(default_backends=[ENVIRONMENT_BACKEND]):
        connection = backend.get_connection(conn_id)
        if connection is not None:
            return connection
    return None


def _connection_problem(conn_id: str, kafka_bootstrap: str) -> str | None:
    """Why the bridge's consumer cannot read what connection ``conn_id`` names; None when it can."""
    connection = _connection(conn_id)
    if connection is None:
        if conn_id == DEFAULT_KAFKA_CONNECTION:
            return None  # undefined default connection: the bridge's own cluster
        return f"its Kafka connection {conn_id!r} is not defined (AIRFLOW_CONN_{conn_id.upper()} or a secrets backend)"
    servers = str(connection.extra_dejson.get("bootstrap.servers") or "")
    if _servers(servers) != _servers(kafka_bootstrap):
        return (
            f"its Kafka connection {conn_id!r} names bootstrap.servers {servers!r}, but the bridge consumes "
            f"only DAGBRIDGE_KAFKA_BOOTSTRAP={kafka_bootstrap!r}"
        )
    return None


def _servers(bootstrap: str) -> set[str]:
    return {server.strip() for server in bootstrap.split(",") if server.strip()}
