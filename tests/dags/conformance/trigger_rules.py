import datetime

from airflow.sdk import dag, task
from airflow.sdk.exceptions import AirflowSkipException


@dag(schedule=None, start_date=datetime.datetime(2025, 1, 1), catchup=False)
def conformance_trigger_rules():
    @task
    def ok() -> str:
        return "ok"

    @task
    def bad() -> str:
        raise ValueError("bad")

    @task
    def skipped() -> str:
        raise AirflowSkipException("skip")

    def make(rule: str):
        @task(task_id=rule, trigger_rule=rule)
        def ruled() -> str:
            return rule

        return ruled

    good, broken, skip = ok(), bad(), skipped()
    rules = [
        "none_failed",
        "one_success",
        "one_failed",
        "none_skipped",
        "all_skipped",
        "always",
        "none_failed_min_one_success",
        "all_failed",
        "all_done",
        "one_done",
        "all_done_min_one_success",
    ]
    for rule in rules:
        [good, broken, skip] >> make(rule)()

    @task(task_id="only_skipped_upstream_all_skipped", trigger_rule="all_skipped")
    def only_skipped() -> str:
        return "all upstream skipped"

    @task(task_id="only_ok_upstream_none_failed", trigger_rule="none_failed")
    def only_ok() -> str:
        return "fine"

    skip >> only_skipped()
    [good, skip] >> only_ok()


conformance_trigger_rules()
