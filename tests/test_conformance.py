"""The same DAG run through ``dagbridge run`` and through Airflow's ``dag.test()`` ends the same way."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from schemas.ids import dag_run_workflow_id
from schemas.runs import DagRunResult
from schemas.settings import Settings
from tests.harness import LOGICAL_DATE, TEST_DAGS

CONFORMANCE_DAGS = TEST_DAGS / "conformance"

# The Variables and Connections these DAGs read come from the session's environment on both
# sides (tests/environment.py CONFORMANCE_VARIABLES).

CASES: dict[str, dict[str, Any]] = {
    "conformance_taskflow_chain": {},
    "conformance_fan_out_fan_in": {},
    "conformance_task_groups": {},
    "conformance_multiple_outputs": {},
    "conformance_explicit_xcom": {},
    "conformance_failure_cleanup": {},
    "conformance_empty_and_bash": {"name": "ada"},
    "conformance_retry_then_succeed": {},
    "conformance_mapping": {},
    "conformance_branching": {},
    "conformance_short_circuit": {},
    "conformance_skip_and_fail": {},
    "conformance_trigger_rules": {},
    "conformance_setup_teardown": {},
    "conformance_nested_groups_branch": {},
    "conformance_branch_edge_cases": {},
    "conformance_expand_kwargs": {},
    "conformance_mapped_task_group": {},
    "conformance_empty_expansion": {},
    "conformance_cross_product": {},
    "conformance_map_multiple_outputs": {},
    "conformance_mapped_outcomes": {},
    "conformance_templating_context": {"region": "us"},
    "conformance_retry_backoff": {},
    "conformance_execution_timeout": {},
    "conformance_sensors_poke": {},
    "conformance_sensors_reschedule": {},
    "conformance_trigger_dag_run": {},
    "conformance_variables": {},
    "conformance_connections": {},
    "conformance_deferrable": {},
    "conformance_deferrable_file": {},
    "conformance_deferrable_templated": {"region": "eu"},
}


@pytest.fixture(scope="session")
def airflow_outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Every case run once by Airflow itself, in its own process and metadata database."""
    workdir = tmp_path_factory.mktemp("oracle")
    cases = workdir / "cases.json"
    outcomes = workdir / "outcomes.json"
    cases.write_text(
        json.dumps([{"dag_id": d, "logical_date": LOGICAL_DATE.isoformat(), "conf": c} for d, c in CASES.items()])
    )
    completed = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "oracle.py"), str(CONFORMANCE_DAGS), str(cases), str(outcomes)],
        capture_output=True,
        text=True,
        check=False,  # the exit code is asserted with the oracle's stderr
        timeout=600,
        # Airflow puts its dags folder on the path; the worker's is tests/dags, where the deferrable
        # DAGs' triggers import from as conformance.deferrable_triggers.
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TEST_DAGS), os.environ.get("PYTHONPATH")]))},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return {outcome["dag_id"]: outcome for outcome in json.loads(outcomes.read_text())}


def comparable(xcoms: dict[str, Any]) -> dict[str, Any]:
    """XComs as compared: the task ids Airflow's skip mixin records come from a set, so their
    order follows the process's string hash seed, in Airflow as much as here."""
    skip_record = xcoms.get("skipmixin_key")
    if not isinstance(skip_record, dict):
        return xcoms
    return {**xcoms, "skipmixin_key": {key: sorted(ids) for key, ids in skip_record.items()}}


async def dagbridge_run(settings: Settings, dag_id: str, run_id: str, conf: dict[str, Any]) -> dict[str, Any]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dagbridge.cli", "run", dag_id,
        "--run-id", run_id, "--logical-date", LOGICAL_DATE.isoformat(), "--conf", json.dumps(conf), "--json",
        env={
            **os.environ,
            "DAGBRIDGE_TEMPORAL_ADDRESS": settings.temporal_address,
            "DAGBRIDGE_TASK_QUEUE": settings.task_queue,
        },
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=120)
    assert stdout, stderr.decode()[-4000:]
    return json.loads(stdout)


@pytest.mark.parametrize("dag_id", CASES)
async def test_dagbridge_matches_airflow(
    dag_id: str,
    airflow_outcomes: dict[str, dict[str, Any]],
    worker_settings: Settings,
    worker: None,
    temporal_client: Client,
) -> None:
    run_id = f"conformance__{dag_id}"
    printed = await dagbridge_run(worker_settings, dag_id, run_id, CASES[dag_id])
    expected = airflow_outcomes[dag_id]

    assert printed["state"] == expected["state"]
    assert {label: (ti["state"], ti["try_number"]) for label, ti in printed["task_instances"].items()} == {
        label: (ti["state"], ti["try_number"]) for label, ti in expected["task_instances"].items()
    }
    assert {label: ti["return_value"] for label, ti in printed["task_instances"].items()} == {
        label: ti["xcom"].get("return_value") for label, ti in expected["task_instances"].items()
    }

    # The CLI prints return values only; every other XCom key is compared on the workflow result.
    result = await temporal_client.get_workflow_handle(
        dag_run_workflow_id(dag_id, run_id), result_type=DagRunResult
    ).result()
    assert {ti.label: comparable(ti.xcom) for ti in result.task_instances} == {
        label: comparable(ti["xcom"]) for label, ti in expected["task_instances"].items()
    }
