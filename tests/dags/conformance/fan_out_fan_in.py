import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_fan_out_fan_in():
    @task
    def seed() -> int:
        return 10

    @task
    def branch(base: int, offset: int) -> int:
        return base + offset

    @task
    def total(*parts: int) -> int:
        return sum(parts)

    base = seed()
    total(*[branch.override(task_id=f"branch_{i}")(base, i) for i in range(5)])


conformance_fan_out_fan_in()
