import datetime

from airflow.sdk import dag, task, task_group


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_nested_groups_branch():
    @task
    def start() -> int:
        return 7

    @task_group
    def outer(value):
        @task_group
        def inner(value):
            @task.branch
            def pick(value: int) -> str:
                return "outer.inner.odd" if value % 2 else "outer.inner.even"

            @task
            def odd(value: int) -> str:
                return f"{value} is odd"

            @task
            def even(value: int) -> str:
                return f"{value} is even"

            @task(trigger_rule="none_failed_min_one_success")
            def merge() -> str:
                return "merged"

            pick(value) >> [odd(value), even(value)] >> merge()

        @task
        def after_inner() -> str:
            return "after"

        inner(value) >> after_inner()

    outer(start())


conformance_nested_groups_branch()
