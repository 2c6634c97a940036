"""Unit tests of AssetWatcher serving: what a record becomes (bridge/watchers.py) and which watchers a
dags folder has (activities/asset_watchers.py). The servers are in tests/test_asset_watchers.py."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from bridge.routing import Record
from bridge.watchers import WatcherRouter, Watchers, compile_watchers, confluent_message
from schemas.assets import AssetKey
from schemas.runs import RunOptions, RunType
from schemas.watchers import KafkaAssetWatcher, WatcherTarget

TOPIC = "orders"
RECORD = Record(
    topic=TOPIC,
    partition=1,
    offset=42,
    timestamp=1_700_000_000_123,
    key=b"k1",
    value=b'{"n": 1}',
    headers=[("h", b"v")],
)


def watcher(
    name: str = "w", *, apply_function: str | None = None, targets: list[WatcherTarget] | None = None, **extra: Any
) -> KafkaAssetWatcher:
    return KafkaAssetWatcher(
        name=name,
        dag_id="declaring",
        asset=AssetKey(name=f"asset_{name}", uri=f"kafka://{name}"),
        topics=[TOPIC],
        apply_function=apply_function,
        targets=targets if targets is not None else [WatcherTarget(dag_id="consumer", alone=True)],
        **extra,
    )


def router(*specs: KafkaAssetWatcher, batched: frozenset[str] = frozenset()) -> WatcherRouter:
    compiled = compile_watchers(list(specs))
    assert compiled.skipped == []
    return WatcherRouter(compiled.watchers, batched_dags=batched, max_payload_bytes=1024, options=RunOptions())


def test_apply_function_gets_the_record_as_a_confluent_message_with_its_arguments() -> None:
    spec = watcher(
        apply_function="tests.watcher_functions.describe", apply_function_args=[1], apply_function_kwargs={"a": "b"}
    )
    routed = router(spec).route(RECORD)
    [run] = routed.runs
    [event] = run.triggering_asset_events
    assert event.extra == {
        "from_trigger": True,
        "payload": {
            "topic": TOPIC,
            "partition": 1,
            "offset": 42,
            "key": "k1",
            "value": '{"n": 1}',
            "headers": [["h", "v"]],
            "timestamp": [1, 1_700_000_000_123],  # TIMESTAMP_CREATE_TIME, milliseconds
            "error": None,
            "args": [1],
            "kwargs": {"a": "b"},
        },
    }


def test_one_message_is_one_run_keyed_by_its_position_with_the_event_airflow_registers() -> None:
    routed = router(watcher()).route(RECORD)
    [run] = routed.runs
    assert (run.dag_id, run.run_id, run.run_type, run.logical_date) == (
        "consumer",
        "asset_triggered__orders-1-42",
        RunType.ASSET_TRIGGERED,
        None,
    )
    assert run.run_after == datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=datetime.UTC)
    [event] = run.triggering_asset_events
    # Without apply_function the payload is the value as text, as AwaitMessageTrigger yields it.
    assert (event.asset_name, event.asset_uri, event.extra, event.event_id, event.timestamp) == (
        "asset_w",
        "kafka://w",
        {"from_trigger": True, "payload": '{"n": 1}'},
        "kafka:orders:1:42:kafka://w",
        run.run_after,
    )
    assert router(watcher()).route(RECORD).runs == [run], "the same record must always name the same run"


@pytest.mark.parametrize(
    ("apply_function", "value"), [("tests.watcher_functions.reject", b"x"), (None, None)], ids=["falsy", "tombstone"]
)
def test_a_falsy_payload_or_a_tombstone_is_no_event(apply_function: str | None, value: bytes | None) -> None:
    record = Record(topic=TOPIC, partition=0, offset=0, timestamp=0, key=None, value=value)
    routed = router(watcher(apply_function=apply_function)).route(record)
    assert (routed.runs, routed.queued, routed.filtered, routed.errors) == ([], {}, ["declaring.w"], [])


@pytest.mark.parametrize(
    ("apply_function", "reason"),
    [
        ("tests.watcher_functions.fail", "apply_function tests.watcher_functions.fail raised ValueError: no good"),
        ("tests.watcher_functions.not_json", "the event's extra is not plain JSON"),
    ],
)
def test_a_message_the_watcher_cannot_make_an_event_of_is_an_error_with_the_reason(
    apply_function: str, reason: str
) -> None:
    routed = router(watcher(apply_function=apply_function)).route(RECORD)
    assert routed.runs == []
    [(label, error)] = routed.errors
    assert label == "declaring.w"
    assert error.startswith(f"asset watcher declaring.w: {reason}")


def test_a_payload_over_the_size_limit_is_an_error() -> None:
    record = Record(topic=TOPIC, partition=0, offset=0, timestamp=0, key=None, value=b"x" * 2000)
    [(_, error)] = router(watcher()).route(record).errors
    assert "more than the limit of 1024" in error


def test_batched_dags_and_dags_whose_condition_needs_more_get_the_event_queued() -> None:
    targets = [
        WatcherTarget(dag_id="alone", alone=True),
        WatcherTarget(dag_id="batched", alone=True),
        WatcherTarget(dag_id="needs_more", alone=False),
    ]
    routed = router(watcher(targets=targets), batched=frozenset({"batched"})).route(RECORD)
    assert [run.dag_id for run in routed.runs] == ["alone"]
    assert sorted(routed.queued) == ["batched", "needs_more"]
    assert routed.queued["batched"] == routed.runs[0].triggering_asset_events


def test_two_watchers_of_one_topic_for_one_dag_start_one_run_with_both_events() -> None:
    routed = router(watcher("a"), watcher("b")).route(RECORD)
    [run] = routed.runs
    assert [event.asset_name for event in run.triggering_asset_events] == ["asset_a", "asset_b"]


def test_a_topic_regex_reads_what_kafka_would_subscribe_to() -> None:
    spec = watcher(apply_function=None).model_copy(update={"topics": ["^orders\\..*"]})
    watchers = compile_watchers([spec]).watchers
    assert (watchers.topics, watchers.patterns) == (set(), ["^orders\\..*"])
    assert watchers.watchers[0].reads("orders.eu") and not watchers.watchers[0].reads("orders")


def test_a_watcher_whose_apply_function_does_not_import_is_left_out_with_the_reason() -> None:
    compiled = compile_watchers([watcher(apply_function="tests.watcher_functions.missing"), watcher("ok")])
    assert [w.spec.name for w in compiled.watchers.watchers] == ["ok"]
    [line] = compiled.skipped
    assert line.startswith("watcher declaring.w (asset 'asset_w'): ImportError")


def test_a_message_without_headers_or_timestamp_is_a_message_as_confluent_kafka_consumes_it() -> None:
    message = confluent_message(Record(topic=TOPIC, partition=0, offset=3, timestamp=-1, key=None, value=b"v"))
    assert (message.headers(), message.timestamp(), message.key(), message.value()) == (None, (0, 0), None, b"v")


def test_no_watchers_read_nothing() -> None:
    assert router().route(RECORD).runs == []
    assert Watchers([]).topics == set()


def _dag(dag_id: str, schedule: Any) -> Any:
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    with DAG(dag_id=dag_id, schedule=schedule, start_date=datetime.datetime(2025, 1, 1)) as dag:
        EmptyOperator(task_id="task")
    return dag


def test_the_dags_kafka_watchers_with_the_dags_their_events_go_to(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.apache.kafka.triggers.msg_queue import KafkaMessageQueueTrigger
    from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
    from airflow.providers.standard.triggers.file import FileDeleteTrigger
    from airflow.sdk import Asset, AssetWatcher

    from activities.asset_watchers import kafka_asset_watchers

    monkeypatch.setenv("AIRFLOW_CONN_ELSEWHERE", '{"conn_type": "kafka", "extra": {"bootstrap.servers": "far:9092"}}')
    monkeypatch.setenv("AIRFLOW_CONN_SAME", '{"conn_type": "kafka", "extra": {"bootstrap.servers": "b:2, a:1"}}')

    def kafka(topics: list[str], conn: str = "kafka_default") -> Any:
        return KafkaMessageQueueTrigger(topics=topics, apply_function="m.f", kafka_config_id=conn)

    watched = Asset("watched", watchers=[AssetWatcher(name="w", trigger=kafka(["t"]))])
    dags = [
        _dag("declares", [watched]),
        # The same asset and trigger declared again: Airflow runs one trigger for both.
        _dag("declares_again", [watched]),
        _dag("needs_both", Asset("watched") & Asset("other")),
        _dag("either", Asset("watched") | Asset("other")),
        _dag("by_name", [Asset.ref(name="watched")]),
        _dag(
            "queue_uri",
            [
                Asset(
                    "q",
                    watchers=[
                        AssetWatcher(
                            name="uri", trigger=MessageQueueTrigger(queue="kafka://h:1/t1,t2", apply_function="m.f")
                        )
                    ],
                )
            ],
        ),
        _dag("files", [Asset("f", watchers=[AssetWatcher(name="files", trigger=FileDeleteTrigger(filepath="/x"))])]),
        _dag("far", [Asset("far", watchers=[AssetWatcher(name="far", trigger=kafka(["t"], "elsewhere"))])]),
        _dag("same", [Asset("same", watchers=[AssetWatcher(name="same", trigger=kafka(["t"], "same"))])]),
        _dag("unknown", [Asset("u", watchers=[AssetWatcher(name="u", trigger=kafka(["t"], "nowhere"))])]),
    ]
    found = kafka_asset_watchers(dags, "a:1,b:2")
    served = {spec.label: spec for spec in found.served}
    assert sorted(served) == ["declares.w", "queue_uri.uri", "same.same"]
    assert served["declares.w"].targets == [
        WatcherTarget(dag_id="by_name", alone=True),
        WatcherTarget(dag_id="declares", alone=True),
        WatcherTarget(dag_id="declares_again", alone=True),
        WatcherTarget(dag_id="either", alone=True),
        WatcherTarget(dag_id="needs_both", alone=False),
    ]
    # Airflow's own dispatch of a kafka:// queue: the topics come from the URI's path.
    assert served["queue_uri.uri"].topics == ["t1", "t2"]
    skipped = "\n".join(found.skipped)
    assert len(found.skipped) == 3, skipped
    assert (
        "DAG files, asset 'f', watcher 'files': airflow.providers.standard.triggers.file.FileDeleteTrigger" in skipped
    )
    assert "DAG far, asset 'far', watcher 'far': its Kafka connection 'elsewhere' names bootstrap.servers" in skipped
    assert "DAG unknown, asset 'u', watcher 'u': its Kafka connection 'nowhere' is not defined" in skipped
