import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import BaseHook, dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_connections():
    # AIRFLOW_CONN_CONFORMANCE_WAREHOUSE is set by tests/test_conformance.py for the worker and
    # for Airflow's dag.test() alike.
    @task
    def describe() -> dict:
        connection = BaseHook.get_connection("conformance_warehouse")
        return {
            "type": connection.conn_type,
            "host": connection.host,
            "port": connection.port,
            "login": connection.login,
            "schema": connection.schema,
            "extra": connection.extra_dejson,
        }

    BashOperator(
        task_id="templated",
        bash_command="echo '{{ conn.conformance_warehouse.host }}:{{ conn.conformance_warehouse.port }}'",
    )
    describe()


conformance_connections()
