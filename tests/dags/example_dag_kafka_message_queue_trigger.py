"""The Kafka provider's documented AssetWatcher example, declared as its documentation declares it.

The same trigger (``KafkaMessageQueueTrigger`` on topic ``test`` through ``kafka_default``, an
``apply_function`` that reads the value as JSON and accepts every message), the same asset, watcher,
DAG and task: dagbridge must serve it as it stands, with no Airflow triggerer or scheduler running.
"""

from __future__ import annotations

import json

from airflow.providers.apache.kafka.triggers.msg_queue import KafkaMessageQueueTrigger
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, Asset, AssetWatcher


def apply_function(message):
    value = json.loads(message.value())
    print(f"Value in message is {value}")
    return True


trigger = KafkaMessageQueueTrigger(
    topics=["test"],
    apply_function="example_dag_kafka_message_queue_trigger.apply_function",
    kafka_config_id="kafka_default",
    apply_function_args=None,
    apply_function_kwargs=None,
    poll_timeout=1,
    poll_interval=5,
)

asset = Asset("kafka_queue_asset", watchers=[AssetWatcher(name="kafka_watcher", trigger=trigger)])

with DAG(dag_id="example_kafka_watcher", schedule=[asset]) as dag:
    EmptyOperator(task_id="task")
