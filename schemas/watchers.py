"""Airflow ``AssetWatcher``s with a Kafka trigger, as the bridge serves them instead of Airflow's triggerer.

The worker-side code that reads the dags folder (``activities/asset_watchers.py``) describes each
watcher with these models; the bridge (``bridge/watchers.py``) subscribes to their topics and
turns each message into the asset event Airflow's triggerer would have registered.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.assets import AssetKey


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WatcherTarget(_Spec):
    """A DAG scheduled on the watched asset: each of its events goes to this DAG."""

    dag_id: str
    alone: bool = Field(
        description="The DAG's asset condition holds with this asset's event alone (Airflow's evaluator), "
        "so one message can start a run by itself"
    )


class KafkaAssetWatcher(_Spec):
    """One ``AssetWatcher`` whose trigger is Kafka's ``AwaitMessageTrigger`` (also as
    ``KafkaMessageQueueTrigger`` or ``MessageQueueTrigger(scheme="kafka")``), with the trigger's kwargs."""

    name: str = Field(description="The AssetWatcher's name")
    dag_id: str = Field(description="The DAG that declares it (the first by dag_id when several do)")
    asset: AssetKey
    asset_group: str = "asset"
    topics: list[str] = Field(description="Topic names; one starting with ^ is a regular expression, as in Kafka")
    apply_function: str | None = Field(default=None, description="Dotted path of the message filter/transform")
    apply_function_args: list[Any] = Field(default_factory=list)
    apply_function_kwargs: dict[str, Any] = Field(default_factory=dict)
    kafka_config_id: str = "kafka_default"
    targets: list[WatcherTarget] = Field(default_factory=list)

    @property
    def label(self) -> str:
        """``<dag_id>.<watcher name>``: names the watcher in logs, metrics and DLQ reasons."""
        return f"{self.dag_id}.{self.name}"
