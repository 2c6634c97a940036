"""Payloads of the asset-schedule workflow: the queue of an asset-scheduled DAG.

One workflow per DAG scheduled on assets (``assets:<dag_id>``) holds what Airflow keeps in its
``asset_dag_run_queue`` table and the asset events not consumed yet; these payloads carry that
state across continue-as-new and the events into it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.runs import AssetEventPayload, RunOptions


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AssetKey(_Payload):
    """An asset's identity, as Airflow's ``AssetUniqueKey``."""

    name: str
    uri: str


class QueuedAsset(_Payload):
    """One row of Airflow's ``AssetDagRunQueue``: the asset was updated since the DAG's last run."""

    asset: AssetKey
    created_at: datetime


class AliasResolution(_Payload):
    """The assets events were emitted to through one alias: what the alias resolves to."""

    alias: str
    assets: list[AssetKey]


class AssetScheduleState(_Payload):
    pending_events: list[AssetEventPayload] = Field(
        default_factory=list, description="Events of the DAG's assets not consumed by a run yet, in arrival order"
    )
    queued: list[QueuedAsset] = Field(default_factory=list)
    aliases: list[AliasResolution] = Field(default_factory=list)
    seen_event_ids: list[str] = Field(
        default_factory=list, description="The most recent event IDs received, oldest first: repeats are dropped"
    )
    last_run_after: datetime | None = Field(
        default=None, description="run_after of the last run started: the next run's is later"
    )
    paused: bool | None = Field(
        default=None, description="None until the DAG's is_paused_upon_creation was read; paused: no run starts"
    )


class AssetScheduleInput(_Payload):
    """Input of the ``assets:<dag_id>`` workflow."""

    dag_id: str
    options: RunOptions = RunOptions()
    state: AssetScheduleState = AssetScheduleState()


class AssetConsumer(_Payload):
    """A DAG scheduled on assets, and the assets, references and aliases its schedule names."""

    dag_id: str
    assets: list[AssetKey] = Field(default_factory=list)
    name_refs: list[str] = Field(default_factory=list, description="Asset.ref(name=...) in the schedule")
    uri_refs: list[str] = Field(default_factory=list, description="Asset.ref(uri=...) in the schedule")
    aliases: list[str] = Field(default_factory=list)

    def wants(self, event: AssetEventPayload) -> bool:
        """Whether the event can count towards this DAG's condition."""
        return (
            AssetKey(name=event.asset_name, uri=event.asset_uri) in self.assets
            or event.asset_name in self.name_refs
            or event.asset_uri in self.uri_refs
            or not set(event.source_aliases).isdisjoint(self.aliases)
        )


class AssetScheduleStatus(_Payload):
    """What the workflow's query reports: queued assets, pending events, runs in flight."""

    queued: list[QueuedAsset]
    pending_event_ids: list[str]
    active_run_ids: list[str]
    started_run_ids: list[str]
    paused: bool | None = None
