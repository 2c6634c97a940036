"""What Airflow's execution API writes into the run's database when a try defers, or ends otherwise."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.trigger import Trigger
    from sqlalchemy.orm import Session

    from schemas.runs import TaskState, TaskTryResult


def record_try_end(session: Session, ti: TaskInstance, result: TaskTryResult, now: datetime) -> None:
    """What Airflow's execution API stores besides the state: a deferral's trigger, or that none is pending."""
    deferral = result.deferral
    if result.state is not TaskState.DEFERRED or deferral is None:
        # Airflow clears them when a try ends any other way, so no retry picks them up.
        ti.next_method = None
        ti.next_kwargs = None
        return
    trigger = Trigger(classpath=deferral.classpath, kwargs={})
    # As the API server stores kwargs the worker already serialized (unencrypted JSON).
    trigger.encrypted_kwargs = json.dumps(deferral.trigger_kwargs)
    session.add(trigger)
    session.flush()
    ti.trigger = trigger
    ti.next_method = deferral.next_method
    ti.next_kwargs = deferral.next_kwargs
    ti.trigger_timeout = (
        now + timedelta(seconds=deferral.trigger_timeout_seconds) if deferral.trigger_timeout_seconds else None
    )
