import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_retry_then_succeed():
    @task(retries=2, retry_delay=datetime.timedelta(seconds=1))
    def flaky(ti=None) -> int:
        if ti.try_number < 2:
            raise RuntimeError(f"try {ti.try_number} fails")
        return ti.try_number

    @task(retries=1, retry_delay=datetime.timedelta(seconds=1))
    def always_fails() -> None:
        raise RuntimeError("always")

    flaky() >> always_fails()


conformance_retry_then_succeed()
