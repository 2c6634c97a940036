import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_cross_product():
    @task
    def letters() -> list[str]:
        return ["a", "b"]

    @task
    def combine(letter: str, number: int, sep: str) -> str:
        return f"{letter}{sep}{number}"

    @task
    def collect(values) -> list[str]:
        return list(values)

    collect(combine.partial(sep="-").expand(letter=letters(), number=[1, 2, 3]))


conformance_cross_product()
