import datetime

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_skip_and_fail():
    @task
    def skips() -> str:
        raise AirflowSkipException("nothing to do today")

    @task
    def after_skip(value: str) -> str:
        return value

    @task(retries=3, retry_delay=datetime.timedelta(seconds=1))
    def fails_hard() -> str:
        raise AirflowFailException("no point retrying")

    @task
    def after_fail(value: str) -> str:
        return value

    @task(trigger_rule="one_failed")
    def alert() -> str:
        return "alerted"

    after_skip(skips())
    failed = fails_hard()
    after_fail(failed)
    failed >> alert()


conformance_skip_and_fail()
