"""Tries in every end state: up_for_retry then success, up_for_retry then failed; the run fails."""

import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def metrics_retries():
    @task(retries=1, retry_delay=datetime.timedelta(seconds=0.5))
    def flaky(ti=None) -> int:
        if ti.try_number < 2:
            raise RuntimeError(f"try {ti.try_number} fails")
        return ti.try_number

    @task(retries=1, retry_delay=datetime.timedelta(seconds=0.5))
    def always_fails() -> None:
        raise RuntimeError("always")

    flaky() >> always_fails()


metrics_retries()
