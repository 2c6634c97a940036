"""Models of Airflow's execution API that dagbridge builds by hand, from the SDK's private ``_generated`` module.

A task's asset queries (``triggering_asset_events``, ``inlet_events``) are answered in the
worker, not by Airflow's API server, with the models the API server would return. They live in
``airflow.sdk.api.datamodels._generated``; ``contract.EXPECTATIONS`` lists each with the fields
dagbridge fills, so a renamed or newly required field fails ``airflow_adapter.check()``.
"""

from __future__ import annotations

from airflow.sdk.api.datamodels._generated import (
    AssetAliasReferenceAssetEventDagRun,
    AssetEventDagRunReference,
    AssetEventResponse,
    AssetReferenceAssetEventDagRun,
    AssetResponse,
    DagRunAssetReference,
)

__all__ = [
    "ASSET_MODEL_FIELDS",
    "AssetAliasReferenceAssetEventDagRun",
    "AssetEventDagRunReference",
    "AssetEventResponse",
    "AssetReferenceAssetEventDagRun",
    "AssetResponse",
    "DagRunAssetReference",
]

_GENERATED = "airflow.sdk.api.datamodels._generated"

# Each model, by dotted name, and the fields dagbridge sets when it builds one.
ASSET_MODEL_FIELDS: dict[str, tuple[str, ...]] = {
    f"{_GENERATED}.AssetEventDagRunReference": (
        "asset",
        "extra",
        "source_task_id",
        "source_dag_id",
        "source_run_id",
        "source_map_index",
        "source_aliases",
        "timestamp",
    ),
    f"{_GENERATED}.AssetReferenceAssetEventDagRun": ("name", "uri", "extra"),
    f"{_GENERATED}.AssetAliasReferenceAssetEventDagRun": ("name",),
    f"{_GENERATED}.AssetResponse": ("name", "uri", "group"),
    f"{_GENERATED}.AssetEventResponse": (
        "id",
        "timestamp",
        "extra",
        "asset",
        "created_dagruns",
        "source_task_id",
        "source_dag_id",
        "source_run_id",
        "source_map_index",
    ),
    f"{_GENERATED}.DagRunAssetReference": (
        "run_id",
        "dag_id",
        "logical_date",
        "start_date",
        "end_date",
        "state",
        "data_interval_start",
        "data_interval_end",
        "partition_key",
    ),
}
