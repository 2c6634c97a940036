import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import Variable, dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_variables():
    # AIRFLOW_VAR_CONFORMANCE_GREETING and AIRFLOW_VAR_CONFORMANCE_SETTINGS are set by
    # tests/test_conformance.py for the worker and for Airflow's dag.test() alike.
    @task
    def read() -> dict:
        return {
            "greeting": Variable.get("conformance_greeting"),
            "settings": Variable.get("conformance_settings", deserialize_json=True),
            "missing": Variable.get("conformance_missing", default="fallback"),
        }

    BashOperator(
        task_id="templated",
        bash_command="echo '{{ var.value.conformance_greeting }} {{ var.json.conformance_settings.limit }}'",
    )
    read()


conformance_variables()
