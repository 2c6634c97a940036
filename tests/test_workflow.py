"""The DAG-run workflow against a real Temporal dev server (the seed's test plan, for this design)."""

from __future__ import annotations

import asyncio

import pytest
from airflow.models.dagbundle import DagBundleModel
from airflow.serialization.serialized_objects import DagSerialization
from sqlalchemy import func, select
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from activities.dag_loader import DagLoader
from dagbridge.worker import run_worker
from schemas.runs import RunOptions, TaskState
from schemas.settings import Settings
from tests.dags.wide_mapping import WIDTH as WIDE_MAPPING
from tests.harness import TASK_QUEUE, TEST_DAGS, DagRunner
from tests.history import (
    activity_attempts,
    activity_input_sizes,
    activity_times,
    local_activity_markers,
    scheduled_activities,
    started_timers,
    task_tries,
    workflows_of_run,
)
from workflows.airflow_db import private_airflow_session


def test_private_database_starts_empty_and_is_never_shared() -> None:
    with private_airflow_session() as first, private_airflow_session() as second:
        first.add(DagBundleModel(name="only-in-first"))
        first.flush()
        assert first.scalar(select(func.count()).select_from(DagBundleModel)) == 1
        assert second.scalar(select(func.count()).select_from(DagBundleModel)) == 0
    with private_airflow_session() as fresh:
        assert fresh.scalar(select(func.count()).select_from(DagBundleModel)) == 0


async def test_chain_passes_xcoms_downstream(run_dag: DagRunner) -> None:
    result = await run_dag("conformance_taskflow_chain")

    assert result.state == "success"
    values = {ti.task_id: ti.xcom["return_value"] for ti in result.task_instances}
    assert values == {
        "numbers": [3, 1, 2],
        "ordered": [1, 2, 3],
        "described": {"first": 1, "last": 3, "count": 3},
    }
    assert (result.tasks_succeeded, result.tasks_failed) == (3, 0)


async def test_serialized_dag_from_input_skips_loading(run_dag: DagRunner) -> None:
    dag = DagLoader(TEST_DAGS).get_dag("conformance_taskflow_chain")
    handle = await run_dag.start("conformance_taskflow_chain", serialized_dag=DagSerialization.to_dict(dag))
    result = await handle.result()

    assert result.state == "success"
    assert [kind for kind, _, _ in await scheduled_activities(handle)] == ["run_task_try"] * 3 + ["publish_run_event"]
    assert await local_activity_markers(handle, "load_serialized_dag") == 0


async def test_dag_is_loaded_by_a_local_activity_when_not_given(run_dag: DagRunner) -> None:
    handle = await run_dag.start("conformance_taskflow_chain")
    await handle.result()

    assert await local_activity_markers(handle, "load_serialized_dag") == 1


async def test_result_accounts_for_every_task_instance(run_dag: DagRunner) -> None:
    result = await run_dag("conformance_failure_cleanup")

    assert result.state == "failed"
    assert {ti.task_id: (ti.state, ti.try_number) for ti in result.task_instances} == {
        "prepare": ("success", 1),
        "explode": ("failed", 1),
        "publish": ("upstream_failed", 0),
        "after_publish": ("upstream_failed", 0),
        "cleanup": ("success", 1),
    }
    assert (result.tasks_succeeded, result.tasks_failed) == (2, 3)


async def test_empty_operators_finish_without_activities(run_dag: DagRunner) -> None:
    handle = await run_dag.start("only_empty")
    result = await handle.result()

    assert result.state == "success"
    assert {ti.state for ti in result.task_instances} == {"success"}
    assert [kind for kind, _, _ in await scheduled_activities(handle)] == ["publish_run_event"]


