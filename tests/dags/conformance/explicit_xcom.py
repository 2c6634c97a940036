import datetime

from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG


def push(ti):
    ti.xcom_push(key="answer", value=42)
    ti.xcom_push(key="words", value=["airflow", "temporal"])


def pull(ti):
    answer = ti.xcom_pull(task_ids="push", key="answer")
    words = ti.xcom_pull(task_ids="push", key="words")
    ti.xcom_push(key="sentence", value=f"{answer} {' and '.join(words)}")
    return answer + 1


with DAG("conformance_explicit_xcom", schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False):
    PythonOperator(task_id="push", python_callable=push) >> PythonOperator(task_id="pull", python_callable=pull)
