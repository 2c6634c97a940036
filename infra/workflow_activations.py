"""Keep the SDK from interrupting a slow workflow activation with an exception thrown into its thread.

The SDK's deadlock detection waits 2 s for an activation, then fails the workflow task and raises
``_InterruptDeadlockError`` inside the activation's thread (``PyThreadState_SetAsyncExc``). That
exception lands between any two bytecodes: after ``logging.Handler.acquire()`` and before the
``try`` that releases it, inside SQLAlchemy's pool, inside an import. A lock left held that way is
never released, and every later activation that logs blocks on it for good: the worker still
polls, but each workflow task it takes times out, with no log line ever again. A burst of runs
into a cold worker makes slow activations likely (Airflow's first scheduling passes of many runs
share the GIL), which is how 60 triggers wedged a worker.

A slow activation is not a deadlock here: the DAG-run workflow is deterministic code that always
ends. So the worker lets every activation finish; workflow task timeouts on the server still
reassign one that takes too long.
"""

from __future__ import annotations

from temporalio.worker import Worker


def never_interrupt_activations(worker: Worker) -> None:
    """Turn off the SDK's deadlock interruption for this worker's workflows.

    Raises ``RuntimeError`` if the SDK no longer has the attribute this relies on (pinned
    temporalio 1.35), so an upgrade that changes it fails at start, not under load.
    """
    workflow_worker = getattr(worker, "_workflow_worker", None)
    if workflow_worker is None or not hasattr(workflow_worker, "_deadlock_timeout_seconds"):
        raise RuntimeError("temporalio changed: cannot turn off the deadlock interruption of workflow activations")
    # None: activations are awaited without a timeout, so none is ever interrupted.
    workflow_worker._deadlock_timeout_seconds = None
