"""The Airflow adapter: its check names what changed, and every patch and hook takes effect.

An Airflow upgrade that moves one of the internals dagbridge relies on must fail here (and at
worker start), not show up later as a nondeterministic replay or a callback failure not counted.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import airflow
import pytest
import structlog
from airflow._shared.timezones import timezone
from airflow.models.dagrun import DagRun
from airflow.models.taskmap import TaskMap
from airflow.sdk.execution_time import task_runner
from airflow.sdk.execution_time.context import OutletEventAccessors
from airflow.serialization import serialized_objects
from airflow.serialization.definitions import mappedoperator
from airflow.serialization.serialized_objects import DagSerialization
from sqlalchemy import select
from temporalio import workflow

import airflow_adapter
from activities.dag_loader import DagLoader
from airflow_adapter.clock import airflow_utcnow
from airflow_adapter.contract import LogEvent, ModelFields, PrivateField, Property, Signature, problems
from airflow_adapter.dag_run_hooks import HOOKED
from airflow_adapter.task_runtime import CallbackFailureLog, run_context, runtime_task_instance
from schemas.runs import TaskState, TaskTryResult
from tests.harness import TEST_DAGS
from workflows.airflow_db import private_airflow_session
from workflows.airflow_run import AirflowDagRun
from workflows.scheduling_focus import FocusedScheduling

NOW = datetime(2025, 1, 1, tzinfo=UTC)
WORKFLOW_TIME = datetime(2024, 6, 1, 12, 30, tzinfo=UTC)


@pytest.fixture(scope="module", autouse=True)
def installed() -> None:
    airflow_adapter.install()


@pytest.fixture(scope="module")
def wide_mapping() -> dict[str, Any]:
    return DagSerialization.to_dict(DagLoader(TEST_DAGS).get_dag("large_inputs"))


def test_the_installed_airflow_passes_the_check() -> None:
    airflow_adapter.check()


def test_the_patched_functions_are_the_adapters_after_install() -> None:
    assert timezone.utcnow is airflow_utcnow
    assert serialized_objects.utcnow is airflow_utcnow
    assert mappedoperator.get_mapped_ti_count.__module__ == "airflow_adapter.expansion"
    assert TaskMap.expand_mapped_task.__func__.__module__ == "airflow_adapter.expansion"


def test_a_changed_signature_fails_the_check_naming_the_airflow_version(monkeypatch: pytest.MonkeyPatch) -> None:
    def _get_ready_tis(self: DagRun, schedulable_tis: list[Any], session: Any) -> None: ...

    monkeypatch.setattr(DagRun, "_get_ready_tis", _get_ready_tis)
    with pytest.raises(airflow_adapter.AirflowMismatch) as raised:
        airflow_adapter.check()
    message = str(raised.value)
    assert f"Airflow {airflow.__version__} is installed" in message
    assert "airflow.models.dagrun.DagRun._get_ready_tis takes (self, schedulable_tis, session)" in message


def test_a_missing_name_field_or_log_event_is_a_problem() -> None:
    found = problems(
        (
            Signature("airflow.models.dagrun.DagRun._no_such_method", "(self)"),
            PrivateField("airflow.sdk.execution_time.task_runner.RuntimeTaskInstance", "_no_such_field"),
            LogEvent("airflow.sdk.execution_time.task_runner._run_task_state_change_callbacks", "No such event"),
        ),
        {},
    )
    assert found == [
        "airflow.models.dagrun.DagRun._no_such_method does not exist",
        "airflow.sdk.execution_time.task_runner.RuntimeTaskInstance has no private field _no_such_field",
        "airflow.sdk.execution_time.task_runner._run_task_state_change_callbacks no longer logs 'No such event'",
    ]


def test_a_property_gone_or_a_model_field_renamed_or_newly_required_is_a_problem() -> None:
    generated = "airflow.sdk.api.datamodels._generated"
    found = problems(
        (
            Property("airflow.serialization.definitions.dag.SerializedDAG._no_such_property"),
            Property("airflow.serialization.definitions.dag.SerializedDAG.next_dagrun_info"),
            ModelFields(f"{generated}.AssetResponse", ("name", "uri", "grp")),
            ModelFields(f"{generated}.AssetResponse", ("name", "uri")),
            ModelFields(f"{generated}.NoSuchModel", ()),
        ),
        {},
    )
    assert found == [
        "airflow.serialization.definitions.dag.SerializedDAG._no_such_property does not exist",
        "airflow.serialization.definitions.dag.SerializedDAG.next_dagrun_info is not a property",
        f"{generated}.AssetResponse has no field grp and requires group: the adapter fills name, uri, grp",
        f"{generated}.AssetResponse requires group: the adapter fills name, uri",
        f"{generated}.NoSuchModel does not exist",
    ]


@pytest.fixture
def in_a_workflow(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As if the caller ran inside a workflow whose clock reads WORKFLOW_TIME."""
    monkeypatch.setattr(workflow, "in_workflow", lambda: True)
    monkeypatch.setattr(workflow, "now", lambda: WORKFLOW_TIME)
    yield


