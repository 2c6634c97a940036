"""The activity that runs one task try: a pool process does the work, this side heartbeats."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TypeVar

from airflow.sdk.exceptions import TaskNotFound
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics, task_process
from activities.dag_loader import DagNotFound
from activities.events import EventPublisher
from infra.backoff import Backoff
from schemas.errors import FailureType
from schemas.messages import TRY_END_STATES, TaskEvent
from schemas.names import RUN_TASK_TRY_ACTIVITY, TRY_INPUTS_QUERY
from schemas.runs import TaskTryRequest, TaskTryResult, TryInputs
from schemas.settings import Settings

A = TypeVar("A")
R = TypeVar("R")

# How long a stopped try gets to end before its process is killed: as long as Airflow's
# supervisor waits before escalating to SIGKILL.
STOP_GRACE_SECONDS = 5.0


class TaskProcessPool:
    """A fixed set of pre-started processes with Airflow imported, one task try at a time each."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._processes = settings.task_processes
        self._executor = self._new_executor()
        self._tries = Path(tempfile.mkdtemp(prefix="dagbridge-tries-"))

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

    async def call(self, function: Callable[[A], R], argument: A) -> R:
        """Run user code (``function`` must be importable by name) in one of the processes."""
        executor = self._executor
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, function, argument)
        except BrokenProcessPool:
            self._replace(executor)
            raise

    async def run(self, request: TaskTryRequest) -> TaskTryResult:
        """Run the try in a pool process; cancelling this stops the try and returns once it ended."""
        executor = self._executor
        try_dir = Path(tempfile.mkdtemp(dir=self._tries))
        (try_dir / task_process.PERMIT_FILE).touch()
        future = executor.submit(task_process.run_task_try, request, str(try_dir))
        metrics.BUSY_TASK_PROCESSES.inc()
        future.add_done_callback(lambda _: metrics.BUSY_TASK_PROCESSES.dec())
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            await self._stop(executor, future, try_dir)
            raise
        except BrokenProcessPool:
            # A task took its process down (os._exit, a crash in native code): replace the pool
            # once, and let Temporal retry the try as it would after losing the whole worker.
            self._replace(executor)
            raise
        finally:
            shutil.rmtree(try_dir, ignore_errors=True)

    async def _stop(self, executor: ProcessPoolExecutor, future: Future, try_dir: Path) -> None:
        (try_dir / task_process.PERMIT_FILE).unlink()
        pid_file = try_dir / task_process.PID_FILE
        if future.done() or not pid_file.exists():
            # No process has claimed the try, and none will run it now that its permit is gone.
            return
        pid = int(pid_file.read_text())
        os.kill(pid, task_process.STOP_SIGNAL)
        outcome = asyncio.wrap_future(future)
        ended, _ = await asyncio.wait({outcome}, timeout=STOP_GRACE_SECONDS)
        if not ended:
            # The task ignored the stop (stuck in native code, or it swallowed the exception).
            os.kill(pid, signal.SIGKILL)
            await asyncio.wait({outcome})
            self._replace(executor)
        # Retrieved and dropped: how a stopped try ended no longer matters to anyone.
        outcome.exception()

    def _replace(self, executor: ProcessPoolExecutor) -> None:
        if self._executor is executor:
            executor.shutdown(wait=False)
            self._executor = self._new_executor()

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        shutil.rmtree(self._tries, ignore_errors=True)


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

    @activity.defn(name=RUN_TASK_TRY_ACTIVITY)
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
        try:
            await self._heartbeat_until_done(attempt)
        except asyncio.CancelledError:
            # The run was cancelled or timed out. Report the cancellation only once the task
            # really stopped: the workflow waits for that before it declares the run over.
            activity.logger.info("stopping %s try %d", request.label, request.try_number)
            attempt.cancel()
            await self._heartbeat_until_done(attempt)
            raise
        try:
            return attempt.result()
        except DagNotFound as err:
            raise ApplicationError(str(err), type=FailureType.DAG_NOT_FOUND, non_retryable=True) from err
        except TaskNotFound as err:
            # The run's DAG has a task this worker's copy of the DAG file does not: running it
            # again here cannot help.
            raise ApplicationError(
                f"task {request.task_id!r} is not in DAG {request.dag_run.dag_id!r} on this worker",
                type=FailureType.TASK_NOT_FOUND,
                non_retryable=True,
            ) from err

    async def _heartbeat_until_done(self, attempt: asyncio.Future) -> None:
        while not attempt.done():
            activity.heartbeat()
            await asyncio.wait({attempt}, timeout=self._heartbeat_interval)


async def _with_inputs_from_workflow(request: TaskTryRequest) -> TaskTryRequest:
    """Read the conf and upstream XComs the workflow kept out of this try's input."""
    handle = activity.client().get_workflow_handle(activity.info().workflow_id)
    inputs = await handle.query(TRY_INPUTS_QUERY, request.task_id, result_type=TryInputs)
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
