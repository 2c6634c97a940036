import datetime

from airflow.providers.standard.sensors.python import PythonSensor
from airflow.sdk import PokeReturnValue, dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_sensors_poke():
    @task.sensor(poke_interval=0.2, timeout=30, mode="poke")
    def ready() -> PokeReturnValue:
        return PokeReturnValue(is_done=True, xcom_value="ready")

    @task
    def use(value: str) -> str:
        return f"used {value}"

    use(ready())

    never = PythonSensor(
        task_id="never_soft", python_callable=lambda: False, poke_interval=0.2, timeout=1, soft_fail=True
    )
    never_hard = PythonSensor(
        task_id="never_hard", python_callable=lambda: False, poke_interval=0.2, timeout=1, retries=2
    )

    @task(trigger_rule="all_done")
    def after() -> str:
        return "after"

    [never, never_hard] >> after()


conformance_sensors_poke()