async def test_activity_ids_are_stable_and_queues_route_tasks(run_dag: DagRunner, worker_settings: Settings) -> None:
    settings = worker_settings.model_copy(update={"task_queue": "dagbridge-tests-special", "task_processes": 1})
    stop, ready = asyncio.Event(), asyncio.Event()
    special_worker = asyncio.create_task(run_worker(settings, stop, ready))
    await ready.wait()
    try:
        handle = await run_dag.start("queue_routing")
        result = await handle.result()
    finally:
        stop.set()
        await special_worker

    assert result.state == "success"
    assert {ti.task_id: ti.xcom["return_value"] for ti in result.task_instances}["on_special"] == (
        "default then special"
    )
    assert [(activity_id, queue) for _, activity_id, queue in await scheduled_activities(handle)][:-1] == [
        ("on_default:-1:1", "dagbridge-tests"),
        ("on_special:-1:1", "dagbridge-tests-special"),
    ]


async def test_independent_tasks_run_in_parallel(run_dag: DagRunner) -> None:
    result = await run_dag("parallel_sleepers")

    assert result.state == "success"
    a, b = sorted(result.task_instances, key=lambda ti: ti.task_id)
    assert a.start_date < b.end_date and b.start_date < a.end_date, "the two tries did not overlap"


async def test_concurrent_runs_of_one_dag_do_not_mix(run_dag: DagRunner) -> None:
    results = await asyncio.gather(*(run_dag("validated_params", conf={"factor": f}) for f in (1, 2, 3)))

    assert [r.task_instances[0].xcom["return_value"]["value"] for r in results] == [21, 42, 63]


async def test_unknown_dag_fails_the_run_clearly(run_dag: DagRunner) -> None:
    with pytest.raises(WorkflowFailureError) as failure:
        await run_dag("no_such_dag")

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError)
    assert "no_such_dag" in cause.message and "not in the dags folder" in cause.message


async def test_conf_violating_params_fails_the_run_clearly(run_dag: DagRunner) -> None:
    with pytest.raises(WorkflowFailureError) as failure:
        await run_dag("validated_params", conf={"factor": "many"})

    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidDagRun"
    assert "factor" in cause.message


async def test_failed_try_is_retried_by_airflow_rules(run_dag: DagRunner) -> None:
    result = await run_dag("conformance_retry_then_succeed")

    outcome = {ti.task_id: (ti.state, ti.try_number) for ti in result.task_instances}
    assert outcome == {"flaky": (TaskState.SUCCESS.value, 2), "always_fails": (TaskState.FAILED.value, 2)}
    assert {ti.task_id: ti.xcom.get("return_value") for ti in result.task_instances}["flaky"] == 2


async def test_retries_wait_for_airflows_exponential_backoff(run_dag: DagRunner) -> None:
    handle = await run_dag.start("conformance_retry_backoff")
    result = await handle.result()
    assert [(ti.state, ti.try_number) for ti in result.task_instances] == [(TaskState.SUCCESS.value, 3)]

    times, timers = await activity_times(handle), await started_timers(handle)
    # retry_delay 1 s, factor 2: Airflow waits 1 s after try 1; after try 2 its backoff (2 s, its hash
    # jitter adds nothing for this task instance) is cut to max_retry_delay, 1.5 s. The wait runs from
    # the try's end as the worker saw it, a little before the history recorded the result, and a busy
    # machine only lengthens it: so the next try starts no earlier than the delay allows, and the
    # durable timer the workflow slept on between them is no longer than the delay.
    for finished, started, delay in (("flaky:-1:1", "flaky:-1:2", 1.0), ("flaky:-1:2", "flaky:-1:3", 1.5)):
        ended_at, started_at = times[finished][1], times[started][0]
        assert ended_at is not None
        assert (started_at - ended_at).total_seconds() >= delay - 0.5, (started, started_at - ended_at)
        waits = [seconds for at, seconds in timers if ended_at <= at <= started_at]
        assert waits and max(waits) <= delay, (started, waits)


async def test_task_missing_from_the_workers_dag_fails_its_try_without_retrying(run_dag: DagRunner) -> None:
    from airflow.sdk import DAG, task

    with DAG("conformance_taskflow_chain", schedule=None) as dag:

        @task
        def ghost() -> None:
            """Exists only in the DAG the run was started with, not in the worker's dags folder."""

        ghost()

    handle = await run_dag.start("conformance_taskflow_chain", serialized_dag=DagSerialization.to_dict(dag))
    result = await handle.result()

    assert result.state == "failed"
    assert [(ti.task_id, ti.state, ti.try_number) for ti in result.task_instances] == [("ghost", "failed", 1)]
    assert (await activity_attempts(handle))["ghost:-1:1"] == 1


