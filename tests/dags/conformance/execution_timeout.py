import datetime
import time

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_execution_timeout():
    @task(execution_timeout=datetime.timedelta(seconds=1), retries=1, retry_delay=datetime.timedelta(seconds=1))
    def too_slow(ti=None) -> int:
        if ti.try_number == 1:
            time.sleep(30)
        return ti.try_number

    @task(execution_timeout=datetime.timedelta(seconds=1))
    def always_too_slow() -> None:
        time.sleep(30)

    @task(trigger_rule="all_done")
    def after() -> str:
        return "after"

    [too_slow(), always_too_slow()] >> after()


conformance_execution_timeout()
