"""A task that appends a line to the file named in the conf each time it really runs."""

import datetime
import time

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def bridge_counted():
    @task
    def count(params=None, dag_run=None) -> str:
        with open(dag_run.conf["marker"], "a") as marker:
            marker.write("ran\n")
        time.sleep(dag_run.conf.get("sleep", 0))
        return "counted"

    @task
    def after(value: str) -> str:
        return value

    after(count())


bridge_counted()
