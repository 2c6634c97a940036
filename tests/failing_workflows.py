"""Test-only workflows whose workflow tasks fail, each in one of the ways a worker must report."""

from __future__ import annotations

import threading

from temporalio import workflow

# Holds HoldsItsThread's activation until the test sets it.
RELEASE = threading.Event()


@workflow.defn(name="test-raises-in-workflow-code")
class RaisesInWorkflowCode:
    """Sandboxed, like the schedule and backfill workflows: a bug fails every workflow task."""

    @workflow.run
    async def run(self) -> None:
        raise TypeError("a bug in workflow code")


@workflow.defn(name="test-holds-its-thread", sandboxed=False)
class HoldsItsThread:
    """Unsandboxed, like the DAG-run workflow: blocks its thread past the deadlock detector until released."""

    @workflow.run
    async def run(self) -> None:
        RELEASE.wait()
