import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_map_multiple_outputs():
    # Airflow refuses to map over one key of a multiple_outputs task ("cannot map over XCom with
    # custom key"); what it allows is a key as a partial argument and a map over the whole dict.
    @task(multiple_outputs=True)
    def plan() -> dict:
        return {"x.csv": 10, "y.csv": 20, "owner": 1}

    @task
    def load(entry, owner: int) -> str:
        name, size = entry
        return f"{owner}:{name}:{size}"

    @task
    def summary(loaded) -> list:
        return sorted(loaded)

    planned = plan()
    summary(load.partial(owner=planned["owner"]).expand(entry=planned))


conformance_map_multiple_outputs()
