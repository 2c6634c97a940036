"""Airflow's own evaluation of a DAG's asset condition, over the state of one asset-schedule workflow.

Airflow's scheduler evaluates ``dag.timetable.asset_condition`` with ``AssetEvaluator``, resolving
aliases and asset references through its database. The workflow has no shared database: an alias
resolves to the assets events were emitted to through it (what Airflow's alias-to-asset table
records when such an event is registered), a reference to the asset of that name or URI among
the events the workflow received. The boolean logic (``&``, ``|``, ``AssetAll``, ``AssetAny``)
is Airflow's.
"""

from __future__ import annotations

from typing import Any

from airflow.assets.evaluation import AssetEvaluator
from airflow.serialization.definitions.assets import (
    SerializedAsset,
    SerializedAssetAlias,
    SerializedAssetBase,
    SerializedAssetNameRef,
    SerializedAssetRef,
    SerializedAssetUniqueKey,
)
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.simple import AssetTriggeredTimetable

from schemas.assets import AssetKey


def _serialized(key: AssetKey) -> SerializedAsset:
    return SerializedAsset(name=key.name, uri=key.uri, group="asset", extra={}, watchers=[])


class KnownAssetsEvaluator(AssetEvaluator):
    """``AssetEvaluator`` resolving aliases and references from what the workflow has seen."""

    def __init__(self, known: list[AssetKey], aliases: dict[str, list[AssetKey]]) -> None:
        # No database: the overrides below resolve every alias and reference from the workflow's own
        # events, so Airflow's evaluator never touches its session.
        super().__init__(session=None)  # type: ignore[arg-type]
        self._known = known
        self._aliases = aliases

    def _resolve_asset_ref(self, o: SerializedAssetRef) -> SerializedAsset | None:
        by_name = isinstance(o, SerializedAssetNameRef)
        for key in self._known:
            if (key.name if by_name else key.uri) == (o.name if by_name else o.uri):  # type: ignore[attr-defined]
                return _serialized(key)
        return None

    def _resolve_asset_alias(self, o: SerializedAssetAlias) -> list[SerializedAsset]:
        return [_serialized(key) for key in self._aliases.get(o.name, [])]


def asset_condition(serialized_dag: dict[str, Any]) -> SerializedAssetBase | None:
    """The DAG's asset condition; ``None`` when the DAG is not (or no longer) scheduled on assets."""
    timetable = DagSerialization.from_dict(serialized_dag).timetable
    return timetable.asset_condition if isinstance(timetable, AssetTriggeredTimetable) else None


def condition_holds(
    condition: SerializedAssetBase, queued: list[AssetKey], known: list[AssetKey], aliases: dict[str, list[AssetKey]]
) -> bool:
    """Whether the queued assets satisfy the condition, as Airflow's scheduler decides it."""
    statuses = {SerializedAssetUniqueKey(name=key.name, uri=key.uri): True for key in queued}
    return bool(KnownAssetsEvaluator(known, aliases).run(condition, statuses))
