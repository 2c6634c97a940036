import datetime

from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def trigger_child():
    @task
    def double(dag_run=None, ds=None) -> dict:
        if dag_run.conf["mode"] == "fail":
            raise RuntimeError("the child was asked to fail")
        return {"doubled": dag_run.conf["n"] * 2, "ds": ds}

    double()


trigger_child()


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def trigger_and_wait():
    TriggerDagRunOperator(
        task_id="trigger",
        trigger_dag_id="trigger_child",
        trigger_run_id="{{ dag_run.conf['child_run_id'] }}",
        conf={"n": 5, "mode": "{{ dag_run.conf['child_mode'] }}"},
        logical_date="{{ logical_date }}",
        wait_for_completion=True,
        poke_interval=0.2,
    )


trigger_and_wait()


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def trigger_and_wait_deferred():
    # The same wait, deferred: the task leaves its process while DagStateTrigger polls the child's workflow.
    TriggerDagRunOperator(
        task_id="trigger",
        trigger_dag_id="trigger_child",
        trigger_run_id="{{ dag_run.conf['child_run_id'] }}",
        conf={"n": 5, "mode": "{{ dag_run.conf['child_mode'] }}"},
        logical_date="{{ logical_date }}",
        wait_for_completion=True,
        poke_interval=0.2,
        deferrable=True,
    )


trigger_and_wait_deferred()


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def trigger_missing_dag():
    TriggerDagRunOperator(task_id="trigger", trigger_dag_id="no_such_dag", trigger_run_id="{{ run_id }}")


trigger_missing_dag()
