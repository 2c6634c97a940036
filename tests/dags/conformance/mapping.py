import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_mapping():
    @task
    def numbers() -> list[int]:
        return [1, 2, 3]

    @task
    def scale(value: int, factor: int) -> int:
        return value * factor

    @task
    def total(values) -> int:
        return sum(values)

    total(scale.partial(factor=10).expand(value=numbers()))
    total.override(task_id="literal_total")(
        scale.override(task_id="literal_scale").partial(factor=2).expand(value=[5, 6])
    )


conformance_mapping()
