"""DAGs scheduled on assets whose AssetWatchers read Kafka: what their tasks see of each message.

``watched_orders``: ``MessageQueueTrigger(scheme="kafka")`` with an ``apply_function`` that keeps
orders of at least ``minimum`` (a falsy result: not an event) and fails on a malformed one.
``watched_batches``: ``AwaitMessageTrigger`` without ``apply_function`` (the payload is the value
as text); the tests batch its events through the routes file. Both tasks return what Airflow's
``triggering_asset_events`` gives them.
"""

from __future__ import annotations

import datetime
import json

from airflow.providers.apache.kafka.triggers.await_message import AwaitMessageTrigger
from airflow.providers.common.messaging.triggers.msg_queue import MessageQueueTrigger
from airflow.sdk import Asset, AssetWatcher, dag, task

ORDERS_TOPIC = "watched-orders"
BATCHES_TOPIC = "watched-batches"


def big_orders(message, minimum):
    """The order as the event's payload, with where it came from; None for a small one (not an event)."""
    order = json.loads(message.value())
    if order["amount"] < minimum:
        return None
    return {
        "order_id": order["order_id"],
        "amount": order["amount"],
        "key": message.key().decode(),
        "headers": {name: value.decode() for name, value in message.headers() or []},
        "where": [message.topic(), message.partition(), message.offset()],
        "timestamp_ms": message.timestamp()[1],
    }


orders = Asset(
    "watched_orders",
    watchers=[
        AssetWatcher(
            name="big_orders",
            trigger=MessageQueueTrigger(
                scheme="kafka",
                topics=[ORDERS_TOPIC],
                apply_function="watched_orders.big_orders",
                apply_function_kwargs={"minimum": 100},
            ),
        )
    ],
)
batches = Asset(
    "watched_batches", watchers=[AssetWatcher(name="lines", trigger=AwaitMessageTrigger(topics=[BATCHES_TOPIC]))]
)


def _received(events, asset):
    return [{"asset": event.asset.name, "extra": event.extra} for event in events[asset]]


@dag(schedule=[orders], start_date=datetime.datetime(2025, 1, 1), catchup=False)
def watched_orders():
    @task
    def received(triggering_asset_events=None):
        return _received(triggering_asset_events, orders)

    received()


@dag(schedule=[batches], start_date=datetime.datetime(2025, 1, 1), catchup=False)
def watched_batches():
    @task
    def received(triggering_asset_events=None):
        return _received(triggering_asset_events, batches)

    received()


watched_orders()
watched_batches()
