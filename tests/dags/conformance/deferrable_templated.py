import datetime

from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import dag
from conformance.deferrable_triggers import TemplatedFromTriggerOperator


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_deferrable_templated():
    # Started from their triggers by Airflow's scheduler, without a task process: the triggerer
    # renders their templated trigger kwargs against the task's context (Airflow 3.3).
    DateTimeSensorAsync(
        task_id="date_time_from_trigger",
        target_time="{{ (logical_date + macros.timedelta(seconds=1)).isoformat() }}",
        start_from_trigger=True,
    )
    TemplatedFromTriggerOperator(
        task_id="payload_from_trigger",
        payload="{{ ds }} {{ dag_run.conf['region'] }} {{ task.task_id }} {{ ti.try_number }}",
    )


conformance_deferrable_templated()
