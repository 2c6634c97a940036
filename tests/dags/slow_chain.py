import datetime
import time

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def slow_chain():
    @task
    def begin() -> int:
        return 7

    @task
    def slow(value: int) -> int:
        time.sleep(6)
        return value * 6

    @task
    def finish(value: int) -> str:
        return f"answer {value}"

    finish(slow(begin()))


slow_chain()
