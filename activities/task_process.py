"""Run one task try with Airflow's own task runner, inside a dedicated pool process.

Airflow's runner keeps per-task state in process globals (the supervisor channel, the current
context stack), installs a SIGTERM handler, and enforces ``execution_timeout`` with SIGALRM,
all of which need the main thread of a process that runs one task at a time. Pool processes
give exactly that, parse each DAG file once, and keep concurrent tries out of each other's way.
"""

from __future__ import annotations

import gc
import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from airflow.sdk.api.datamodels._generated import TIRunContext
from airflow.sdk.exceptions import AirflowTaskTerminated
from airflow.sdk.execution_time.comms import DeferTask, SucceedTask
from airflow.sdk.execution_time.supervisor import set_supervisor_comms
from airflow.sdk.execution_time.task_runner import finalize, run
from airflow.utils.state import TaskInstanceState

from activities.asset_events import emitted_asset_events
from activities.dag_loader import DagLoader
from activities.dag_run_triggers import DagRunTriggers
from activities.run_data import running_dag_run
from activities.supervisor_comms import InMemorySupervisorComms
from activities.task_log_capture import error_message, output_to, traceback_tail, write_streams_through
from airflow_adapter.task_runtime import CallbackFailureLog, runtime_task_instance
from schemas.runs import Deferral, TaskError, TaskState, TaskTryRequest, TaskTryResult
from schemas.settings import Settings


class _ThisProcess:
    """What a pool process knows: set once by ``init_task_process``, and the try it runs now."""

    def __init__(self) -> None:
        self.loader: DagLoader | None = None
        self.dag_runs: DagRunTriggers | None = None
        # The directory of the try this process runs. The try may run only while its permit file
        # exists: the worker removes it to stop the try, whether or not a process picked it up yet.
        self.current_try: Path | None = None


_this_process = _ThisProcess()

# How the worker asks a pool process to stop the try it runs. Not SIGTERM: that one belongs to
# Airflow's runner (it calls on_kill), and a signal meant for a try that already ended must not
# stop whatever try the process runs next.
STOP_SIGNAL = signal.SIGUSR1
PERMIT_FILE = "permit"
PID_FILE = "pid"


# Airflow's run ids and dag versions are UUIDs its runner only echoes back; derive them from
# the task instance so they are stable across retries of the same activity.
_NAMESPACE = uuid.UUID("0b8a7f53-6c1e-4c55-9b53-6d6a1f0c2a11")


def task_instance_id(dag_id: str, run_id: str, task_id: str, map_index: int, try_number: int) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, f"{dag_id}/{run_id}/{task_id}/{map_index}/{try_number}")


def dag_version_id(dag_id: str) -> uuid.UUID:
    return uuid.uuid5(_NAMESPACE, dag_id)


def init_task_process(settings: Settings) -> None:
    """Pool initializer: remember where the DAGs and Temporal are (importing this module imported Airflow)."""
    _this_process.loader = DagLoader(Path(settings.dags_folder))
    _this_process.dag_runs = DagRunTriggers(settings, _this_process.loader)
    signal.signal(STOP_SIGNAL, _stop_if_no_longer_permitted)
    write_streams_through()
    gc.collect()
    gc.freeze()


def warm_up() -> int:
    return os.getpid()


def get_dag(dag_id: str) -> Any:
    """The DAG as this process parsed it from the worker's dags folder."""
    assert _this_process.loader is not None, "init_task_process was not called"
    return _this_process.loader.get_dag(dag_id)


@contextmanager
def environment_restored() -> Iterator[None]:
    """User code may change the environment; the next try in this process must not see it."""
    environment = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(environment)


def _stop_if_no_longer_permitted(signum: int, frame: object) -> None:
    """Stop the current try the way Airflow's supervisor does: the operator's on_kill, then the end.

    Airflow's own SIGTERM handler only calls on_kill and leaves the rest to a SIGKILL that would
    take the whole pool down; raising AirflowTaskTerminated instead ends the task's code and keeps
    this process for the next try. The try is not finalized (see ``_run_task_try``).
    """
    if not _stopped():
        return
    on_term = signal.getsignal(signal.SIGTERM)
    if callable(on_term):
        on_term(signal.SIGTERM, frame)
    raise AirflowTaskTerminated("the try was stopped: its run ended or its activity timed out")


def _stopped() -> bool:
    current_try = _this_process.current_try
    return current_try is not None and not (current_try / PERMIT_FILE).exists()


