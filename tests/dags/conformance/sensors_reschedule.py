import datetime

from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import PokeReturnValue, dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_sensors_reschedule():
    # Done on the third poke, all of them under try 1.
    @task.sensor(poke_interval=0.2, timeout=60, mode="reschedule")
    def third_poke(task_reschedule_count: int = 0) -> PokeReturnValue:
        return PokeReturnValue(is_done=task_reschedule_count >= 2, xcom_value=f"after {task_reschedule_count}")

    @task
    def use(value: str) -> str:
        return f"used {value}"

    use(third_poke())

    # Try 1 fails after two reschedules; try 2 must count its own reschedules from zero, so its
    # XCom is 1 (it would be 2 if the first try's reschedules were still counted).
    @task.sensor(poke_interval=0.2, timeout=60, mode="reschedule", retries=1, retry_delay=datetime.timedelta(0))
    def retried(ti=None, task_reschedule_count: int = 0) -> PokeReturnValue:
        if ti.try_number == 1 and task_reschedule_count == 2:
            raise RuntimeError("the first try fails after two reschedules")
        done = ti.try_number == 2 and task_reschedule_count >= 1
        return PokeReturnValue(is_done=done, xcom_value=task_reschedule_count)

    # The timeout counts across pokes, from the first rescheduled one: without that these never end.
    never_soft = PythonSensor(
        task_id="never_soft", python_callable=lambda: False, mode="reschedule", poke_interval=0.2, timeout=1,
        soft_fail=True,
    )  # fmt: skip
    never_hard = PythonSensor(
        task_id="never_hard", python_callable=lambda: False, mode="reschedule", poke_interval=0.2, timeout=1,
        retries=2,
    )  # fmt: skip

    @task(trigger_rule="all_done")
    def after() -> str:
        return "after"

    [retried(), never_soft, never_hard] >> after()


conformance_sensors_reschedule()
