import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_taskflow_chain():
    @task
    def numbers() -> list[int]:
        return [3, 1, 2]

    @task
    def ordered(values: list[int]) -> list[int]:
        return sorted(values)

    @task
    def described(values: list[int]) -> dict:
        return {"first": values[0], "last": values[-1], "count": len(values)}

    described(ordered(numbers()))


conformance_taskflow_chain()
