"""One log line per event, the same way in the bridge and the worker.

Everything goes through the standard library's root handler with a structlog formatter, so
stdlib loggers (aiokafka, temporalio, ours) and structlog loggers (Airflow's) render alike:
logfmt ``key=value`` pairs for people at a terminal, or one JSON object per line for a log
pipeline. Lines about a DAG run carry ``dag_id`` and ``run_id``, lines about a task try also
``task_id``, ``map_index`` and ``try_number``; these come from the Temporal context of the
activity or workflow that logs, so call sites do not have to repeat them.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog
from temporalio import activity, workflow

from schemas.ids import TryId, parse_dag_run_workflow_id
from schemas.names import RUN_TASK_TRY_ACTIVITY
from schemas.settings import Settings

_FIRST_KEYS = ["timestamp", "level", "logger", "event", "dag_id", "run_id", "task_id", "map_index", "try_number"]


def _dag_run_fields(workflow_id: str | None) -> dict[str, str]:
    parsed = parse_dag_run_workflow_id(workflow_id) if workflow_id else None
    return {} if parsed is None else {"dag_id": parsed[0], "run_id": parsed[1]}


def _temporal_context(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    """Turn the Temporal SDK's ``temporal_activity``/``temporal_workflow`` extras into dagbridge's keys."""
    details = event.pop("temporal_activity", None)
    if isinstance(details, dict):
        event.update(_dag_run_fields(details.get("workflow_id")))
        event["activity"] = details.get("activity_type")
        event["attempt"] = details.get("attempt")
        if details.get("activity_type") == RUN_TASK_TRY_ACTIVITY:
            try_id = TryId.parse_activity_id(str(details.get("activity_id", "")))
            if try_id is not None:
                event.update(task_id=try_id.task_id, map_index=try_id.map_index, try_number=try_id.try_number)
                if try_id.reschedule_count:
                    event["poke"] = try_id.reschedule_count + 1
    details = event.pop("temporal_workflow", None)
    if isinstance(details, dict):
        event.update(_dag_run_fields(details.get("workflow_id")))
    return event


def configure_logging(settings: Settings) -> None:
    """Install the process-wide log format; in the worker, call it after Airflow is imported.

    Airflow configures logging when it is imported and would otherwise replace this.
    """
    if settings.log_format == "json":
        # Task processes log through Airflow's own configuration; this makes it JSON lines too.
        # They are spawned later and inherit the environment.
        os.environ["AIRFLOW__LOGGING__JSON_LOGS"] = "True"
        renderer: structlog.typing.Processor = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.processors.LogfmtRenderer(key_order=_FIRST_KEYS, drop_missing=True)
    # The SDK would otherwise append its context as a dict to every message.
    activity.logger.activity_info_on_message = False
    workflow.logger.workflow_info_on_message = False

    pre_chain: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        _temporal_context,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # A traceback becomes one escaped string value: still one line per event.
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    structlog.configure(
        processors=[
            *pre_chain,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
