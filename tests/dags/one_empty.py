import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

# The burst tests' DAG: as small as a DAG gets, Airflow's default max_active_runs (16).
with DAG("one_empty", schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False):
    EmptyOperator(task_id="only")
