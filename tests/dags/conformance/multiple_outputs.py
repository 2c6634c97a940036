import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_multiple_outputs():
    @task(multiple_outputs=True)
    def split() -> dict:
        return {"name": "dagbridge", "size": 9}

    @task
    def label(name: str, size: int) -> str:
        return f"{name}:{size}"

    parts = split()
    label(parts["name"], parts["size"])


conformance_multiple_outputs()
