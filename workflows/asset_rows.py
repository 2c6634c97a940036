"""The asset events a run consumed, as rows of the run's private Airflow database.

Airflow's scheduler links the events an asset-triggered run consumed to the run
(``DagRun.consumed_asset_events``); the execution API reads them back from there for the task
context's ``triggering_asset_events``. The same rows are written here, so whatever Airflow code
reads the run from the database (the run's context, callbacks) sees them.
"""

from __future__ import annotations

from airflow.models.asset import AssetAliasModel, AssetEvent, AssetModel
from airflow.models.dagrun import DagRun
from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas.runs import AssetEventPayload


def record_consumed_events(session: Session, dag_run: DagRun, events: list[AssetEventPayload]) -> None:
    """Create the events' assets, aliases and ``AssetEvent`` rows and link them to the run."""
    assets: dict[tuple[str, str], AssetModel] = {}
    aliases: dict[str, AssetAliasModel] = {}
    rows = []
    for event in events:
        key = (event.asset_name, event.asset_uri)
        if key not in assets:
            assets[key] = AssetModel(name=event.asset_name, uri=event.asset_uri, group=event.asset_group, extra={})
            session.add(assets[key])
        for alias in event.source_aliases:
            if alias not in aliases:
                aliases[alias] = AssetAliasModel(name=alias)
                session.add(aliases[alias])
        session.flush()
        row = AssetEvent(
            asset_id=assets[key].id,
            extra=event.extra,
            source_task_id=event.source_task_id,
            source_dag_id=event.source_dag_id,
            source_run_id=event.source_run_id,
            source_map_index=event.source_map_index,
            timestamp=event.timestamp,
        )
        row.source_aliases = [aliases[alias] for alias in event.source_aliases]
        rows.append(row)
    session.add_all(rows)
    dag_run.consumed_asset_events.extend(rows)
    session.flush()


def consumed_events(session: Session, dag_run: DagRun) -> list[AssetEventPayload]:
    """The run's consumed events, in the order Airflow consumed them (timestamp, then id)."""
    rows = sorted(dag_run.consumed_asset_events, key=lambda row: (row.timestamp, row.id))
    assets = {a.id: a for a in session.scalars(select(AssetModel).where(AssetModel.id.in_({r.asset_id for r in rows})))}
    return [
        AssetEventPayload(
            asset_name=assets[row.asset_id].name,
            asset_uri=assets[row.asset_id].uri,
            asset_group=assets[row.asset_id].group,
            extra=row.extra or {},
            timestamp=row.timestamp,
            source_dag_id=row.source_dag_id,
            source_run_id=row.source_run_id,
            source_task_id=row.source_task_id,
            source_map_index=row.source_map_index if row.source_map_index is not None else -1,
            source_aliases=sorted(alias.name for alias in row.source_aliases),
        )
        for row in rows
    ]
