"""Run the callbacks of one Airflow callback request, inside a task pool process.

Airflow runs DAG callbacks, and the task callbacks of a try whose runner never reported, in its
DAG processor: out of the scheduler, in a process that parsed the DAG file. A pool process is
that here: callbacks are user code, so they get the same isolation as task tries. The context
each callback receives is built the way ``airflow.dag_processing.processor`` builds it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from airflow.callbacks.callback_requests import DagCallbackRequest, TaskCallbackRequest
from airflow.sdk.exceptions import TaskNotFound
from airflow.utils.state import TaskInstanceState

from activities.task_process import environment_restored, get_dag
from airflow_adapter.task_runtime import run_context, runtime_task_instance

log = structlog.get_logger(logger_name="callbacks")


def run_callbacks(request: DagCallbackRequest | TaskCallbackRequest) -> list[str]:
    """Run every callback the request names; return the kind of each one that raised."""
    if isinstance(request, DagCallbackRequest):
        kind, callbacks, context = _dag_callbacks(request)
    else:
        kind, callbacks, context = _task_callbacks(request)
    failed = []
    with environment_restored():
        for callback in callbacks:
            log.info("running %s", kind, callback=_name(callback), run_id=context["run_id"], reason=request.msg)
            try:
                callback(context)
            except Exception:
                log.exception("callback failed; the outcome stays as it was", kind=kind, callback=_name(callback))
                failed.append(kind)
    return failed


def _dag_callbacks(request: DagCallbackRequest) -> tuple[str, list[Callable], dict[str, Any]]:
    dag = get_dag(request.dag_id)
    kind = "on_failure_callback" if request.is_failure_callback else "on_success_callback"
    context: dict[str, Any] = {"dag": dag, "run_id": request.run_id, "reason": request.msg}
    from_server = request.context_from_server
    if from_server is not None and from_server.last_ti is not None:
        try:
            task = dag.get_task(from_server.last_ti.task_id)
        except TaskNotFound:
            # Airflow too runs the callback with the minimal context when the task is gone.
            log.warning("the run's last task is not in the DAG any more", task_id=from_server.last_ti.task_id)
        else:
            ti = runtime_task_instance(
                context_from_server=run_context(dag_run=from_server.dag_run, max_tries=task.retries),
                **from_server.last_ti.model_dump(exclude_unset=True),
                task=task,
            )
            context = ti.get_template_context()
            context["reason"] = request.msg
    return kind, _as_list(getattr(dag, kind)), context


def _task_callbacks(request: TaskCallbackRequest) -> tuple[str, list[Callable], dict[str, Any]]:
    task = get_dag(request.ti.dag_id).get_task(request.ti.task_id)
    retrying = request.task_callback_type is TaskInstanceState.UP_FOR_RETRY
    kind = "on_retry_callback" if retrying else "on_failure_callback"
    from_server = request.context_from_server
    ti = runtime_task_instance(
        context_from_server=from_server,
        **request.ti.model_dump(exclude_unset=True),
        task=task,
        max_tries=from_server.max_tries if from_server else None,
    )
    return kind, _as_list(getattr(task, kind)), ti.get_template_context()


def _as_list(callbacks: Callable | list[Callable] | None) -> list[Callable]:
    if callbacks is None:
        return []
    return list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]


def _name(callback: Callable) -> str:
    return getattr(callback, "__name__", type(callback).__name__)
