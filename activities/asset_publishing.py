"""Where a try's asset events go: the ``asset-events`` topic, and the DAGs scheduled on the assets.

Both happen inside the activity that ran the try, after the try's task event, and are repeated
by the activity's next attempt if the worker dies half way (the result is heartbeated): Kafka
consumers and the asset-schedule workflows both drop repeats by the events' stable IDs.
"""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.asset_consumers import asset_consumers
from activities.dag_loader import DagLoader
from activities.events import EventPublisher
from infra.temporal import queue_asset_events, run_options
from schemas.messages import AssetEventMessage
from schemas.runs import AssetEventPayload
from schemas.settings import Settings


class AssetEventRouter:
    def __init__(self, settings: Settings, loader: DagLoader, events: EventPublisher) -> None:
        self._settings = settings
        self._loader = loader
        self._events = events

    async def publish(self, events: list[AssetEventPayload]) -> None:
        """Publish every event, then signal each consumer DAG's workflow; raises what Kafka or Temporal raised."""
        if self._events.enabled:
            for event in events:
                await self._events.publish_asset_event(AssetEventMessage.of_event(event))
        # Parsing is cached per file: only DAG files changed since the last call are read again.
        consumers = await asyncio.to_thread(lambda: asset_consumers(list(self._loader.all_dags().values())))
        client = activity.client()
        for consumer in consumers:
            wanted = [event for event in events if consumer.wants(event)]
            if not wanted:
                continue
            await queue_asset_events(
                client, consumer.dag_id, wanted, self._settings.task_queue, run_options(self._settings)
            )
