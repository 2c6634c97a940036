"""What a task may ask about its own run, answered from the snapshot the workflow sent along."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from airflow.sdk.execution_time import comms

from activities.dag_loader import DagLoader
from activities.dag_run_triggers import DagRunTriggers
from activities.supervisor_comms import InMemorySupervisorComms, UnsupportedTaskRequest
from schemas.runs import DagRunContext, RunTaskInstance, TaskTryRequest
from schemas.settings import Settings
from tests.harness import TEST_DAGS

LOGICAL_DATE = datetime(2025, 3, 1, tzinfo=UTC)


def supervisor() -> InMemorySupervisorComms:
    return InMemorySupervisorComms(
        TaskTryRequest(
            dag_run=DagRunContext(
                dag_id="d",
                run_id="r",
                run_type="manual",
                logical_date=LOGICAL_DATE,
                data_interval_start=LOGICAL_DATE,
                data_interval_end=LOGICAL_DATE,
                run_after=LOGICAL_DATE,
                start_date=LOGICAL_DATE,
            ),
            task_id="group.label",
            map_index=1,
            try_number=1,
            max_tries=0,
            run_task_instances=[
                RunTaskInstance(task_id="group.label", map_index=0, state="success"),
                RunTaskInstance(task_id="group.label", map_index=1, state="running"),
                RunTaskInstance(task_id="group.label", map_index=2, state=None),
                RunTaskInstance(task_id="source", state="success"),
            ],
            task_instance_counts={"group.label": 3, "source": 1},
        ),
        # Never reached: nothing here asks about other DAG runs.
        DagRunTriggers(Settings(), DagLoader(TEST_DAGS)),
    )


def test_counts_and_states_of_the_own_run() -> None:
    served = supervisor()
    assert served.send(comms.GetTICount(dag_id="d", task_ids=["group.label"], run_ids=["r"])).count == 3
    count_null = comms.GetTICount(dag_id="d", task_ids=["group.label"], run_ids=["r"], states=["null", "success"])
    assert served.send(count_null).count == 2
    by_date = comms.GetTICount(dag_id="d", task_ids=["source"], logical_dates=[LOGICAL_DATE])
    assert served.send(by_date).count == 1
    states = served.send(comms.GetTaskStates(dag_id="d", task_ids=["group.label", "source"], run_ids=["r"]))
    assert states.task_states == {
        "r": {"group.label_0": "success", "group.label_1": "running", "group.label_2": None, "source": "success"}
    }


@pytest.mark.parametrize(
    "request_",
    [
        comms.GetTICount(dag_id="d", task_ids=["source"], run_ids=["r", "other"]),
        comms.GetTICount(dag_id="other", task_ids=["source"], run_ids=["r"]),
        comms.GetTICount(dag_id="d", task_ids=["not_upstream"], run_ids=["r"]),
        comms.GetTICount(dag_id="d", run_ids=["r"]),
        comms.GetTaskStates(dag_id="d", task_group_id="group", run_ids=["r"]),
        comms.GetTaskStates(dag_id="d", task_ids=["source"]),
    ],
)
def test_what_it_cannot_know_is_refused_not_guessed(request_: object) -> None:
    with pytest.raises(UnsupportedTaskRequest):
        supervisor().send(request_)


def test_a_task_mapped_too_wide_to_list_is_counted_not_listed() -> None:
    request = supervisor()._request.model_copy(
        update={
            "run_task_instances": [RunTaskInstance(task_id="group.label", map_index=1, state="running")],
            "task_instance_counts": {"group.label": 5000},
        }
    )
    served = InMemorySupervisorComms(request, DagRunTriggers(Settings(), DagLoader(TEST_DAGS)))
    assert served.send(comms.GetTICount(dag_id="d", task_ids=["group.label"], run_ids=["r"])).count == 5000
    own = comms.GetTaskStates(dag_id="d", task_ids=["group.label"], run_ids=["r"], map_index=1)
    assert served.send(own).task_states == {"r": {"group.label_1": "running"}}
    with pytest.raises(UnsupportedTaskRequest):
        served.send(comms.GetTICount(dag_id="d", task_ids=["group.label"], run_ids=["r"], states=["success"]))
