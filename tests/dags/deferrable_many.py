"""``width`` mapped deferred tasks that all wait for one gate file (conf: ``gate``, ``width``)."""

import datetime

from airflow.sdk import dag, task
from conformance.deferrable_triggers import GateOperator


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def deferrable_many():
    @task
    def indexes(**context) -> list[int]:
        return list(range(context["dag_run"].conf["width"]))

    waits = GateOperator.partial(task_id="wait", gate="{{ dag_run.conf['gate'] }}").expand(index=indexes())

    @task
    def total(values: list[int]) -> int:
        return sum(values)

    total(waits.output)


deferrable_many()