def _claim(try_dir: Path) -> bool:
    """Announce this process as the one running the try; False if it was stopped before it started.

    The pid is written before the permit is checked, and the worker removes the permit before it
    reads the pid: either this check sees the stop, or the worker sees the pid and signals.
    """
    _this_process.current_try = try_dir
    try:
        (try_dir / PID_FILE).write_text(str(os.getpid()))
    except FileNotFoundError:
        return False
    return (try_dir / PERMIT_FILE).exists()


def run_task_try(request: TaskTryRequest, try_dir: str, log_file: str, log_header: str) -> TaskTryResult:
    """Run the try, everything it writes going to ``log_file`` (appended: pokes of one try share it)."""
    assert _this_process.dag_runs is not None, "init_task_process was not called"
    try:
        if not _claim(Path(try_dir)):
            raise AirflowTaskTerminated("the try was stopped before it started")
        # Parsed before the capture starts: the DagBag's lines about every file in the folder
        # belong to no try.
        get_dag(request.dag_run.dag_id)
        with output_to(Path(log_file), log_header):
            return _run_task_try(request)
    finally:
        _this_process.current_try = None
        # Airflow's handler holds this try's task: a later try's stop must not call its on_kill.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _run_task_try(request: TaskTryRequest) -> TaskTryResult:
    assert _this_process.dag_runs is not None
    dag = get_dag(request.dag_run.dag_id)
    task = dag.get_task(request.task_id)
    run_info = request.dag_run
    start_date = datetime.now(tz=UTC)
    ti_context = TIRunContext(
        dag_run=running_dag_run(run_info),
        max_tries=request.max_tries,
        should_retry=request.max_tries != 0 and request.try_number <= request.max_tries,
        start_date=start_date,
        task_reschedule_count=request.reschedule_count,
        # A resumed deferral: the runner calls the operator's resume_execution instead of execute.
        next_method=request.next_method,
        next_kwargs=request.next_kwargs,
    )
    ti = runtime_task_instance(
        context_from_server=ti_context,
        id=task_instance_id(run_info.dag_id, run_info.run_id, request.task_id, request.map_index, request.try_number),
        task_id=request.task_id,
        dag_id=run_info.dag_id,
        run_id=run_info.run_id,
        try_number=request.try_number,
        map_index=request.map_index,
        dag_version_id=dag_version_id(run_info.dag_id),
        queue=task.queue,
        task=task,
        max_tries=request.max_tries,
        start_date=start_date,
        state=TaskInstanceState.RUNNING,
    )

    comms = InMemorySupervisorComms(request, _this_process.dag_runs)
    log = CallbackFailureLog(
        structlog.get_logger(logger_name="task").bind(
            dag_id=run_info.dag_id, run_id=run_info.run_id, task_id=request.task_id, map_index=request.map_index
        )
    )
    with environment_restored(), set_supervisor_comms(comms):
        context = ti.get_template_context()
        state, _, error = run(ti, context, log)
        context["exception"] = error
        # A stopped try ends as under Airflow's supervisor, which kills the task after on_kill:
        # its runner never finalizes it, so its callbacks run from outside if at all.
        if not _stopped():
            finalize(ti, state, context, log, error)

    end_date = comms.end_date or ti.end_date or datetime.now(tz=UTC)
    return TaskTryResult(
        task_id=request.task_id,
        map_index=request.map_index,
        try_number=request.try_number,
        state=TaskState(state.value),
        start_date=start_date,
        end_date=end_date,
        error=(
            TaskError(type=type(error).__name__, message=error_message(error), traceback=traceback_tail(error))
            if error is not None
            else None
        ),
        xcoms=list(comms.pushed.values()),
        mapped_length=comms.mapped_length,
        skip_downstream=comms.skip_downstream,
        retry_delay_seconds=getattr(comms.outcome, "retry_delay_seconds", None),
        reschedule_date=getattr(comms.outcome, "reschedule_date", None),
        rendered_map_index=comms.rendered_map_index,
        deferral=_deferral(comms.outcome),
        failed_callbacks=log.failed,
        asset_events=emitted_asset_events(comms.outcome.task_outlets, comms.outcome.outlet_events, request, end_date)
        if isinstance(comms.outcome, SucceedTask)
        else [],
    )


def _deferral(outcome: object) -> Deferral | None:
    """What the runner's ``DeferTask`` asked Airflow's API to record, if the task deferred."""
    if not isinstance(outcome, DeferTask):
        return None
    assert isinstance(outcome.trigger_kwargs, dict), "dagbridge does not encrypt trigger kwargs"
    return Deferral(
        classpath=outcome.classpath,
        trigger_kwargs=outcome.trigger_kwargs,
        trigger_timeout_seconds=outcome.trigger_timeout.total_seconds() if outcome.trigger_timeout else None,
        next_method=outcome.next_method,
        next_kwargs=outcome.next_kwargs,
    )
