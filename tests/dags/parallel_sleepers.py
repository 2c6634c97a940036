import datetime
import time

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def parallel_sleepers():
    for name in ("a", "b"):

        @task(task_id=f"sleep_{name}")
        def sleep() -> float:
            time.sleep(1.5)
            return 1.5

        sleep()


parallel_sleepers()
