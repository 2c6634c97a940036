import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import dag, task, task_group


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_branch_edge_cases():
    @task.branch
    def nowhere() -> None:
        return None

    @task
    def unreachable() -> str:
        return "never"

    nowhere() >> unreachable()

    @task.branch
    def into_group() -> str:
        return "group"

    @task_group
    def group():
        @task
        def first() -> str:
            return "first"

        @task
        def second(value: str) -> str:
            return value + " second"

        second(first())

    other = EmptyOperator(task_id="other")
    into_group() >> [group(), other]

    @task.branch
    def mapped_branch(value: int) -> str:
        return "even_path" if value % 2 == 0 else "odd_path"

    @task
    def even_path() -> str:
        return "even"

    @task
    def odd_path() -> str:
        return "odd"

    mapped_branch.expand(value=[1, 3]) >> [even_path(), odd_path()]


conformance_branch_edge_cases()
