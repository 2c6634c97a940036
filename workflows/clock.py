"""Point Airflow's clock at ``workflow.now()`` whenever it is read from workflow code.

Airflow's scheduling logic reads ``timezone.utcnow()`` (queued_at, start/end dates, retry
eligibility). Inside a workflow that must be the deterministic workflow time, or a replay would
see different values. Many workflows share a worker and run interleaved on different threads,
so there is no global "current time" to set: the patched function asks the SDK whether the
caller is running inside a workflow and, if so, which one.
"""

from __future__ import annotations

import datetime as dt
import threading

from temporalio import workflow

_installed = False
_install_lock = threading.Lock()


def airflow_utcnow() -> dt.datetime:
    if workflow.in_workflow():
        return workflow.now()
    return dt.datetime.now(tz=dt.UTC)


def install_workflow_clock() -> None:
    """Replace Airflow's ``utcnow`` everywhere scheduler-side code reaches it. Idempotent."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from airflow._shared.timezones import timezone
        from airflow.models import import_all_models
        from airflow.models.base import Base
        from airflow.serialization import serialized_objects

        original = timezone.utcnow
        timezone.utcnow = airflow_utcnow
        # Modules that imported the function by name hold their own reference.
        if serialized_objects.utcnow is original:
            serialized_objects.utcnow = airflow_utcnow

        # Column defaults (created_at, updated_at, ...) captured the function at class creation.
        import_all_models()
        for table in Base.metadata.tables.values():
            for column in table.columns:
                for default in (column.default, column.onupdate):
                    if getattr(getattr(default, "arg", None), "__wrapped__", None) is original:
                        default.arg = lambda _ctx: airflow_utcnow()
        _installed = True
