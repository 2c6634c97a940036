"""The Temporal UI screenshots' DAG: a mapped task whose last instance fails once, then succeeds.

Its run shows what a run looks like in the UI: one activity per try, summarised as
``transform[3] try 2``, and a task grid that counts a mapped task's instances by state.
"""

from __future__ import annotations

import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False, tags=["example"])
def example_orders():
    @task
    def extract() -> list[int]:
        return [120, 80, 45, 300]

    @task(retries=1, retry_delay=datetime.timedelta(seconds=1))
    def transform(amount: int, ti=None) -> int:
        if ti.map_index == 3 and ti.try_number == 1:
            raise RuntimeError("the exchange-rate service timed out (this try fails on purpose)")
        return round(amount * 1.08)

    @task
    def load(amounts: list[int]) -> int:
        return sum(amounts)

    @task
    def report(total: int) -> None:
        print(f"loaded orders worth {total}")

    report(load(transform.expand(amount=extract())))


example_orders()
