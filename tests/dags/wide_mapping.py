import datetime

from airflow.sdk import dag, task

WIDTH = 1_000


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def wide_mapping():
    """Wider than one scheduling pass creates (250 by default), with its reduce."""

    @task
    def items() -> list[int]:
        return list(range(WIDTH))

    @task
    def double(item: int) -> int:
        return item * 2

    @task
    def total(values) -> int:
        return sum(values)

    total(double.expand(item=items()))


wide_mapping()
