"""Run a DAG with Airflow's own ``dag.test()`` and print the asset events it recorded, as JSON.

A separate process, like ``tests/oracle.py``: ``dag.test()`` needs Airflow's global metadata
database. ``python asset_oracle.py DAGS_FOLDER DAG_ID`` prints one object per ``AssetEvent`` row.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile

home = tempfile.mkdtemp(prefix="dagbridge-asset-oracle-")
os.environ["AIRFLOW_HOME"] = home
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{home}/airflow.db"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = os.path.abspath(sys.argv[1])


def main() -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.db import initdb
    from airflow.utils.session import create_session
    from sqlalchemy import select

    initdb()
    dag = DagBag(dag_folder=sys.argv[1]).get_dag(sys.argv[2])
    dag.test()
    with create_session() as session:
        rows = session.scalars(select(AssetEvent).order_by(AssetEvent.id)).all()
        assets = {a.id: a for a in session.scalars(select(AssetModel))}
        events = [
            {
                "asset_name": assets[row.asset_id].name,
                "asset_uri": assets[row.asset_id].uri,
                "extra": row.extra,
                "source_aliases": sorted(alias.name for alias in row.source_aliases),
                "task_id": row.source_task_id,
                "map_index": row.source_map_index,
            }
            for row in rows
        ]
    print(json.dumps(events))


if __name__ == "__main__":
    main()
