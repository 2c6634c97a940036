"""Deferrals that end without their trigger firing: a trigger timeout (conf: ``marker``)."""

import datetime

from airflow.sdk import dag, task
from conformance.deferrable_triggers import PollingOperator


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def deferrable_edges():
    # Its trigger would poll for an hour: the 1 s trigger timeout fails the task (TaskDeferralTimeout).
    timed_out = PollingOperator(
        task_id="timed_out", polls=7200, interval=0.5, timeout_seconds=1, marker="{{ dag_run.conf['marker'] }}"
    )

    @task(trigger_rule="all_done")
    def after() -> str:
        return "after"

    timed_out >> after()


deferrable_edges()


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def deferrable_ends_in_trigger():
    from airflow.providers.standard.sensors.time_delta import WaitSensor

    # TimeDeltaTrigger(end_from_trigger=True): the trigger (here a timer) ends the task, no resumption.
    # dag.test() cannot be the oracle: it resumes the task and WaitSensor has no execute_complete.
    WaitSensor(task_id="wait", time_to_wait=datetime.timedelta(seconds=1), deferrable=True)


deferrable_ends_in_trigger()
