"""Workflow tasks that fail on this worker: counted by error type and logged with the run's IDs.

A workflow task that fails (an exception in workflow code, an activation that holds its thread
past the SDK's deadlock detector, a completion that cannot be encoded) is retried by Temporal
for ever, and the run does not move until one attempt succeeds: nothing ends up in its result.
The SDK reports these failures only in its log, so this handler, on the SDK's two loggers, turns
their records into ``dagbridge_workflow_task_failures_total{error_type}`` and one warning naming
the run. It reads the records' structured attributes (the ``temporal_workflow`` extra and error
marker of a failure in workflow code; the run-ID argument and the exception of a failure around
it), never their text. For the latter, which carry only Temporal's run ID, the workflow ID comes
from the handler's workflow runners (pass them to the ``Worker``): they note each workflow they
instantiate.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import temporalio.workflow
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    UnsandboxedWorkflowRunner,
    WorkflowInstance,
    WorkflowInstanceDetails,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities import metrics

log = logging.getLogger(__name__)

# Failures inside workflow code: the instance's logger marks them with this extra.
_INSTANCE_LOGGER = "temporalio.worker._workflow_instance"
_ERROR_MARK = "__temporal_error_identifier"
_WORKFLOW_TASK_FAILURE = "WorkflowTaskFailure"
# Failures around workflow code (the deadlock detector, decoding, encoding): the worker's logger
# logs them with these messages, the run ID as argument and the exception attached.
_WORKER_LOGGER = "temporalio.worker._workflow"
_TASK_FAILING_MESSAGES = frozenset(
    {
        "Failed handling activation on workflow with run ID %s",
        "Failed encoding completion on workflow with run ID %s",
    }
)
# Workflows remembered for naming a failure by its Temporal run ID: the most recently started.
_REMEMBERED_RUNS = 10_000


@dataclass(frozen=True)
class FailedWorkflowTask:
    error_type: str
    error: str
    workflow_id: str | None
    workflow_type: str | None
    temporal_run_id: str


@functools.cache
def workflow_task_failures() -> WorkflowTaskFailures:
    """The process's one handler, installed on the SDK's loggers at the first call.

    One per process, not per worker: the loggers are the process's, and a second handler would
    count every failure twice (tests run several workers in one process).
    """
    failures = WorkflowTaskFailures()
    for name in (_INSTANCE_LOGGER, _WORKER_LOGGER):
        logger = logging.getLogger(name)
        logger.addHandler(failures)
        # The metric must not depend on DAGBRIDGE_LOG_LEVEL: a failing workflow task is worth a
        # warning at any level.
        if not logger.isEnabledFor(logging.WARNING):
            logger.setLevel(logging.WARNING)
    return failures


class WorkflowTaskFailures(logging.Handler):
    """Counts and reports the workflow tasks that fail in this process (see ``workflow_task_failures``)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._workflows: OrderedDict[str, tuple[str, str]] = OrderedDict()
        # The Worker arguments that run workflows as by default, noting the IDs of each one started.
        self.workflow_runner: WorkflowRunner = _NotingRunner(SandboxedWorkflowRunner(), self)
        self.unsandboxed_workflow_runner: WorkflowRunner = _NotingRunner(UnsandboxedWorkflowRunner(), self)

    def note(self, info: temporalio.workflow.Info) -> None:
        self._workflows[info.run_id] = (info.workflow_id, info.workflow_type)
        self._workflows.move_to_end(info.run_id)
        while len(self._workflows) > _REMEMBERED_RUNS:
            self._workflows.popitem(last=False)

    def emit(self, record: logging.LogRecord) -> None:
        failure = self._failure(record)
        if failure is None:
            return
        metrics.WORKFLOW_TASK_FAILURES.labels(failure.error_type).inc()
        log.warning(
            "workflow task of %s %s (Temporal run %s) failed with %s: %s; "
            "Temporal retries it, and the run does not progress until one attempt succeeds",
            failure.workflow_type or "workflow",
            failure.workflow_id or "(ID unknown)",
            failure.temporal_run_id,
            failure.error_type,
            failure.error,
            # infra.logs turns this into the run's dag_id and run_id.
            extra={"temporal_workflow": {"workflow_id": failure.workflow_id}},
        )

    def _failure(self, record: logging.LogRecord) -> FailedWorkflowTask | None:
        if record.exc_info is None or record.exc_info[1] is None:
            return None
        error = record.exc_info[1]
        if record.name == _INSTANCE_LOGGER and getattr(record, _ERROR_MARK, None) == _WORKFLOW_TASK_FAILURE:
            details = getattr(record, "temporal_workflow", None) or {}
            return FailedWorkflowTask(
                _error_type(error),
                " ".join(str(error).split()),
                details.get("workflow_id"),
                details.get("workflow_type"),
                str(details.get("run_id")),
            )
        if record.name == _WORKER_LOGGER and record.msg in _TASK_FAILING_MESSAGES and isinstance(record.args, tuple):
            if isinstance(error, ApplicationError) and error.non_retryable:
                return None  # the SDK fails the workflow, not the task: the run ends and says why
            temporal_run_id = str(record.args[0])
            workflow_id, workflow_type = self._workflows.get(temporal_run_id, (None, None))
            return FailedWorkflowTask(
                _error_type(error), " ".join(str(error).split()), workflow_id, workflow_type, temporal_run_id
            )
        return None


def _error_type(error: BaseException) -> str:
    # The SDK's deadlock error is private (_DeadlockError): its public name is the type.
    return type(error).__name__.lstrip("_")


class _NotingRunner(WorkflowRunner):
    def __init__(self, inner: WorkflowRunner, failures: WorkflowTaskFailures) -> None:
        self._inner = inner
        self._failures = failures

    def prepare_workflow(self, defn: temporalio.workflow._Definition) -> None:
        self._inner.prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        self._failures.note(det.info)
        return self._inner.create_instance(det)

    def set_worker_level_failure_exception_types(self, types: Sequence[type[BaseException]]) -> None:
        self._inner.set_worker_level_failure_exception_types(types)
