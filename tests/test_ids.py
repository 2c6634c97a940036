"""Every ID is built and parsed in schemas/ids.py: these are the contracts other programs see."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.ids import (
    LimitKind,
    TryId,
    dag_run_workflow_id,
    event_key,
    limit_kind,
    limit_workflow_id,
    parse_dag_run_workflow_id,
    parse_task_log_attempt,
    run_event_id,
    task_event_id,
    task_log_path,
)

DAG_IDS = st.from_regex(r"[A-Za-z0-9_.\-]{1,40}", fullmatch=True)
RUN_IDS = st.text(min_size=1, max_size=60).filter(lambda text: text.strip() == text and text)
TASK_IDS = st.from_regex(r"[A-Za-z0-9_\-]{1,20}(\.[A-Za-z0-9_\-]{1,20}){0,2}", fullmatch=True)


def test_the_contract_formats() -> None:
    assert (
        dag_run_workflow_id("etl", "manual__2025-01-01T00:00:00+00:00")
        == "dagrun:etl:manual__2025-01-01T00:00:00+00:00"
    )
    assert limit_workflow_id(LimitKind.POOL, "db") == "limit:pool:db"
    assert limit_workflow_id(LimitKind.TASK, "etl.load") == "limit:task:etl.load"
    assert task_event_id("dagrun:etl:r1", "load", -1, 2) == "dagrun:etl:r1:load:-1:2"
    assert run_event_id("dagrun:etl:r1") == "dagrun:etl:r1:finished"
    assert event_key("etl", "r:1") == b"etl:r:1"
    assert TryId("load", 3, 2).activity_id() == "load:3:2"
    assert TryId("sensor", -1, 1, reschedule_count=2).activity_id() == "sensor:-1:1:reschedule-2"


@given(st.sampled_from(list(LimitKind)), st.text(min_size=1, max_size=40))
def test_a_limit_id_tells_its_kind(kind: LimitKind, name: str) -> None:
    assert limit_kind(limit_workflow_id(kind, name)) is kind


@pytest.mark.parametrize("workflow_id", ["dagrun:etl:r1", "limit:", "limit:queue:x", "limits:runs:x", "assets:etl"])
def test_other_ids_name_no_limit_kind(workflow_id: str) -> None:
    assert limit_kind(workflow_id) is None


@given(DAG_IDS, RUN_IDS)
def test_a_workflow_id_parses_back_whatever_the_run_id_holds(dag_id: str, run_id: str) -> None:
    assert parse_dag_run_workflow_id(dag_run_workflow_id(dag_id, run_id)) == (dag_id, run_id)


@pytest.mark.parametrize("workflow_id", ["limit:pool:db", "dagrun:no-run-id", "other"])
def test_other_workflow_ids_are_not_dag_runs(workflow_id: str) -> None:
    assert parse_dag_run_workflow_id(workflow_id) is None


@given(TASK_IDS, st.integers(min_value=-1, max_value=10**6), st.integers(1, 100), st.integers(0, 1000))
def test_an_activity_id_parses_back(task_id: str, map_index: int, try_number: int, pokes: int) -> None:
    try_id = TryId(task_id, map_index, try_number, pokes)
    assert TryId.parse_activity_id(try_id.activity_id()) == try_id


def test_pokes_of_one_try_share_its_qualified_id_but_not_their_activity_id() -> None:
    first, second = TryId("sensor", -1, 1, 0), TryId("sensor", -1, 1, 1)
    assert first.qualified("dagrun:d:r") == second.qualified("dagrun:d:r")
    assert first.activity_id() != second.activity_id()


@pytest.mark.parametrize("activity_id", ["", "load", "load:x:1", "load:1:x", "a:1:1:reschedule-x", "a:1:1:other"])
def test_activity_ids_of_another_shape_do_not_parse(activity_id: str) -> None:
    assert TryId.parse_activity_id(activity_id) is None


def test_task_log_path_is_airflows_layout() -> None:
    assert (
        task_log_path("etl", "manual__2025-01-01T00:00:00+00:00", "load", -1, 2)
        == "dag_id=etl/run_id=manual__2025-01-01T00:00:00+00:00/task_id=load/attempt=2.log"
    )
    assert (
        task_log_path("etl", "r", "transform", 3, 1)
        == "dag_id=etl/run_id=r/task_id=transform/map_index=3/attempt=1.log"
    )
    assert parse_task_log_attempt("attempt=12.log") == 12
    assert parse_task_log_attempt("attempt=x.log") is None
    assert parse_task_log_attempt("attempt=1.log.tmp") is None


@given(st.text(min_size=1, max_size=400), st.text(min_size=1, max_size=400), st.text(min_size=1, max_size=300))
def test_no_id_leaves_its_folder_in_the_log_path(dag_id: str, run_id: str, task_id: str) -> None:
    base = PurePosixPath("/logs")
    path = PurePosixPath(base, task_log_path(dag_id, run_id, task_id, -1, 1))
    parts = path.relative_to(base).parts
    # Exactly four names, each under its own key, none a traversal, none too long for a file system.
    assert [part.split("=", 1)[0] for part in parts] == ["dag_id", "run_id", "task_id", "attempt"]
    assert all(part not in {".", ".."} and "/" not in part and "\x00" not in part for part in parts)
    assert all(len(part.encode()) <= 255 and part.isascii() for part in parts)


def test_hostile_ids_are_encoded_and_stay_distinct() -> None:
    assert task_log_path("../..", "../../etc", "t", -1, 1).split("/")[:2] == ["dag_id=..%2F..", "run_id=..%2F..%2Fetc"]
    assert task_log_path("d", "é/x", "t", -1, 1).split("/")[1] == "run_id=%C3%A9%2Fx"
    # Long IDs are cut with a digest of the whole ID: two that share a long start stay apart.
    long_a, long_b = "a" * 300 + "1", "a" * 300 + "2"
    assert task_log_path("d", long_a, "t", -1, 1) != task_log_path("d", long_b, "t", -1, 1)