def test_airflow_reads_the_workflow_clock_in_workflow_code(in_a_workflow: None, wide_mapping: dict) -> None:
    assert timezone.utcnow() == WORKFLOW_TIME
    assert serialized_objects.utcnow() == WORKFLOW_TIME
    with private_airflow_session() as session:
        AirflowDagRun.create(
            session, serialized_dag=wide_mapping, run_id="clock", logical_date=NOW, conf={}, now=NOW, per_pass=8
        )
        # A column default captured Airflow's utcnow when the model class was created.
        assert session.scalar(select(DagRun.created_at)).replace(tzinfo=UTC) == WORKFLOW_TIME


def test_airflow_reads_the_wall_clock_outside_workflows() -> None:
    assert abs((timezone.utcnow() - datetime.now(tz=UTC)).total_seconds()) < 60


class _Calls:
    def __init__(self) -> None:
        self.names: set[str] = set()

    def spy(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        original = getattr(FocusedScheduling, name)

        def called(focus: FocusedScheduling, *args: Any, **kwargs: Any) -> Any:
            self.names.add(name)
            return original(focus, *args, **kwargs)

        monkeypatch.setattr(FocusedScheduling, name, called)


def test_every_scheduling_hook_is_asked_by_airflows_pass(monkeypatch: pytest.MonkeyPatch, wide_mapping: dict) -> None:
    hooks = ["checked_now", "keeps_run_going", "expansion_session", "task_instances", "relatives_of"]
    calls = _Calls()
    for name in hooks:
        calls.spy(monkeypatch, name)
    with private_airflow_session() as session:
        run = AirflowDagRun.create(
            session, serialized_dag=wide_mapping, run_id="hooks", logical_date=NOW, conf={}, now=NOW, per_pass=8
        )
        # Set on this object, shadowing the class's methods.
        assert {name.rsplit(".", 1)[1] for name in HOOKED} <= set(vars(run.airflow_dag_run))
        for _ in range(3):
            started = run.schedule()
            for task in started:
                run.start(task)
            # A pass while those tries run: finding nothing ready, Airflow asks whether the run is deadlocked.
            run.schedule()
            for task in started:
                run.record(_succeeded(task.task_id, task.map_index, task.try_number, mapped_length=100))
    assert calls.names == set(hooks)


def _succeeded(task_id: str, map_index: int, try_number: int, *, mapped_length: int) -> TaskTryResult:
    return TaskTryResult(
        task_id=task_id,
        map_index=map_index,
        try_number=try_number,
        state=TaskState.SUCCESS,
        start_date=NOW,
        end_date=NOW,
        mapped_length=mapped_length if task_id == "items" else None,
    )


def test_a_runtime_task_instance_carries_the_context_from_the_server() -> None:
    context = run_context(max_tries=3)
    ti = runtime_task_instance(context_from_server=context, task_id="t", dag_id="d", run_id="r", map_index=-1)
    assert ti._ti_context_from_server is context
    assert (ti.task_id, ti.map_index) == ("t", -1)


def test_a_task_callback_that_raises_is_noted_from_airflows_runner_log() -> None:
    def failing(context: Any) -> None:
        raise ValueError("the callback failed")

    log = CallbackFailureLog(structlog.get_logger())
    task = types.SimpleNamespace(on_failure_callback=[failing])
    context = {"outlet_events": OutletEventAccessors()}
    task_runner._run_task_state_change_callbacks(task, "on_failure_callback", context, log)  # type: ignore[arg-type]
    assert log.failed == ["on_failure_callback"]
