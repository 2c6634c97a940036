"""DAGs started by routes from business topics: each returns the conf and logical date it got."""

import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, task

for dag_id in ("routed_orders", "routed_eu_orders", "routed_files"):
    with DAG(dag_id, schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False):

        @task
        def echo(dag_run=None, logical_date=None) -> dict:
            return {"conf": dict(dag_run.conf), "logical_date": logical_date.isoformat() if logical_date else None}

        echo()

# No task activity, so a run is quick: what flow control tests count is runs open at once.
with DAG("routed_capped", schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False):
    EmptyOperator(task_id="nothing")
