import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_trigger_target():
    @task
    def double(dag_run=None) -> int:
        return dag_run.conf["n"] * 2

    double()


conformance_trigger_target()


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_trigger_dag_run():
    # dag.test() only creates the triggered run (nothing runs it), so waiting for it is tested elsewhere.
    trigger = TriggerDagRunOperator(
        task_id="trigger",
        trigger_dag_id="conformance_trigger_target",
        trigger_run_id="conformance_triggered",
        conf={"n": 21},
        logical_date="{{ logical_date }}",
    )
    again_skips = TriggerDagRunOperator(
        task_id="again_skips",
        trigger_dag_id="conformance_trigger_target",
        trigger_run_id="conformance_triggered",
        logical_date="{{ logical_date }}",
        skip_when_already_exists=True,
    )
    again_fails = TriggerDagRunOperator(
        task_id="again_fails",
        trigger_dag_id="conformance_trigger_target",
        trigger_run_id="conformance_triggered",
        logical_date="{{ logical_date }}",
        retries=1,
    )

    @task(trigger_rule="all_done")
    def after() -> str:
        return "after"

    trigger >> [again_skips, again_fails] >> after()


conformance_trigger_dag_run()
