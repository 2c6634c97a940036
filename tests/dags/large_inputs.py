import datetime

from airflow.sdk import dag, task

WIDTH = 100


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def large_inputs():
    """A large XCom read by a wide mapped task, and a conf and an XCom read past a direct parent."""

    @task
    def items() -> list[str]:
        return [f"item-{i:04d}-" + "x" * 300 for i in range(WIDTH)]

    @task
    def measure(item: str, **context) -> int:
        ti = context["ti"]
        width = ti.get_ti_count(dag_id=ti.dag_id, task_ids=["measure"], run_ids=[ti.run_id])
        return len(item) + width + len(context["dag_run"].conf.get("padding", ""))

    @task
    def total(lengths, **context) -> int:
        first = context["ti"].xcom_pull(task_ids="items")
        return sum(lengths) + len(first)

    total(measure.expand(item=items()))


large_inputs()
