import datetime

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

with DAG(
    "conformance_empty_and_bash",
    schedule=None,
    start_date=datetime.datetime(2025, 1, 1),
    catchup=False,
    params={"greeting": "hello", "repeat": 2},
):
    begin = EmptyOperator(task_id="begin")
    greet = BashOperator(
        task_id="greet",
        bash_command=(
            'echo \'{{ params.greeting }} {{ dag_run.conf.get("name", "nobody") }} '
            "x{{ params.repeat }} on {{ ds }} ({{ ds_nodash }}, {{ logical_date.year }})'"
        ),
    )
    count = BashOperator(task_id="count", bash_command="echo $(( {{ params.repeat }} * 21 ))")
    end = EmptyOperator(task_id="end")
    begin >> [greet, count] >> end
