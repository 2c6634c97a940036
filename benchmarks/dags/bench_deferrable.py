"""``width`` mapped deferred tasks waiting on one gate file (conf: ``gate``, ``width``)."""

import datetime

from airflow.sdk import dag, task
from bench_triggers import TimedGateOperator


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def bench_deferrable():
    @task
    def indexes(**context) -> list[int]:
        return list(range(context["dag_run"].conf["width"]))

    TimedGateOperator.partial(task_id="wait", gate="{{ dag_run.conf['gate'] }}").expand(index=indexes())


bench_deferrable()
