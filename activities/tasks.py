"""The activity that runs one task try: a pool process does the work, this side heartbeats."""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import task_process
from activities.dag_loader import DagNotFound
from schemas.runs import TaskTryRequest, TaskTryResult


class TaskProcessPool:
    """A fixed set of pre-started processes with Airflow imported, one task try at a time each."""

    def __init__(self, dags_folder: Path, processes: int) -> None:
        self._dags_folder = str(dags_folder)
        self._processes = processes
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        # spawn, not fork: the worker process runs threads (Temporal's core, the event loop)
        # that a forked child would inherit in an undefined state.
        return ProcessPoolExecutor(
            max_workers=self._processes,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=task_process.init_task_process,
            initargs=(self._dags_folder,),
        )

    def start(self) -> None:
        """Start every process now, so the first tasks do not pay for importing Airflow."""
        for future in [self._executor.submit(task_process.warm_up) for _ in range(self._processes)]:
            future.result()

    async def run(self, request: TaskTryRequest) -> TaskTryResult:
        executor = self._executor
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, task_process.run_task_try, request)
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
    def __init__(self, pool: TaskProcessPool, heartbeat_interval_seconds: float = 1.0) -> None:
        self._pool = pool
        self._heartbeat_interval = heartbeat_interval_seconds

    @activity.defn(name="run_task_try")
    async def run_task_try(self, request: TaskTryRequest) -> TaskTryResult:
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
        except KeyError as err:
            raise ApplicationError(
                f"task {request.task_id!r} is not in DAG {request.dag_run.dag_id!r}",
                type="TaskNotFound",
                non_retryable=True,
            ) from err
