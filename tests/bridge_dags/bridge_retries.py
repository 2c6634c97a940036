"""One task that succeeds on its second try, one that fails both, one that never runs."""

import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def bridge_retries():
    @task(retries=1, retry_delay=datetime.timedelta(seconds=1))
    def flaky(ti=None) -> int:
        if ti.try_number < 2:
            raise RuntimeError(f"try {ti.try_number} fails")
        return ti.try_number

    @task(retries=1, retry_delay=datetime.timedelta(seconds=1))
    def always_fails() -> None:
        raise RuntimeError("always")

    @task
    def never_runs() -> None:
        pass

    flaky() >> always_fails() >> never_runs()


bridge_retries()
