"""Which DAGs of the dags folder are scheduled on assets, and on which: where asset events go."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from airflow.sdk.definitions.asset import (
    Asset,
    AssetAlias,
    AssetBooleanCondition,
    AssetNameRef,
    AssetUriRef,
    BaseAsset,
)
from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable  # AssetOrTimeSchedule too

from schemas.assets import AssetConsumer, AssetKey


def asset_consumers(dags: list[Any]) -> list[AssetConsumer]:
    """The asset-scheduled DAGs among ``dags`` (Airflow DAG objects), by dag_id."""
    consumers = []
    for dag in sorted(dags, key=lambda d: d.dag_id):
        timetable = dag.timetable
        if not isinstance(timetable, AssetTriggeredTimetable):
            continue
        parts = list(condition_leaves(timetable.asset_condition))
        consumers.append(
            AssetConsumer(
                dag_id=dag.dag_id,
                assets=sorted({AssetKey(name=p.name, uri=p.uri) for p in parts if isinstance(p, Asset)}, key=str),
                name_refs=sorted({p.name for p in parts if isinstance(p, AssetNameRef)}),
                uri_refs=sorted({p.uri for p in parts if isinstance(p, AssetUriRef)}),
                aliases=sorted({p.name for p in parts if isinstance(p, AssetAlias)}),
            )
        )
    return consumers


def condition_leaves(condition: BaseAsset) -> Iterator[BaseAsset]:
    if isinstance(condition, AssetBooleanCondition):
        for part in condition.objects:
            yield from condition_leaves(part)
    else:
        yield condition
