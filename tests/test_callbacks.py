"""Airflow's task and DAG callbacks fire once each, with the context Airflow gives them.

The DAGs in ``tests/dags/callbacks/`` write down what each callback received; the same DAGs run
by Airflow's own ``dag.test()`` (``tests/oracle.py``) must leave the same records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.registry import REGISTRY

from schemas.runs import RunOptions
from tests.environment import CALLBACK_RECORDS_VARIABLE, callback_records
from tests.harness import LOGICAL_DATE, TASK_QUEUE, TEST_DAGS, DagRunner
from tests.history import scheduled_activities

CALLBACK_DAGS = TEST_DAGS / "callbacks"

ORACLE_CASES = ["callbacks_success", "callbacks_retry_then_fail", "callbacks_raising"]


def read_records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def without_run_ids(records: list[dict[str, Any]]) -> list[str]:
    """The records as comparable across runs, in a fixed order (parallel tasks finish in any order)."""
    return sorted(json.dumps({k: v for k, v in r.items() if k not in ("run_id", "dag_run_id")}) for r in records)


@pytest.fixture(scope="module")
def airflow_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Each case run once by ``dag.test()``, with the records its callbacks left."""
    workdir = tmp_path_factory.mktemp("callback-oracle")
    records = workdir / "records"
    records.mkdir()
    cases = workdir / "cases.json"
    outcomes = workdir / "outcomes.json"
    cases.write_text(
        json.dumps([{"dag_id": d, "logical_date": LOGICAL_DATE.isoformat(), "conf": {}} for d in ORACLE_CASES])
    )
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "oracle.py"), str(CALLBACK_DAGS), str(cases), str(outcomes)],
        env={**os.environ, CALLBACK_RECORDS_VARIABLE: str(records)},
        capture_output=True,
        text=True,
        check=False,  # the exit code is asserted with the oracle's stderr
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    runs = {outcome["dag_id"]: outcome for outcome in json.loads(outcomes.read_text())}
    for dag_id, run in runs.items():
        (path,) = records.glob(f"{dag_id}.*.jsonl")
        run["records"] = read_records(path)
    return runs


async def run_recorded(run_dag: DagRunner, dag_id: str, options: RunOptions | None = None):
    run_id = f"callbacks__{uuid.uuid4().hex[:12]}"
    handle = await run_dag.start(dag_id, run_id=run_id, options=options)
    result = await handle.result()
    records = read_records(callback_records() / f"{dag_id}.{run_id}.jsonl")
    assert {r["run_id"] for r in records} == {run_id}
    assert {r["dag_run_id"] for r in records} == {run_id}
    return handle, result, records


@pytest.mark.parametrize("dag_id", ORACLE_CASES)
async def test_callbacks_fire_as_in_airflow(dag_id: str, airflow_runs: dict[str, dict[str, Any]], run_dag: DagRunner):
    _, result, records = await run_recorded(run_dag, dag_id)
    expected = airflow_runs[dag_id]

    assert result.state == expected["state"]
    assert {ti.label: (ti.state, ti.try_number) for ti in result.task_instances} == {
        label: (ti["state"], ti["try_number"]) for label, ti in expected["task_instances"].items()
    }
    assert without_run_ids(records) == without_run_ids(expected["records"])
    # Once each: no two records of the same callback for the same try.
    keys = [(r["callback"], r["task_id"], r["map_index"], r["try_number"]) for r in records]
    assert len(keys) == len(set(keys))
    # The DAG callback runs once the run has ended, after every task callback.
    assert [r["callback"].startswith("dag.") for r in records] == [False] * (len(records) - 1) + [True]


async def test_retry_and_failure_callbacks_get_the_try_and_the_reason(run_dag: DagRunner):
    _, result, records = await run_recorded(run_dag, "callbacks_retry_then_fail")

    assert result.state == "failed"
    assert [(r["callback"], r["task_id"], r["try_number"], r["exception"], r["reason"]) for r in records] == [
        ("task.on_execute", "flaky", 1, None, None),
        ("task.on_retry", "flaky", 1, "ValueError", None),
        ("task.on_execute", "flaky", 2, None, None),
        ("task.on_failure", "flaky", 2, "ValueError", None),
        # Airflow's reason, and the task instance that failed the run.
        ("dag.on_failure", "flaky", 2, None, "task_failure"),
    ]


def callback_failures(dag_id: str, level: str, callback: str) -> float:
    labels = {"dag_id": dag_id, "level": level, "callback": callback}
    return REGISTRY.get_sample_value("dagbridge_callback_failures_total", labels) or 0.0


async def test_a_raising_callback_is_counted_and_changes_nothing(run_dag: DagRunner):
    before = {level: callback_failures("callbacks_raising", level, "on_success_callback") for level in ("task", "dag")}

    _, result, records = await run_recorded(run_dag, "callbacks_raising")

    assert result.state == "success"
    assert [(ti.task_id, ti.state, ti.xcom) for ti in result.task_instances] == [
        ("steady", "success", {"return_value": "kept"})
    ]
    # The callback after the broken one in the same list still ran, at both levels.
    assert [r["callback"] for r in records] == ["task.on_success", "dag.on_success"]
    after = {level: callback_failures("callbacks_raising", level, "on_success_callback") for level in ("task", "dag")}
    assert {level: after[level] - before[level] for level in after} == {"task": 1, "dag": 1}


async def test_a_try_that_never_reports_gets_its_callbacks_from_outside_the_runner(run_dag: DagRunner):
    # Every attempt outlives its activity's timeout, and there is one attempt per try: each try
    # ends without its runner reporting, as after Airflow's task instance heartbeat timeout.
    options = RunOptions(
        default_task_queue=TASK_QUEUE,
        task_heartbeat_timeout_seconds=5,
        task_start_to_close_timeout_seconds=1,
        task_attempts=1,
    )
    handle, result, records = await run_recorded(run_dag, "callbacks_lost_worker", options)

    assert result.state == "failed"
    assert [(ti.task_id, ti.state, ti.try_number) for ti in result.task_instances] == [("unresponsive", "failed", 2)]
    # Airflow's DAG processor runs them with the task instance's context and no exception.
    assert [(r["callback"], r["task_id"], r["try_number"], r["exception"], r["reason"]) for r in records] == [
        ("task.on_retry", "unresponsive", 1, None, None),
        ("task.on_failure", "unresponsive", 2, None, None),
        ("dag.on_failure", "unresponsive", 2, None, "task_failure"),
    ]
    assert [kind for kind, _, _ in await scheduled_activities(handle)].count("run_callbacks") == 3
