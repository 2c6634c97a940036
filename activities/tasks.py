"""The activity that runs one task try: a pool process does the work, this side heartbeats."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from airflow.sdk.exceptions import TaskNotFound
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics, task_process
from activities.dag_loader import DagNotFound
from activities.events import EventPublisher
from bridge.backoff import Backoff
from schemas.messages import TRY_END_STATES, TaskEvent
from schemas.runs import TaskTryRequest, TaskTryResult, TryInputs
from schemas.settings import Settings

A = TypeVar("A")
R = TypeVar("R")


class TaskProcessPool:
    """A fixed set of pre-started processes with Airflow imported, one task try at a time each."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._processes = settings.task_processes
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn, not fork: the worker process runs threads (Temporal's core, the event loop)
        # that a forked child would inherit in an undefined state.
        return ProcessPoolExecutor(
            max_workers=self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=task_process.init_task_process,
            initargs=(self._settings,),
        )

    def start(self) -> None:
        """Start every process now, so the first tasks do not pay for importing Airflow."""
        for future in [self._executor.submit(task_process.warm_up) for _ in range(self._processes)]:
            future.result()

    async def run(self, request: TaskTryRequest) -> TaskTryResult:
        return await self.call(task_process.run_task_try, request)

    async def call(self, function: Callable[[A], R], argument: A) -> R:
        """Run user code (``function`` must be importable by name) in one of the processes."""
        executor = self._executor
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, function, argument)
        except BrokenProcessPool:
            # A task took its process down (os._exit, a crash in native code): replace the pool
            # once, and let Temporal retry the try as it would after losing the whole worker.
            if self._executor is executor:
                executor.shutdown(wait=False)
                self._executor = self._new_executor()
            raise

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


class TaskActivities:
    def __init__(
        self,
        pool: TaskProcessPool,
        heartbeat_interval_seconds: float = 1.0,
        events: EventPublisher | None = None,
        publish_backoff: Backoff = Backoff(),
    ) -> None:
        self._pool = pool
        self._heartbeat_interval = heartbeat_interval_seconds
        self._events = events
        self._publish_backoff = publish_backoff

    @activity.defn(name="run_task_try")
    async def run_task_try(self, request: TaskTryRequest) -> TaskTryResult:
        result = _result_of_earlier_attempt()
        if result is None:
            if request.inputs_held_by_workflow:
                request = await _with_inputs_from_workflow(request)
            result = await self._run(request)
            metrics.record_task_try(request.dag_run.dag_id, result.state.value, result.end_date - result.start_date)
            metrics.record_callback_failures(request.dag_run.dag_id, "task", result.failed_callbacks)
        else:
            activity.logger.info("%s try %d already ran, publishing its event", request.label, request.try_number)
        if self._events is not None and self._events.enabled and result.state in TRY_END_STATES:
            await self._publish(TaskEvent.of_try(activity.info().workflow_id, request, result), result)
        return result

    async def _publish(self, event: TaskEvent, result: TaskTryResult) -> None:
        """Publish until Kafka has the event, heartbeating the result all along.

        The task already ran: failing the activity now would run it again. If this worker dies
        while Kafka is away, the next attempt finds the result in the heartbeat details and only
        publishes. Waiting here also keeps a run's events in order: the next try cannot start
        before this one's event is out.
        """
        assert self._events is not None
        delays = self._publish_backoff.delays()
        while True:
            publish = asyncio.ensure_future(self._events.publish_task_event(event))
            try:
                while not publish.done():
                    activity.heartbeat(result)
                    await asyncio.wait({publish}, timeout=self._heartbeat_interval)
            finally:
                publish.cancel()
            error = publish.exception()
            if error is None:
                return
            delay = next(delays)
            activity.logger.warning("cannot publish %s (%s), retrying in %.1f s", event.event_id, error, delay)
            deadline = time.monotonic() + delay
            while (left := deadline - time.monotonic()) > 0:
                activity.heartbeat(result)
                await asyncio.sleep(min(left, self._heartbeat_interval))

    async def _run(self, request: TaskTryRequest) -> TaskTryResult:
        activity.logger.info("running %s try %d", request.label, request.try_number)
        attempt = asyncio.ensure_future(self._pool.run(request))
        while True:
            done, _ = await asyncio.wait({attempt}, timeout=self._heartbeat_interval)
            if done:
                break
            activity.heartbeat()
        try:
            return attempt.result()
        except DagNotFound as err:
            raise ApplicationError(str(err), type="DagNotFound", non_retryable=True) from err
        except TaskNotFound as err:
            # The run's DAG has a task this worker's copy of the DAG file does not: running it
            # again here cannot help.
            raise ApplicationError(
                f"task {request.task_id!r} is not in DAG {request.dag_run.dag_id!r} on this worker",
                type="TaskNotFound",
                non_retryable=True,
            ) from err


async def _with_inputs_from_workflow(request: TaskTryRequest) -> TaskTryRequest:
    """Read the conf and upstream XComs the workflow kept out of this try's input."""
    handle = activity.client().get_workflow_handle(activity.info().workflow_id)
    inputs = await handle.query("try_inputs", request.task_id, result_type=TryInputs)
    return request.model_copy(
        update={
            "dag_run": request.dag_run.model_copy(update={"conf": inputs.conf}),
            "upstream_xcoms": inputs.upstream_xcoms,
        }
    )


def _result_of_earlier_attempt() -> TaskTryResult | None:
    """The result an earlier attempt of this activity heartbeated before it died publishing the event."""
    details = activity.info().heartbeat_details
    return TaskTryResult.model_validate(details[0]) if details else None