async def test_large_inputs_stay_in_the_workflow_and_each_try_reads_them(run_dag: DagRunner) -> None:
    padding = "p" * 20_000
    handle = await run_dag.start("large_inputs", conf={"padding": padding})
    result = await handle.result()

    assert result.state == "success", result.error
    lengths = {ti.map_index: ti.xcom["return_value"] for ti in result.task_instances if ti.task_id == "measure"}
    item_length = len("item-0000-") + 300
    assert lengths == {i: item_length + 100 + len(padding) for i in range(100)}
    total = next(ti for ti in result.task_instances if ti.task_id == "total")
    assert total.xcom["return_value"] == sum(lengths.values()) + 100
    # Neither the 20 kB conf nor the 31 kB list is stored once per try.
    assert max(await activity_input_sizes(handle)) < 16 * 1024


async def test_a_long_run_continues_as_new_with_its_state(run_dag: DagRunner) -> None:
    options = RunOptions(default_task_queue=TASK_QUEUE, history_events_per_workflow=150)
    handle = await run_dag.start("large_inputs", conf={"padding": "p"}, options=options)
    result = await handle.result()

    assert result.state == "success", result.error
    assert len([ti for ti in result.task_instances if ti.task_id == "measure"]) == 100
    total = next(ti for ti in result.task_instances if ti.task_id == "total")
    # The reduce reads XComs written before the workflow continued as new.
    assert total.xcom["return_value"] == sum(len("item-0000-") + 300 + 100 + 1 for _ in range(100)) + 100
    assert len(await workflows_of_run(run_dag.client, handle.id)) >= 2
    # Every try ran once, in whichever workflow of the run handed it out.
    expected = ["items:-1:1", "total:-1:1", *(f"measure:{i}:1" for i in range(100))]
    assert await task_tries(run_dag.client, handle.id) == sorted(expected)


async def test_a_wide_mapping_is_expanded_a_slice_per_workflow_task_and_each_try_sees_all_of_it(
    run_dag: DagRunner,
) -> None:
    options = RunOptions(default_task_queue=TASK_QUEUE, task_instances_per_pass=8, history_events_per_workflow=300)
    handle = await run_dag.start("large_inputs", conf={"padding": "p"}, options=options)
    result = await handle.result()

    assert result.state == "success", result.error
    lengths = {ti.map_index: ti.xcom["return_value"] for ti in result.task_instances if ti.task_id == "measure"}
    # Every try counts all 100 instances of its task, also those handed out before the last slice.
    assert lengths == {i: len("item-0000-") + 300 + 100 + 1 for i in range(100)}
    total = next(ti for ti in result.task_instances if ti.task_id == "total")
    assert total.xcom["return_value"] == sum(lengths.values()) + 100
    assert len(await workflows_of_run(run_dag.client, handle.id)) >= 2
    expected = ["items:-1:1", "total:-1:1", *(f"measure:{i}:1" for i in range(100))]
    assert await task_tries(run_dag.client, handle.id) == sorted(expected)


async def test_a_mapping_wider_than_a_pass_runs_every_instance_once_and_reduces_them_all(run_dag: DagRunner) -> None:
    handle = await run_dag.start("wide_mapping")
    result = await handle.result()

    assert result.state == "success", result.error
    doubled = {ti.map_index: ti.xcom["return_value"] for ti in result.task_instances if ti.task_id == "double"}
    assert doubled == {i: 2 * i for i in range(WIDE_MAPPING)}
    total = next(ti for ti in result.task_instances if ti.task_id == "total")
    assert total.xcom["return_value"] == sum(doubled.values())
    expected = ["items:-1:1", "total:-1:1", *(f"double:{i}:1" for i in range(WIDE_MAPPING))]
    assert await task_tries(run_dag.client, handle.id) == sorted(expected)
