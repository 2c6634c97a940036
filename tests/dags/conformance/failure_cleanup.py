import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_failure_cleanup():
    @task
    def prepare() -> int:
        return 1

    @task
    def explode(value: int) -> int:
        raise ValueError(f"cannot process {value}")

    @task
    def publish(value: int) -> int:
        return value

    @task
    def after_publish() -> str:
        return "never"

    @task(trigger_rule="all_done")
    def cleanup() -> str:
        return "cleaned"

    prepared = prepare()
    published = publish(explode(prepared))
    published >> after_publish()
    published >> cleanup()


conformance_failure_cleanup()
