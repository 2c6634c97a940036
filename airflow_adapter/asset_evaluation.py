"""Airflow's ``AssetEvaluator`` without its database: aliases and references resolved from what a workflow saw.

Airflow's scheduler resolves an alias or an asset reference in a DAG's asset condition through
its database, in two private methods of ``AssetEvaluator``. An asset-schedule workflow has no
shared database, so this subclass overrides those two (``contract.EXPECTATIONS`` checks their
signatures): an alias resolves to the assets events were emitted to through it, a reference to
the asset of that name or URI among the events received. The boolean logic is Airflow's.
"""

from __future__ import annotations

from airflow.assets.evaluation import AssetEvaluator
from airflow.serialization.definitions.assets import (
    SerializedAsset,
    SerializedAssetAlias,
    SerializedAssetBase,
    SerializedAssetNameRef,
    SerializedAssetRef,
    SerializedAssetUniqueKey,
)

from schemas.assets import AssetKey

RESOLVE_ASSET_REF = "airflow.assets.evaluation.AssetEvaluator._resolve_asset_ref"
RESOLVE_ASSET_ALIAS = "airflow.assets.evaluation.AssetEvaluator._resolve_asset_alias"


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


def condition_holds_over(
    condition: SerializedAssetBase, queued: list[AssetKey], known: list[AssetKey], aliases: dict[str, list[AssetKey]]
) -> bool:
    """Whether the queued assets satisfy the condition, by Airflow's evaluator."""
    statuses = {SerializedAssetUniqueKey(name=key.name, uri=key.uri): True for key in queued}
    return bool(KnownAssetsEvaluator(known, aliases).run(condition, statuses))
