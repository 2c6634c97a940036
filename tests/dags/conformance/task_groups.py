import datetime

from airflow.sdk import dag, task, task_group


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_task_groups():
    @task
    def start() -> str:
        return "a"

    @task_group
    def outer(letter: str):
        @task
        def double(value: str) -> str:
            return value * 2

        @task_group
        def inner(value: str):
            @task
            def shout(text: str) -> str:
                return text.upper()

            return shout(value)

        return inner(double(letter))

    @task
    def finish(value: str) -> str:
        return f"{value}!"

    finish(outer(start()))


conformance_task_groups()
