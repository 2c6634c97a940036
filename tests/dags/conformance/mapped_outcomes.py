import datetime

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_mapped_outcomes():
    @task
    def values() -> list[int]:
        return [1, 2, 3, 4]

    @task(retries=1, retry_delay=datetime.timedelta(seconds=1))
    def check(value: int, ti=None) -> int:
        if value == 2:
            raise AirflowSkipException("two is skipped")
        if value == 3 and ti.try_number == 1:
            raise RuntimeError("three fails once")
        if value == 4:
            raise ValueError("four always fails")
        return value * 10

    @task(trigger_rule="all_done")
    def survivors(results) -> list:
        return list(results)

    @task
    def strict(results) -> list:
        return list(results)

    checked = check.expand(value=values())
    survivors(checked)
    strict(checked)


conformance_mapped_outcomes()
