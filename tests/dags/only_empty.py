import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG("only_empty", schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False):
    EmptyOperator(task_id="first") >> [EmptyOperator(task_id="left"), EmptyOperator(task_id="right")]
