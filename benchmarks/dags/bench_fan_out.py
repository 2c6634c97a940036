import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def bench_fan_out():
    @task
    def root() -> int:
        return 1

    @task
    def leaf(value: int, index: int) -> int:
        return value + index

    base = root()
    for i in range(50):
        leaf.override(task_id=f"leaf_{i}")(base, i)


bench_fan_out()
