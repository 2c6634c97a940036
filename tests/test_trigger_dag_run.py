"""TriggerDagRunOperator against a real Temporal server: what dag.test() cannot show, since nothing
runs the runs it triggers (waiting for completion, the triggered workflow itself, idempotency)."""

from __future__ import annotations

import asyncio

import pytest
from airflow.sdk.exceptions import AirflowRuntimeError, ErrorType
from airflow.sdk.execution_time import comms
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.dag_loader import DagLoader
from activities.dag_run_triggers import TRIGGERED_BY, DagRunTriggers
from infra.temporal import start_dag_run
from schemas.ids import dag_run_workflow_id
from schemas.runs import DagRunRequest, DagRunResult
from schemas.settings import Settings
from tests.harness import LOGICAL_DATE, TASK_QUEUE, TEST_DAGS, DagRunner

WAITING_DAGS = ["trigger_and_wait", "trigger_and_wait_deferred"]


@pytest.mark.parametrize("dag_id", WAITING_DAGS)
async def test_waits_for_the_triggered_run_which_is_an_ordinary_dag_run(
    dag_id: str, run_dag: DagRunner, temporal_client: Client
) -> None:
    child = f"triggered__succeeds__{dag_id}"
    parent = await run_dag.start(dag_id, conf={"child_run_id": child, "child_mode": "succeed"})
    result = await parent.result()

    (trigger,) = result.task_instances
    assert (result.state, trigger.state, trigger.try_number) == ("success", "success", 1)
    assert trigger.xcom["trigger_run_id"] == child
    child_handle = temporal_client.get_workflow_handle(
        dag_run_workflow_id("trigger_child", child), result_type=DagRunResult
    )
    child_result = await child_handle.result()
    assert child_result.state == "success"
    assert child_result.task_instances[0].xcom["return_value"] == {"doubled": 10, "ds": LOGICAL_DATE.date().isoformat()}
    description = await child_handle.describe()
    assert description.task_queue == TASK_QUEUE
    assert await description.memo_value(TRIGGERED_BY) == f"{parent.id}:trigger:-1:1"


@pytest.mark.parametrize("dag_id", WAITING_DAGS)
async def test_a_triggered_run_that_fails_fails_the_waiting_task(
    dag_id: str, run_dag: DagRunner, temporal_client: Client
) -> None:
    child = f"triggered__fails__{dag_id}"
    result = await run_dag(dag_id, conf={"child_run_id": child, "child_mode": "fail"})

    (trigger,) = result.task_instances
    assert (result.state, trigger.state, trigger.try_number) == ("failed", "failed", 1)
    child_handle = temporal_client.get_workflow_handle(
        dag_run_workflow_id("trigger_child", child), result_type=DagRunResult
    )
    assert (await child_handle.result()).state == "failed"


async def test_a_dag_the_worker_does_not_have_fails_the_task_and_starts_nothing(
    run_dag: DagRunner, temporal_client: Client
) -> None:
    result = await run_dag("trigger_missing_dag")

    (trigger,) = result.task_instances
    assert (result.state, trigger.state) == ("failed", "failed")
    # The operator asked for a run with the triggering run's ID.
    with pytest.raises(RPCError) as missing:
        await temporal_client.get_workflow_handle(dag_run_workflow_id("no_such_dag", result.run_id)).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND


async def test_one_run_per_run_id_shared_with_kafka_triggers_and_a_repeated_try_is_not_a_duplicate(
    worker_settings: Settings, worker: None, temporal_client: Client
) -> None:
    triggers = DagRunTriggers(worker_settings, DagLoader(TEST_DAGS))
    child = "triggered__idempotent"
    request = comms.TriggerDagRun(
        dag_id="trigger_child", run_id=child, conf={"n": 1, "mode": "succeed"}, logical_date=LOGICAL_DATE
    )

    def trigger(triggered_by: str) -> comms.OKResponse | comms.ErrorResponse:
        return triggers.trigger(request, triggered_by=triggered_by)

    # The pool process that serves these has no event loop running: neither do these threads.
    assert await asyncio.to_thread(trigger, "dagrun:parent:run:trigger:-1:1") == comms.OKResponse(ok=True)
    # Temporal ran the same try again after its worker died: it finds the run it started.
    assert await asyncio.to_thread(trigger, "dagrun:parent:run:trigger:-1:1") == comms.OKResponse(ok=True)
    # Another try, or another task, finds it taken.
    assert await asyncio.to_thread(trigger, "dagrun:parent:run:trigger:-1:2") == comms.ErrorResponse(
        error=ErrorType.DAGRUN_ALREADY_EXISTS
    )
    # So does a Kafka trigger of the same run: both start through start_dag_run.
    with pytest.raises(WorkflowAlreadyStartedError):
        await start_dag_run(
            temporal_client, DagRunRequest(dag_id="trigger_child", run_id=child), worker_settings.task_queue
        )

    handle = temporal_client.get_workflow_handle(dag_run_workflow_id("trigger_child", child), result_type=DagRunResult)
    assert (await handle.result()).state == "success"
    state = await asyncio.to_thread(triggers.state, comms.GetDagRunState(dag_id="trigger_child", run_id=child))
    assert state.state == "success"
    with pytest.raises(AirflowRuntimeError):
        await asyncio.to_thread(triggers.state, comms.GetDagRunState(dag_id="trigger_child", run_id="never_started"))
