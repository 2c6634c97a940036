"""What a task reads about asset events: the events its run consumed.

Airflow answers ``triggering_asset_events`` from the run's consumed events and ``inlet_events``
from its whole ``AssetEvent`` table. dagbridge has no shared table: both are answered from the
events the run consumed (those an asset-triggered run was started with), which is what an
asset-scheduled task reads in the usual case.
"""

from __future__ import annotations

from airflow.sdk.exceptions import ErrorType
from airflow.sdk.execution_time import comms

from airflow_adapter.execution_api import (
    AssetAliasReferenceAssetEventDagRun,
    AssetEventDagRunReference,
    AssetEventResponse,
    AssetReferenceAssetEventDagRun,
    AssetResponse,
    DagRunAssetReference,
)
from schemas.runs import AssetEventPayload, DagRunContext


def consumed_event_reference(event: AssetEventPayload) -> AssetEventDagRunReference:
    """The event as Airflow's execution API puts it in ``dag_run.consumed_asset_events``."""
    return AssetEventDagRunReference(
        asset=AssetReferenceAssetEventDagRun(name=event.asset_name, uri=event.asset_uri, extra={}),
        extra=event.extra,
        source_task_id=event.source_task_id,
        source_dag_id=event.source_dag_id,
        source_run_id=event.source_run_id,
        source_map_index=event.source_map_index,
        source_aliases=[AssetAliasReferenceAssetEventDagRun(name=alias) for alias in event.source_aliases],
        timestamp=event.timestamp,
    )


class ConsumedAssetEvents:
    """Answers the task runner's asset queries from one run's consumed events."""

    def __init__(self, run: DagRunContext) -> None:
        self._run = run
        self._events = run.consumed_asset_events

    def asset(self, *, name: str | None = None, uri: str | None = None) -> comms.AssetResult | comms.ErrorResponse:
        for event in self._events:
            if (name is None or event.asset_name == name) and (uri is None or event.asset_uri == uri):
                return comms.AssetResult(name=event.asset_name, uri=event.asset_uri, group=event.asset_group)
        return comms.ErrorResponse(error=ErrorType.ASSET_NOT_FOUND, detail={"name": name, "uri": uri})

    def assets_by_alias(self, alias_name: str) -> comms.AssetsByAliasResult:
        assets = {
            (e.asset_name, e.asset_uri): AssetResponse(name=e.asset_name, uri=e.asset_uri, group=e.asset_group)
            for e in self._events
            if alias_name in e.source_aliases
        }
        return comms.AssetsByAliasResult.from_asset_responses(list(assets.values()))

    def events_of_asset(self, msg: comms.GetAssetEventByAsset) -> comms.AssetEventsResult:
        return self._result(
            msg,
            [
                (i, e)
                for i, e in enumerate(self._events, start=1)
                if (msg.name is None or e.asset_name == msg.name) and (msg.uri is None or e.asset_uri == msg.uri)
            ],
        )

    def events_of_alias(self, msg: comms.GetAssetEventByAssetAlias) -> comms.AssetEventsResult:
        return self._result(
            msg, [(i, e) for i, e in enumerate(self._events, start=1) if msg.alias_name in e.source_aliases]
        )

    def _result(
        self,
        msg: comms.GetAssetEventByAsset | comms.GetAssetEventByAssetAlias,
        selected: list[tuple[int, AssetEventPayload]],
    ) -> comms.AssetEventsResult:
        """Filtered, ordered and limited as Airflow's execution API does it (by timestamp, then id)."""
        selected = [
            (i, e)
            for i, e in selected
            if (msg.after is None or e.timestamp >= msg.after) and (msg.before is None or e.timestamp <= msg.before)
        ]
        selected.sort(key=lambda item: (item[1].timestamp, item[0]), reverse=not msg.ascending)
        if msg.limit is not None:
            selected = selected[: msg.limit]
        created = [DagRunAssetReference.model_validate(self._run_reference())]
        return comms.AssetEventsResult(
            asset_events=[
                AssetEventResponse(
                    id=i,
                    timestamp=e.timestamp,
                    extra=e.extra,
                    asset=AssetResponse(name=e.asset_name, uri=e.asset_uri, group=e.asset_group),
                    created_dagruns=created,
                    source_task_id=e.source_task_id,
                    source_dag_id=e.source_dag_id,
                    source_run_id=e.source_run_id,
                    source_map_index=e.source_map_index,
                )
                for i, e in selected
            ]
        )

    def _run_reference(self) -> dict:
        run = self._run
        return {
            "run_id": run.run_id,
            "dag_id": run.dag_id,
            "logical_date": run.logical_date,
            "start_date": run.start_date or run.run_after,
            "end_date": None,
            "state": "running",
            "data_interval_start": run.data_interval_start,
            "data_interval_end": run.data_interval_end,
            "partition_key": None,
        }
