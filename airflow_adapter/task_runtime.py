"""The parts of Airflow's task runner dagbridge reaches past its public API.

A try runs in a pool process, not under Airflow's supervisor, so the ``RuntimeTaskInstance`` the
supervisor would build from its startup message is built here, with the run context the API
server would have sent (a private field of the model). And the runner only logs a task callback
that raised; the log event is how dagbridge counts it.
"""

from __future__ import annotations

from typing import Any

from airflow.sdk.api.datamodels._generated import TIRunContext
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

RUNTIME_TASK_INSTANCE = "airflow.sdk.execution_time.task_runner.RuntimeTaskInstance"
CONTEXT_FROM_SERVER = "_ti_context_from_server"
TASK_CALLBACKS = "airflow.sdk.execution_time.task_runner._run_task_state_change_callbacks"
# What Airflow's runner logs (with the callback's ``kind``) when a task callback raised.
FAILED_CALLBACK_EVENT = "Failed to run task callback"


def runtime_task_instance(*, context_from_server: TIRunContext | None, **fields: Any) -> RuntimeTaskInstance:
    """A task instance as Airflow's runner holds it, built without validation from ``fields``.

    ``context_from_server`` is what the execution API returns when a try starts (the DAG run,
    ``max_tries``...): the runner's template context reads it.
    """
    values: dict[str, Any] = {**fields, CONTEXT_FROM_SERVER: context_from_server}
    return RuntimeTaskInstance.model_construct(**values)


def run_context(**fields: Any) -> TIRunContext:
    """The execution API's answer to a starting try, built without validation."""
    return TIRunContext.model_construct(**fields)


class CallbackFailureLog:
    """The runner's logger, noting each task callback the runner reports as failed.

    Airflow's runner catches an exception from a task callback and only logs it (the try's
    outcome must not change); this is where dagbridge learns of it, to count it.
    """

    def __init__(self, log: Any) -> None:
        self._log = log
        self.failed: list[str] = []

    def exception(self, event: str, *args: Any, **kw: Any) -> Any:
        if event == FAILED_CALLBACK_EVENT:
            self.failed.append(kw["kind"])
        return self._log.exception(event, *args, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)
