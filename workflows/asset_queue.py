"""The queue of one asset-scheduled DAG, with the rules of Airflow's scheduler.

Airflow records an event of an asset in ``asset_event`` and queues each DAG scheduled on the
asset in ``asset_dag_run_queue`` (one row per asset and DAG, created by the first event since
the DAG's last run). Once the DAG's condition holds over its queued assets, the scheduler
creates one run that consumes every event of the DAG's assets after the previous
asset-triggered run's ``run_after`` and up to the newest queue row, and deletes those rows
(``SchedulerJobRunner._create_dag_runs_asset_triggered``). Events that arrive while the DAG is
at ``max_active_runs`` only add to the queue: the next run consumes them all.

Here an event's time is when its producing try ended, and its queue row's time that too, not
the moment the event was received: the run that consumes a set of events, and its run ID, then
depend only on the events. In Airflow an event is timestamped when it is registered, so no event
arrives older than the last run; here one can (its publish was delayed). Such an event is not
dropped: its queue row is dated just after the last run, and the next run consumes it.

A paused DAG is queued by no event (``AssetManager.register_asset_change`` skips paused DAGs)
and gets no run (``DagModel.dags_needing_dagruns`` selects unpaused DAGs only), yet its queue
rows made before the pause stay, and the events themselves are recorded: once unpaused, the DAG
runs when its condition holds over those rows (or rows of later events), and that run consumes
every event of its window, those that arrived while it was paused included.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.serialization.definitions.assets import SerializedAssetBase

from schemas.assets import AliasResolution, AssetKey, AssetScheduleState, QueuedAsset
from schemas.runs import AssetEventPayload
from workflows.asset_condition import condition_holds

# Event IDs remembered to drop repeats (a publish retried after a lost acknowledgement repeats
# within seconds); bounded because they travel in the state across continue-as-new.
REMEMBERED_EVENT_IDS = 2_000
LATE_EVENT_STEP = timedelta(microseconds=1)


class AssetQueue:
    def __init__(self, state: AssetScheduleState) -> None:
        self._pending = list(state.pending_events)
        self._queued: dict[AssetKey, datetime] = {row.asset: row.created_at for row in state.queued}
        self._aliases: dict[str, list[AssetKey]] = {a.alias: list(a.assets) for a in state.aliases}
        self._seen = list(state.seen_event_ids)
        self._seen_set = set(self._seen)
        self._last_run_after = state.last_run_after
        self.paused = state.paused

    def state(self) -> AssetScheduleState:
        return AssetScheduleState(
            pending_events=self._pending,
            queued=[QueuedAsset(asset=key, created_at=at) for key, at in self._queued.items()],
            aliases=[AliasResolution(alias=alias, assets=keys) for alias, keys in self._aliases.items()],
            seen_event_ids=self._seen,
            last_run_after=self._last_run_after,
            paused=self.paused,
        )

    @property
    def queued(self) -> list[QueuedAsset]:
        return self.state().queued

    @property
    def pending(self) -> list[AssetEventPayload]:
        return list(self._pending)

    def receive(self, events: list[AssetEventPayload]) -> None:
        """Record new events and, unless paused, queue their assets; an event seen before is dropped."""
        for event in events:
            if event.event_id is not None:
                if event.event_id in self._seen_set:
                    continue
                self._remember(event.event_id)
            key = AssetKey(name=event.asset_name, uri=event.asset_uri)
            for alias in event.source_aliases:
                resolved = self._aliases.setdefault(alias, [])
                if key not in resolved:
                    resolved.append(key)
            self._pending.append(event)
            if self.paused:
                continue
            queued_at = event.timestamp
            if self._last_run_after is not None and queued_at <= self._last_run_after:
                queued_at = self._last_run_after + LATE_EVENT_STEP
            self._queued.setdefault(key, queued_at)

    def _remember(self, event_id: str) -> None:
        self._seen.append(event_id)
        self._seen_set.add(event_id)
        if len(self._seen) > REMEMBERED_EVENT_IDS:
            self._seen_set.discard(self._seen.pop(0))

    def ready(self, condition: SerializedAssetBase) -> bool:
        """Whether the DAG, unpaused, gets a run: its condition holds over the queued assets."""
        if self.paused or not self._queued:
            return False
        known = [AssetKey(name=e.asset_name, uri=e.asset_uri) for e in self._pending] + list(self._queued)
        return condition_holds(condition, list(self._queued), known, self._aliases)

    def consume(self) -> tuple[list[AssetEventPayload], datetime]:
        """Take the events of the next run and its ``run_after`` (Airflow's triggered date); empties the queue."""
        triggered = max(self._queued.values())
        window = sorted(
            (
                (event.timestamp, index, event)
                for index, event in enumerate(self._pending)
                if event.timestamp <= triggered
            ),
            key=lambda item: (item[0], item[1]),
        )
        self._pending = [event for event in self._pending if event.timestamp > triggered]
        self._queued.clear()
        self._last_run_after = triggered
        return [event for _, _, event in window], triggered

    def forget_queue(self) -> None:
        """The DAG is no longer scheduled on assets: Airflow deletes its stale queue rows."""
        self._queued.clear()
