"""Airflow's own evaluation of a DAG's asset condition, over the state of one asset-schedule workflow.

Airflow's scheduler evaluates ``dag.timetable.asset_condition`` with ``AssetEvaluator``, resolving
aliases and asset references through its database. The workflow has no shared database: an alias
resolves to the assets events were emitted to through it (what Airflow's alias-to-asset table
records when such an event is registered), a reference to the asset of that name or URI among
the events the workflow received (``airflow_adapter.asset_evaluation``). The boolean logic (``&``,
``|``, ``AssetAll``, ``AssetAny``) is Airflow's.
"""

from __future__ import annotations

from typing import Any

from airflow.serialization.definitions.assets import SerializedAssetBase
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.simple import AssetTriggeredTimetable

from airflow_adapter.asset_evaluation import condition_holds_over
from schemas.assets import AssetKey


def asset_condition(serialized_dag: dict[str, Any]) -> SerializedAssetBase | None:
    """The DAG's asset condition; ``None`` when the DAG is not (or no longer) scheduled on assets."""
    timetable = DagSerialization.from_dict(serialized_dag).timetable
    return timetable.asset_condition if isinstance(timetable, AssetTriggeredTimetable) else None


def condition_holds(
    condition: SerializedAssetBase, queued: list[AssetKey], known: list[AssetKey], aliases: dict[str, list[AssetKey]]
) -> bool:
    """Whether the queued assets satisfy the condition, as Airflow's scheduler decides it."""
    return condition_holds_over(condition, queued, known, aliases)
