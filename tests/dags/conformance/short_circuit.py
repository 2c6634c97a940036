import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import ShortCircuitOperator
from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_short_circuit():
    @task.short_circuit
    def proceed() -> bool:
        return True

    @task.short_circuit
    def stop_all() -> int:
        return 0

    @task.short_circuit(ignore_downstream_trigger_rules=False)
    def stop_direct() -> list:
        return []

    @task
    def after_proceed() -> str:
        return "ran"

    @task
    def after_stop() -> str:
        return "never"

    @task(trigger_rule="all_done")
    def all_done_after_stop() -> str:
        return "never either"

    @task
    def direct_child() -> str:
        return "skipped"

    @task(trigger_rule="all_done")
    def keeps_rule() -> str:
        return "ran by its rule"

    proceed() >> after_proceed()
    stopped = after_stop()
    stop_all() >> stopped >> all_done_after_stop()
    child = direct_child()
    stop_direct() >> child >> keeps_rule()

    classic = ShortCircuitOperator(task_id="classic", python_callable=lambda: False)
    classic >> EmptyOperator(task_id="classic_child")


conformance_short_circuit()
