import datetime

from airflow.sdk import Param, dag, task


@dag(
    schedule=None,
    start_date=datetime.datetime(2025, 1, 1),
    catchup=False,
    params={"factor": Param(2, type="integer", minimum=1), "label": "default-label"},
)
def validated_params():
    @task
    def scaled(params=None) -> dict:
        return {"value": 21 * params["factor"], "label": params["label"]}

    scaled()


validated_params()
