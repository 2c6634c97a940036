"""Schedule tests write their DAG files into a folder of their own and run a worker on it.

The session worker manages no schedules; each schedule test's worker syncs its own folder every
half second, on its own task queue, so tests never see each other's schedules.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from airflow.dag_processing.dagbag import DagBag
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from dagbridge.worker import run_worker
from schemas.ids import dag_run_workflow_id, schedule_workflow_id
from schemas.names import DAG_RUN_WORKFLOW
from schemas.runs import DagRunRequest
from schemas.settings import Settings

T = TypeVar("T")

DAG_FILE = """\
import datetime
from pathlib import Path

import pendulum
from airflow.sdk import (
    DAG, CronDataIntervalTimetable, CronTriggerTimetable, DeltaDataIntervalTimetable, DeltaTriggerTimetable,
    MultipleCronTriggerTimetable, task,
)
from airflow.timetables.events import EventsTimetable
from alternating_timetable import AlternatingTimetable

with DAG(
    {dag_id!r},
    schedule={schedule},
    start_date={start!r},
    end_date={end!r},
    catchup={catchup!r},
    max_active_runs={max_active_runs!r},
    is_paused_upon_creation={paused!r},
):
    @task
    def work(run_id=None):
        {body}

    work()
"""


def write_dag(
    folder: Path,
    dag_id: str,
    schedule: str,
    start: datetime,
    end: datetime | None = None,
    *,
    catchup: bool = True,
    max_active_runs: int = 16,
    paused: bool = False,
    body: str = "return run_id",
) -> Path:
    """Write a DAG file; ``schedule`` is Python source, e.g. ``"datetime.timedelta(seconds=2)"``."""
    path = folder / f"{dag_id}.py"
    path.write_text(
        DAG_FILE.format(
            dag_id=dag_id,
            schedule=schedule,
            start=start,
            end=end,
            catchup=catchup,
            max_active_runs=max_active_runs,
            paused=paused,
            body=body,
        )
    )
    return path


def load_dag(path: Path, dag_id: str) -> Any:
    """Airflow's own DAG object from the file at ``path``, imported from a private copy.

    A worker of the test may be importing the same file at this moment. Two DagBags of one process
    importing one file at once race on its module in ``sys.modules`` (Airflow names the module after
    the file's path), which can leave one of them with no DAG and no import error; a copy under
    another path is another module.
    """
    with tempfile.TemporaryDirectory(prefix="dagbridge-oracle-") as folder:
        copy = Path(folder) / path.name
        shutil.copyfile(path, copy)
        bag = DagBag(dag_folder=str(copy), safe_mode=False)
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def floor_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def now() -> datetime:
    return datetime.now(UTC)


async def eventually(check: Callable[[], Awaitable[T]], what: str, timeout: float = 180) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while not (result := await check()):
                await asyncio.sleep(0.25)
            return result
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def run_ids_of(client: Client, dag_id: str) -> list[str]:
    """Every DAG-run workflow of the DAG (visibility; may lag behind a start)."""
    prefix = dag_run_workflow_id(dag_id, "")
    query = f"WorkflowType = '{DAG_RUN_WORKFLOW}' AND WorkflowId STARTS_WITH '{prefix}'"
    return sorted({execution.id.removeprefix(prefix) async for execution in client.list_workflows(query)})


async def run_request(client: Client, dag_id: str, run_id: str) -> DagRunRequest:
    """The request the run's workflow was started with (its first execution)."""
    history = await client.get_workflow_handle(dag_run_workflow_id(dag_id, run_id)).fetch_history()
    # Continue-as-new keeps the ID; the first event of the chain's last execution carries a resume
    # snapshot too, but the fields compared here never change.
    payloads = history.events[0].workflow_execution_started_event_attributes.input.payloads
    [request] = await client.data_converter.decode(payloads, [DagRunRequest])
    return request


async def run_closed(client: Client, dag_id: str, run_id: str) -> bool:
    try:
        description = await client.get_workflow_handle(dag_run_workflow_id(dag_id, run_id)).describe()
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return description.close_time is not None


async def end_schedule(client: Client, dag_id: str) -> None:
    """Terminate the test's schedule so it does not outlive the test on the shared server."""
    try:
        await client.get_workflow_handle(schedule_workflow_id(dag_id)).terminate("test over")
    except RPCError as err:
        if err.status is not RPCStatusCode.NOT_FOUND:
            raise


@asynccontextmanager
async def schedule_worker(settings: Settings, client: Client, dag_ids: list[str]) -> AsyncIterator[None]:
    """A worker on the test's folder; on the way out the DAGs' schedules and unfinished runs are ended
    first (terminated), so the worker never stops under a run still talking to it."""
    stop, ready = asyncio.Event(), asyncio.Event()
    running = asyncio.create_task(run_worker(settings, stop, ready))
    await asyncio.wait({running, asyncio.create_task(ready.wait())}, return_when=asyncio.FIRST_COMPLETED)
    if running.done():
        running.result()
    try:
        yield
    finally:
        for dag_id in dag_ids:
            await end_schedule(client, dag_id)
            await end_runs(client, dag_id)
        stop.set()
        await running


async def end_runs(client: Client, dag_id: str) -> None:
    prefix = dag_run_workflow_id(dag_id, "")
    query = f"WorkflowType = '{DAG_RUN_WORKFLOW}' AND WorkflowId STARTS_WITH '{prefix}' AND ExecutionStatus = 'Running'"
    async for execution in client.list_workflows(query):
        try:
            await client.get_workflow_handle(execution.id).terminate("test over")
        except RPCError as err:
            if err.status is not RPCStatusCode.NOT_FOUND:
                raise


def schedule_settings(base: Settings, folder: Path, task_queue: str) -> Settings:
    return base.model_copy(
        update={
            "task_queue": task_queue,
            "dags_folder": folder,
            "task_processes": 1,
            "schedule_sync_seconds": 0.5,
        }
    )
