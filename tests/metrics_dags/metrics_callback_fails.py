"""A task whose success callback raises: Airflow logs it and keeps the success; dagbridge counts it."""

import datetime

from airflow.sdk import dag, task


def _broken_callback(context) -> None:
    raise RuntimeError("the callback is broken")


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def metrics_callback_fails():
    @task(on_success_callback=_broken_callback)
    def works() -> int:
        return 1

    works()


metrics_callback_fails()
