import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def queue_routing():
    @task
    def on_default() -> str:
        return "default"

    @task(queue="dagbridge-tests-special")
    def on_special(previous: str) -> str:
        return f"{previous} then special"

    on_special(on_default())


queue_routing()
