"""The activity that runs one task try: a pool process does the work, this side heartbeats."""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TypeVar

from airflow.sdk.exceptions import TaskNotFound
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics, task_process
from activities.asset_publishing import AssetEventRouter
from activities.dag_loader import DagNotFound
from activities.events import ASSET_EVENTS, TASK_EVENT, EventPublisher, HeldEvent
from activities.held_inputs import HeldInputs
from infra.backoff import DEFAULT_BACKOFF, Backoff
from infra.task_logs import TaskLogStore
from schemas.errors import FailureType
from schemas.messages import TRY_END_STATES, TaskEvent
from schemas.names import RUN_TASK_TRY_ACTIVITY
from schemas.runs import TaskTryRequest, TaskTryResult
from schemas.settings import Settings

log = logging.getLogger(__name__)

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
        # Logs bound for an object store are staged outside the tries folder, which shutdown
        # removes: a log whose upload failed stays where the event said it is.
        self.logs = TaskLogStore(settings.logs_base, staging=Path(tempfile.gettempdir(), "dagbridge-task-logs"))
        # Series at 0 from the start: a failure rate reads 0, not "no data", until a log fails.
        for outcome in metrics.TASK_LOG_OUTCOMES:
            metrics.TASK_LOGS.labels(self.logs.scheme, outcome)

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

    async def run(self, request: TaskTryRequest, log_header: str) -> TaskTryResult:
        """Run the try in a pool process; cancelling this stops the try and returns once it ended.

        The try's output goes to its log, which is in place (uploaded to an object store) once
        this returns, also when the try raised or was stopped.
        """
        executor = self._executor
        coordinates = (request.dag_run.dag_id, request.dag_run.run_id, request.task_id, request.map_index)
        try:
            log_file = await asyncio.to_thread(self.logs.local_file, *coordinates, request.try_number)
        except Exception:
            metrics.TASK_LOGS.labels(self.logs.scheme, "open_failed").inc()
            raise
        # A later poke of a rescheduled sensor appends to its try's log: count only what this one adds.
        size_before = log_file.stat().st_size if log_file.exists() else 0
        try_dir = Path(tempfile.mkdtemp(dir=self._tries))
        (try_dir / task_process.PERMIT_FILE).touch()
        future = executor.submit(task_process.run_task_try, request, str(try_dir), str(log_file), log_header)
        metrics.BUSY_TASK_PROCESSES.inc()
        future.add_done_callback(lambda _: metrics.BUSY_TASK_PROCESSES.dec())
        try:
            result = await asyncio.wrap_future(future)
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
            # Shielded: a stopped try's log is uploaded too, before the cancellation is reported.
            location = await asyncio.shield(self._keep_log(log_file, request, size_before))
        return result.model_copy(update={"log": location})

    async def _keep_log(self, log_file: Path, request: TaskTryRequest, size_before: int) -> str:
        """Upload the try's log if it goes to an object store; where the log is now."""
        coordinates = (request.dag_run.dag_id, request.dag_run.run_id, request.task_id, request.map_index)
        written = log_file.stat().st_size - size_before if log_file.exists() else 0
        metrics.TASK_LOG_BYTES.labels(request.dag_run.dag_id).inc(max(written, 0))
        try:
            await asyncio.to_thread(
                functools.partial(self.logs.upload, log_file, *coordinates, try_number=request.try_number)
            )
        except Exception as err:
            log.warning(
                "cannot upload the log of %s try %d (%s): it stays in %s",
                request.label,
                request.try_number,
                err,
                log_file,
            )
            metrics.TASK_LOGS.labels(self.logs.scheme, "upload_failed").inc()
            return str(log_file)
        metrics.TASK_LOGS.labels(self.logs.scheme, "stored").inc()
        self.logs.discard_staged(log_file)
        return self.logs.location(*coordinates, request.try_number)

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
        publish_backoff: Backoff = DEFAULT_BACKOFF,
        assets: AssetEventRouter | None = None,
    ) -> None:
        self._pool = pool
        self._heartbeat_interval = heartbeat_interval_seconds
        self._events = events
        self._publish_backoff = publish_backoff
        self._assets = assets
        self._held_inputs = HeldInputs()

    @activity.defn(name=RUN_TASK_TRY_ACTIVITY)
    async def run_task_try(self, request: TaskTryRequest) -> TaskTryResult:
        result = _result_of_earlier_attempt()
        if result is None:
            if request.inputs_held_by_workflow:
                info = activity.info()
                request = await self._held_inputs.complete(request, info.workflow_id, info.workflow_run_id)
            result = await self._run(request)
            metrics.record_task_try(request.dag_run.dag_id, result.state.value, result.end_date - result.start_date)
            metrics.record_callback_failures(request.dag_run.dag_id, "task", result.failed_callbacks)
        else:
            activity.logger.info("%s try %d already ran, publishing its event", request.label, request.try_number)
        if self._events is not None and self._events.enabled and result.state in TRY_END_STATES:
            event = TaskEvent.of_try(activity.info().workflow_id, request, result)
            await self._publish(
                HeldEvent(f"task event {event.event_id}", TASK_EVENT),
                lambda: self._events.publish_task_event(event),
                result,
            )
        if self._assets is not None and result.asset_events:
            assets = self._assets
            await self._publish(
                HeldEvent(f"asset events of {request.label}", ASSET_EVENTS),
                lambda: assets.publish(result.asset_events),
                result,
            )
        return result

    async def _publish(self, held: HeldEvent, send: Callable[[], Awaitable[None]], result: TaskTryResult) -> None:
        """Publish until Kafka (or Temporal, for asset events) has it, heartbeating the result all along.

        The task already ran: failing the activity now would run it again. If this worker dies
        while Kafka is away, the next attempt finds the result in the heartbeat details and only
        publishes. Waiting here also keeps a run's events in order: the next try cannot start
        before this one's event is out.
        """
        delays = self._publish_backoff.delays()
        with held:
            while True:
                publish = asyncio.ensure_future(send())
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
                held.failed(error, delay)
                deadline = time.monotonic() + delay
                while (left := deadline - time.monotonic()) > 0:
                    activity.heartbeat(result)
                    await asyncio.sleep(min(left, self._heartbeat_interval))

    async def _run(self, request: TaskTryRequest) -> TaskTryResult:
        activity.logger.info("running %s try %d", request.label, request.try_number)
        info = activity.info()
        poke = f", poke {request.reschedule_count + 1}" if request.reschedule_count else ""
        header = (
            f"--- dagbridge: {request.label} try {request.try_number}{poke} (activity attempt {info.attempt}) "
            f"on worker {socket.gethostname()}:{os.getpid()}, workflow {info.workflow_id} ---"
        )
        attempt = asyncio.ensure_future(self._pool.run(request, header))
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


def _result_of_earlier_attempt() -> TaskTryResult | None:
    """The result an earlier attempt of this activity heartbeated before it died publishing the event."""
    details = activity.info().heartbeat_details
    return TaskTryResult.model_validate(details[0]) if details else None
