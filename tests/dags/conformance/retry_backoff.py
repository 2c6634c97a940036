import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_retry_backoff():
    @task(
        retries=3,
        retry_delay=datetime.timedelta(seconds=1),
        retry_exponential_backoff=2.0,
        max_retry_delay=datetime.timedelta(seconds=1.5),
    )
    def flaky(ti=None) -> int:
        if ti.try_number < 3:
            raise RuntimeError(f"try {ti.try_number} fails")
        return ti.try_number

    flaky()


conformance_retry_backoff()
