import datetime

from airflow.sdk import dag, task, task_group


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_mapped_task_group():
    @task
    def sources() -> list[int]:
        return [1, 2, 3]

    @task_group
    def process(value: int):
        @task
        def double(value: int) -> int:
            return value * 2

        @task
        def label(doubled: int, value: int) -> str:
            return f"{value}->{doubled}"

        return label(double(value), value)

    @task
    def collect(labels) -> list[str]:
        return sorted(labels)

    collect(process.expand(value=sources()))


conformance_mapped_task_group()
