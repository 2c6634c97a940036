"""A scheduling pass does bounded work: wide mappings are expanded and checked a slice at a time.

Airflow's own scheduling code on a private database, driven the way the workflow drives it, with
tries recorded as succeeded instead of run (no Temporal: the workflow's side is in test_workflow).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airflow.serialization.serialized_objects import DagSerialization

import airflow_adapter
from activities.dag_loader import DagLoader
from schemas.runs import TaskState, TaskTryResult
from tests.dags.large_inputs import WIDTH
from tests.harness import TEST_DAGS
from workflows.airflow_db import private_airflow_session
from workflows.airflow_run import AirflowDagRun
from workflows.ready_tasks import ReadyTask

PER_PASS = 8
NOW = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def large_inputs() -> dict:
    airflow_adapter.install()
    return DagSerialization.to_dict(DagLoader(TEST_DAGS).get_dag("large_inputs"))


def succeed(run: AirflowDagRun, task: ReadyTask) -> None:
    run.start(task)
    run.record(
        TaskTryResult(
            task_id=task.task_id,
            map_index=task.map_index,
            try_number=task.try_number,
            state=TaskState.SUCCESS,
            start_date=NOW,
            end_date=NOW,
            mapped_length=WIDTH if task.task_id == "items" else None,
        )
    )


def task_instances(run: AirflowDagRun) -> int:
    return sum(len(instances) for instances in run.task_instance_states().values())


def drive(run: AirflowDagRun, passes: list[dict], *, stop_after: int | None = None) -> None:
    """Run every scheduled task at once after each pass, noting what each pass saw."""
    while not run.finished and (stop_after is None or len(passes) < stop_after):
        before = task_instances(run)
        scheduled = run.schedule()
        states = run.task_instance_states()
        passes.append(
            {
                "created": task_instances(run) - before,
                "scheduled": len(scheduled),
                "measure_done": sum(state == "success" for _, state in states.get("measure", [])),
                "total_state": states["total"][0][1],
                "unfinished": run.scheduling_unfinished,
                "expanding": dict(run.expanding_lengths),
            }
        )
        assert scheduled or run.finished or run.scheduling_unfinished, "a pass handed out nothing and left nothing"
        for task in scheduled:
            succeed(run, task)


def test_a_wide_mapping_is_expanded_a_slice_per_pass_and_its_downstream_waits_for_all(large_inputs: dict) -> None:
    passes: list[dict] = []
    with private_airflow_session() as session:
        run = AirflowDagRun.create(
            session, serialized_dag=large_inputs, run_id="sliced", logical_date=NOW, conf={}, now=NOW, per_pass=PER_PASS
        )
        drive(run, passes)
        states = run.task_instance_states()

    assert run.state == "success"
    assert [map_index for map_index, _ in states["measure"]] == list(range(WIDTH))
    assert {state for instances in states.values() for _, state in instances} == {"success"}
    # Airflow's own revise and the run's continuation may each add a slice in one pass.
    assert max(p["created"] for p in passes) <= 2 * PER_PASS
    assert sum(p["unfinished"] for p in passes) >= WIDTH // (2 * PER_PASS)
    assert all(p["expanding"] in ({}, {"measure": WIDTH}) for p in passes)
    # The downstream task is only scheduled once every mapped instance exists and succeeded.
    first_total = next(p for p in passes if p["total_state"] is not None)
    assert first_total["measure_done"] == WIDTH


def test_an_expansion_left_unfinished_goes_on_after_continue_as_new(large_inputs: dict) -> None:
    passes: list[dict] = []
    with private_airflow_session() as session:
        run = AirflowDagRun.create(
            session,
            serialized_dag=large_inputs,
            run_id="resumed",
            logical_date=NOW,
            conf={},
            now=NOW,
            per_pass=PER_PASS,
        )
        drive(run, passes, stop_after=3)
        assert run.expanding_lengths == {"measure": WIDTH}
        image = run.database_image()

    with private_airflow_session(image) as session:
        resumed = AirflowDagRun.resume(session, serialized_dag=large_inputs, run_id="resumed", per_pass=PER_PASS)
        assert resumed.expanding_lengths == {"measure": WIDTH}
        drive(resumed, passes)
        states = resumed.task_instance_states()

    assert resumed.state == "success"
    assert [map_index for map_index, _ in states["measure"]] == list(range(WIDTH))
    first_total = next(p for p in passes if p["total_state"] is not None)
    assert first_total["measure_done"] == WIDTH


def test_one_pass_expands_a_mapping_that_fits_in_it(large_inputs: dict) -> None:
    passes: list[dict] = []
    with private_airflow_session() as session:
        run = AirflowDagRun.create(
            session, serialized_dag=large_inputs, run_id="whole", logical_date=NOW, conf={}, now=NOW, per_pass=WIDTH
        )
        drive(run, passes)

    assert run.state == "success"
    assert not any(p["unfinished"] for p in passes)
    # items, every measure, total, then the pass that finds the run finished.
    assert [p["scheduled"] for p in passes] == [1, WIDTH, 1, 0]
