"""A run with no task activity: cheap enough to start hundreds in a test."""

import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("bridge_noop", schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False):
    EmptyOperator(task_id="nothing")
