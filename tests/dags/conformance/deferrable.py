import datetime

from airflow.providers.standard.sensors.date_time import DateTimeSensorAsync
from airflow.sdk import dag, task
from conformance.deferrable_triggers import (
    FromNowSensor,
    PollingOperator,
    StartsFromTriggerOperator,
    TwiceDeferringOperator,
)


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_deferrable():
    # Time triggers: durable timers in the workflow, no activity.
    delta = FromNowSensor(task_id="time_delta", delta=datetime.timedelta(seconds=1), deferrable=True)
    moment = DateTimeSensorAsync(
        task_id="date_time",
        target_time="{{ (macros.datetime.now(macros.dateutil.tz.UTC) + macros.timedelta(seconds=1)).isoformat() }}",
    )
    mapped_delta = FromNowSensor.partial(task_id="mapped_time_delta", deferrable=True).expand(
        delta=[datetime.timedelta(seconds=1), datetime.timedelta(seconds=2)]
    )
    # A trigger that yields after a few polls; its payload reaches next_method unchanged.
    polled = PollingOperator(task_id="polled", polls=3, payload={"rows": [1, 2, 3], "ok": True})
    twice = TwiceDeferringOperator(task_id="twice")
    mapped = PollingOperator.partial(task_id="mapped_polled").expand(polls=[1, 2, 3])
    # Deferred by the scheduler before any task process runs it.
    from_trigger = StartsFromTriggerOperator(task_id="from_trigger")
    # A trigger that raises fails the task with its error.
    broken = PollingOperator(task_id="broken", polls=1, fail=True)

    @task
    def combine(polled_event: dict, mapped_events: list) -> dict:
        return {"polled": polled_event, "mapped": list(mapped_events)}

    @task(trigger_rule="all_done")
    def after() -> str:
        return "after"

    result = combine(polled.output, mapped.output)
    [delta, moment, mapped_delta, twice, from_trigger, result, broken] >> after()


conformance_deferrable()
