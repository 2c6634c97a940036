"""Point Airflow's clock at ``workflow.now()`` whenever it is read from workflow code.

Airflow's scheduling logic reads ``timezone.utcnow()`` (queued_at, start/end dates, retry
eligibility). Inside a workflow that must be the deterministic workflow time, or a replay would
see different values. Many workflows share a worker and run interleaved on different threads,
so there is no global "current time" to set: the patched function asks the SDK whether the
caller is running inside a workflow and, if so, which one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from temporalio import workflow

from airflow_adapter.errors import AirflowMismatch


def airflow_utcnow() -> dt.datetime:
    """The workflow's clock inside a workflow, the wall clock anywhere else."""
    if workflow.in_workflow():
        return workflow.now()
    return dt.datetime.now(tz=dt.UTC)


def _column_default(_context: Any) -> dt.datetime:
    return airflow_utcnow()


def install_workflow_clock() -> Callable[[], dt.datetime]:
    """Replace Airflow's ``utcnow`` everywhere scheduler-side code reaches it; return the original.

    Raises ``AirflowMismatch`` when a place that held Airflow's function holds something else, or
    when no column default uses it any more: either would leave the wall clock in workflow code.
    """
    from airflow._shared.timezones import timezone
    from airflow.models import import_all_models
    from airflow.models.base import Base
    from airflow.serialization import serialized_objects

    original: Callable[[], dt.datetime] = timezone.utcnow
    # A module that imported the function by name holds its own reference.
    if serialized_objects.utcnow is not original:  # type: ignore[attr-defined]  # imported there, not exported
        raise AirflowMismatch("airflow.serialization.serialized_objects.utcnow is not timezone.utcnow")
    timezone.utcnow = airflow_utcnow
    serialized_objects.utcnow = airflow_utcnow  # type: ignore[attr-defined]  # imported there, not exported

    # Column defaults (created_at, updated_at, ...) captured the function at class creation.
    import_all_models()  # type: ignore[no-untyped-call]  # Airflow leaves it unannotated
    replaced = 0
    for table in Base.metadata.tables.values():
        for column in table.columns:
            for default in (column.default, column.onupdate):
                if getattr(getattr(default, "arg", None), "__wrapped__", None) is original:
                    default.arg = _column_default
                    replaced += 1
    if not replaced:
        raise AirflowMismatch("no column default of Airflow's models calls timezone.utcnow")
    return original
