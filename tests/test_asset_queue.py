"""The asset queue's rules and the conversion of a try's outlets into events (pure logic, Airflow's own classes)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk.api.datamodels._generated import AssetProfile
from airflow.serialization.definitions.assets import (
    SerializedAsset,
    SerializedAssetAlias,
    SerializedAssetAll,
    SerializedAssetAny,
)

from activities.asset_events import emitted_asset_events
from schemas.runs import AssetEventPayload, DagRunContext, TaskTryRequest
from workflows.asset_queue import AssetQueue

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def asset(name: str) -> SerializedAsset:
    return SerializedAsset(name=name, uri=name, group="asset", extra={}, watchers=[])


def event(name: str, seconds: int, *, aliases: tuple[str, ...] = (), event_id: str | None = None) -> AssetEventPayload:
    return AssetEventPayload(
        asset_name=name,
        asset_uri=name,
        timestamp=T0 + timedelta(seconds=seconds),
        source_aliases=list(aliases),
        event_id=event_id or f"{name}@{seconds}",
    )


def fresh() -> AssetQueue:
    from schemas.assets import AssetScheduleState

    return AssetQueue(AssetScheduleState())


def test_an_all_condition_holds_only_once_every_asset_is_queued() -> None:
    queue, condition = fresh(), SerializedAssetAll([asset("a"), asset("b")])
    queue.receive([event("a", 1)])
    assert not queue.ready(condition)
    queue.receive([event("b", 2)])
    assert queue.ready(condition)
    consumed, run_after = queue.consume()
    assert [e.event_id for e in consumed] == ["a@1", "b@2"] and run_after == T0 + timedelta(seconds=2)
    assert not queue.ready(condition) and queue.queued == []


def test_a_repeated_event_id_changes_nothing() -> None:
    queue = fresh()
    queue.receive([event("a", 1), event("a", 1)])
    queue.receive([event("a", 1)])
    assert [e.event_id for e in queue.pending] == ["a@1"]


def test_an_alias_resolves_to_the_assets_events_were_emitted_to_through_it() -> None:
    queue, condition = fresh(), SerializedAssetAny([asset("x"), SerializedAssetAlias(name="al", group="asset")])
    queue.receive([event("y", 1)])
    assert not queue.ready(condition), "y is not x and did not come through the alias"
    queue.receive([event("z", 2, aliases=("al",))])
    assert queue.ready(condition)


def test_the_window_ends_at_the_newest_first_queued_event_as_airflow_s_queue_rows() -> None:
    """Airflow's queue row of an asset keeps the time of its first event; a later event of the same
    asset after every row's time waits for the next run (SchedulerJobRunner._create_dag_runs_asset_triggered)."""
    queue, condition = fresh(), SerializedAssetAny([asset("c"), asset("d")])
    queue.receive([event("c", 1), event("d", 2), event("c", 3)])
    consumed, run_after = queue.consume()
    assert [e.event_id for e in consumed] == ["c@1", "d@2"] and run_after == T0 + timedelta(seconds=2)
    assert [e.event_id for e in queue.pending] == ["c@3"] and not queue.ready(condition)
    queue.receive([event("d", 4)])
    consumed, _ = queue.consume()
    assert [e.event_id for e in consumed] == ["c@3", "d@4"]


def test_an_event_older_than_the_last_run_is_consumed_by_the_next_run_which_starts_later() -> None:
    queue = fresh()
    queue.receive([event("a", 10)])
    _, first_run_after = queue.consume()
    queue.receive([event("a", 5, event_id="late")])
    consumed, run_after = queue.consume()
    assert [e.event_id for e in consumed] == ["late"] and run_after > first_run_after


def test_paused_events_are_recorded_but_queue_nothing_and_rows_from_before_stay() -> None:
    queue, condition = fresh(), SerializedAssetAll([asset("a"), asset("b")])
    queue.receive([event("a", 1)])
    queue.paused = True
    queue.receive([event("b", 2)])
    assert [row.asset.name for row in queue.queued] == ["a"] and not queue.ready(condition)
    queue.paused = False
    assert not queue.ready(condition), "b's event came while paused: it queued nothing"
    queue.receive([event("b", 3)])
    assert queue.ready(condition)
    consumed, run_after = queue.consume()
    assert [e.event_id for e in consumed] == ["a@1", "b@2", "b@3"] and run_after == T0 + timedelta(seconds=3)


def test_a_paused_queue_that_holds_is_not_ready_until_unpaused() -> None:
    queue, condition = fresh(), SerializedAssetAny([asset("a")])
    queue.receive([event("a", 1)])
    queue.paused = True
    assert not queue.ready(condition)
    queue.paused = False
    assert queue.ready(condition)


def test_the_state_survives_a_continue_as_new() -> None:
    queue = fresh()
    queue.receive([event("a", 1, aliases=("al",))])
    again = AssetQueue(queue.state())
    again.receive([event("a", 1, aliases=("al",))])
    assert again.state() == queue.state()


def request(task_id: str = "t") -> TaskTryRequest:
    run = DagRunContext(
        dag_id="d",
        run_id="r",
        run_type="manual",
        logical_date=None,
        data_interval_start=None,
        data_interval_end=None,
        run_after=T0,
        start_date=T0,
    )
    return TaskTryRequest(dag_run=run, task_id=task_id, try_number=2, max_tries=3)


def test_outlets_become_events_as_airflow_registers_them() -> None:
    outlets = [
        AssetProfile(name="a", uri="s3://a", type="Asset"),
        AssetProfile(name="b", uri="s3://b", type="Asset"),
        AssetProfile(name="al", type="AssetAlias"),
        AssetProfile(name="not-an-outlet", type="AssetAlias"),
    ]
    key = {"name": "c", "uri": "s3://c"}
    outlet_events = [
        {"dest_asset_key": {"name": "a", "uri": "s3://a"}, "extra": {"n": 1}},
        {"dest_asset_key": {"name": "a", "uri": "s3://a"}, "extra": {"n": 2}, "partition_key": "p2"},
        {"source_alias_name": "al", "dest_asset_key": key, "dest_asset_extra": {}, "extra": {"k": 1}},
        {"source_alias_name": "other", "dest_asset_key": key, "dest_asset_extra": {}, "extra": {"k": 1}},
    ]
    events = emitted_asset_events(outlets, outlet_events, request(), T0)
    assert [(e.asset_uri, e.extra, e.source_aliases) for e in events] == [
        ("s3://a", {"n": 1}, []),
        ("s3://a", {"n": 2}, []),
        ("s3://b", {}, []),
        ("s3://c", {"k": 1}, ["al"]),
    ]
    assert [e.event_id for e in events] == [
        "dagrun:d:r:t:-1:2:s3://a",
        "dagrun:d:r:t:-1:2:s3://a#1",
        "dagrun:d:r:t:-1:2:s3://b",
        "dagrun:d:r:t:-1:2:s3://c",
    ]
    assert {(e.source_dag_id, e.source_run_id, e.source_task_id, e.timestamp) for e in events} == {("d", "r", "t", T0)}
