"""The asset events a successful try emitted, as Airflow's API server would record them.

Airflow's task runner reports a success with the task's outlets (``task_outlets``) and what the
task added to ``outlet_events`` (extras, and events emitted through an ``AssetAlias``); the API
server turns them into ``AssetEvent`` rows in ``TaskInstance.register_asset_changes_in_db``. This
module does the same without a database, in the same order of rules:

- an ``Asset`` outlet gets one event per extra the task recorded for it, or one event with an
  empty extra when it recorded none;
- an event emitted through an alias counts when the alias is one of the task's outlets; events
  of the same asset with the same extras through several aliases are one event naming them all;
- ``Asset.ref(name=...)`` / ``Asset.ref(uri=...)`` outlets would need Airflow's table of every
  asset of every DAG to resolve; they emit nothing, with a warning (as Airflow does for a
  reference to an asset it does not know).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from datetime import datetime
from typing import Any

from schemas.ids import asset_event_id, dag_run_workflow_id
from schemas.runs import AssetEventPayload, TaskTryRequest

log = logging.getLogger(__name__)


def emitted_asset_events(
    task_outlets: list[Any], outlet_events: list[dict[str, Any]], request: TaskTryRequest, end_date: datetime
) -> list[AssetEventPayload]:
    """The events of one successful try, each with its stable ``event_id``.

    ``task_outlets`` are the runner's ``AssetProfile`` objects, ``outlet_events`` its serialized
    accessors, both as ``SucceedTask`` carries them.
    """
    found: list[tuple[str, str, dict[str, Any], list[str]]] = []
    direct: dict[tuple[str, str], list[dict[str, Any]]] = {}
    through_aliases: dict[tuple[str, str, str], set[str]] = {}
    alias_outlets = {o.name for o in task_outlets if o.type == "AssetAlias" and o.name}
    for event in outlet_events:
        key = event["dest_asset_key"]
        if "source_alias_name" not in event:
            direct.setdefault((key["name"], key["uri"]), []).append(event.get("extra") or {})
        elif event["source_alias_name"] in alias_outlets:
            extra_json = json.dumps(event.get("extra") or {}, sort_keys=True)
            through_aliases.setdefault((key["name"], key["uri"], extra_json), set()).add(event["source_alias_name"])
    for outlet in task_outlets:
        if outlet.type == "Asset" and outlet.name and outlet.uri:
            for extra in direct.get((outlet.name, outlet.uri)) or [{}]:
                found.append((outlet.name, outlet.uri, extra, []))
        elif outlet.type in ("AssetNameRef", "AssetUriRef"):
            log.warning("%s: outlet %s cannot be resolved to an asset; no event emitted", request.label, outlet)
    for (name, uri, extra_json), aliases in through_aliases.items():
        found.append((name, uri, json.loads(extra_json), sorted(aliases)))
    return _with_ids(found, request, end_date)


def _with_ids(
    found: list[tuple[str, str, dict[str, Any], list[str]]], request: TaskTryRequest, end_date: datetime
) -> list[AssetEventPayload]:
    run = request.dag_run
    workflow_id = dag_run_workflow_id(run.dag_id, run.run_id)
    seen: Counter[str] = Counter()
    events = []
    for name, uri, extra, aliases in found:
        events.append(
            AssetEventPayload(
                asset_name=name,
                asset_uri=uri,
                extra=extra,
                timestamp=end_date,
                source_dag_id=run.dag_id,
                source_run_id=run.run_id,
                source_task_id=request.task_id,
                source_map_index=request.map_index,
                source_try_number=request.try_number,
                source_aliases=aliases,
                event_id=asset_event_id(
                    workflow_id, request.task_id, request.map_index, request.try_number, uri, n=seen[uri]
                ),
            )
        )
        seen[uri] += 1
    return events
