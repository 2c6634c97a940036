"""The AssetWatchers ``dagbridge bridge`` serves: found in the dags folder when the bridge starts.

The DAG files are read with the workers' loader (Airflow's ``DagBag``), so a DAG the workers run
is the DAG the bridge watches for. A watcher that cannot be served (not a Kafka trigger, a
connection to another cluster, an ``apply_function`` that does not import) is named in one error
line and left out, as Airflow's triggerer fails that trigger only; the others are served.
"""

from __future__ import annotations

import logging

from activities.asset_watchers import kafka_asset_watchers
from activities.dag_loader import DagLoader
from bridge.watchers import NO_WATCHERS, Watchers, compile_watchers
from schemas.settings import Settings

log = logging.getLogger(__name__)


def served_watchers(settings: Settings) -> Watchers:
    """The Kafka AssetWatchers of ``DAGBRIDGE_DAGS_FOLDER``; none when the folder does not exist."""
    if not settings.dags_folder.is_dir():
        log.info("no dags folder at %s: no AssetWatcher is served", settings.dags_folder)
        return NO_WATCHERS
    loader = DagLoader(settings.dags_folder)
    dags = loader.all_dags()
    for path, error in loader.import_errors().items():
        last_line = error.strip().splitlines()[-1] if error.strip() else "import failed"
        log.warning("DAG file %s does not import, its AssetWatchers are not served: %s", path, last_line)
    found = kafka_asset_watchers(list(dags.values()), settings.kafka_bootstrap)
    compiled = compile_watchers(found.served)
    for line in found.skipped + compiled.skipped:
        log.error("AssetWatcher not served: %s", line)
    for watcher in compiled.watchers.watchers:
        spec = watcher.spec
        log.info(
            "serving AssetWatcher %s: topics %s, asset %r, for %s",
            spec.label,
            ", ".join(spec.topics),
            spec.asset.name,
            ", ".join(
                t.dag_id + ("" if t.alone else " (queued: its condition needs other assets)") for t in spec.targets
            )
            or "no DAG",
        )
    return compiled.watchers
