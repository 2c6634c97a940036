import datetime

from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_setup_teardown():
    @task
    def create_cluster() -> str:
        return "cluster-1"

    @task
    def work(cluster: str) -> str:
        raise RuntimeError(f"work on {cluster} failed")

    @task
    def more_work() -> str:
        return "fine"

    @task
    def delete_cluster(cluster: str) -> str:
        return f"deleted {cluster}"

    @task
    def report() -> str:
        return "never"

    cluster = create_cluster()
    deleted = delete_cluster(cluster)
    worked = work(cluster)
    cluster >> [worked, more_work()] >> deleted.as_teardown(setups=cluster)
    worked >> report()

    @task
    def setup_ok() -> str:
        return "up"

    @task
    def step() -> str:
        return "stepped"

    @task
    def teardown_ok() -> str:
        return "down"

    up = setup_ok().as_setup()
    up >> step() >> teardown_ok().as_teardown(setups=up)


conformance_setup_teardown()
