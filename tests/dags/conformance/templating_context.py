import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG, Param, task

with DAG(
    "conformance_templating_context",
    schedule=None,
    start_date=datetime.datetime(2025, 1, 1),
    catchup=False,
    params={"region": Param("eu", type="string"), "limit": Param(5, type="integer", minimum=1)},
):
    BashOperator(
        task_id="dates",
        bash_command=(
            "echo '{{ ts }} {{ ts_nodash }} {{ logical_date.isoformat() }} {{ macros.ds_add(ds, 7) }} "
            "{{ data_interval_start }}'"
        ),
    )
    BashOperator(
        task_id="params", bash_command="echo '{{ params.region }} {{ params.limit }} {{ dag_run.conf | tojson }}'"
    )

    @task
    def from_context(params=None, ds=None, ts=None, logical_date=None, dag_run=None) -> dict:
        return {
            "region": params["region"],
            "limit": params["limit"],
            "ds": ds,
            "ts": ts,
            "weekday": logical_date.strftime("%A"),
            "conf": dict(dag_run.conf),
        }

    @task(templates_dict={"next_week": "{{ macros.ds_add(ds, 7) }}", "who": "{{ params.region | upper }}"})
    def templated(templates_dict=None) -> dict:
        return dict(templates_dict)

    from_context()
    templated()
