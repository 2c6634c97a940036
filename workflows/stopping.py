"""Ending a DAG run before Airflow finished it: cancelled from outside, or past its dagrun_timeout.

Both stop the run the same way: Airflow's rules decide what its task instances become, then every
running try is cancelled and waited for, so a task is dead before the run is declared over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from datetime import timedelta
from enum import Enum
from typing import Any, TypeVar

from temporalio import workflow

T = TypeVar("T")


class RunStop(Enum):
    """Why a run ended early; a timeout's value is the reason Airflow gives the failure callback."""

    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    def error(self, dagrun_timeout: timedelta | None) -> str:
        if self is RunStop.CANCELLED:
            return "cancelled: the run was cancelled while it ran"
        return f"timed out: the run took longer than its dagrun_timeout ({dagrun_timeout})"


async def despite_cancellation(step: Awaitable[T]) -> T:
    """Run ``step`` to its end even if the workflow is cancelled meanwhile.

    Used for what a run does once its outcome is decided (stopping tries, publishing the run
    event): a cancellation that arrives then has nothing left to change, so it is absorbed.
    """
    task = asyncio.ensure_future(step)
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError:
            workflow.logger.info("cancellation arrived while the run was already ending")
    return task.result()


def cancel_activities(activities: Iterable[workflow.ActivityHandle[Any]]) -> None:
    """Ask every activity to stop.

    Tries are started with WAIT_CANCELLATION_COMPLETED: each ends only once its worker reported
    the task stopped (or it finished first, or its timeouts gave up on it).
    """
    for activity in list(activities):
        activity.cancel()
