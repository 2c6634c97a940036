"""What the adapter expects of Airflow: each internal name, and the shape it was written against.

Signatures are compared without annotations (Airflow's are strings that change with its typing
style, not its behaviour): parameter names, kinds and defaults are what the adapter's calls and
replacements depend on.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from dataclasses import dataclass
from typing import Any

from airflow_adapter.asset_evaluation import RESOLVE_ASSET_ALIAS, RESOLVE_ASSET_REF
from airflow_adapter.dag_relations import DOWNSTREAM_WEIGHT, FLAT_RELATIVE_IDS, SETUPS_AND_TEARDOWNS, UPSTREAM_WEIGHT
from airflow_adapter.dag_run_hooks import ARE_PREMATURE_TIS, GET_READY_TIS, GET_TASK_INSTANCES, REVISE_MAP_INDEXES
from airflow_adapter.execution_api import ASSET_MODEL_FIELDS
from airflow_adapter.expansion import EXPAND_MAPPED_TASK, GET_MAPPED_TI_COUNT
from airflow_adapter.schedules import BACKFILL_INFO_LIST, TIME_RESTRICTION, VALIDATE_BACKFILL_PARAMS
from airflow_adapter.task_runtime import (
    CONTEXT_FROM_SERVER,
    FAILED_CALLBACK_EVENT,
    RUNTIME_TASK_INSTANCE,
    TASK_CALLBACKS,
)

UTCNOW = "airflow._shared.timezones.timezone.utcnow"
DECRYPT_TRIGGER_KWARGS = "airflow.models.trigger.Trigger._decrypt_kwargs"
HANDLE_EVENT_SUBMIT = "airflow.models.trigger.handle_event_submit"


@dataclass(frozen=True)
class Signature:
    """A function or method the adapter replaces, hooks or calls: it must take these parameters."""

    name: str
    parameters: str

    def problem(self, originals: dict[str, Any]) -> str | None:
        target = originals[self.name] if self.name in originals else resolve(self.name)
        if target is None:
            return f"{self.name} does not exist"
        found = unannotated_signature(target)
        if found != self.parameters:
            return f"{self.name} takes {found}, the adapter was written for {self.parameters}"
        return None


@dataclass(frozen=True)
class PrivateField:
    """A private attribute of a pydantic model the adapter sets when it builds one."""

    model: str
    field: str

    def problem(self, originals: dict[str, Any]) -> str | None:
        model = resolve(self.model)
        if self.field not in getattr(model, "__private_attributes__", {}):
            return f"{self.model} has no private field {self.field}"
        return None


@dataclass(frozen=True)
class Property:
    """A property (or cached property) of a class the adapter reads."""

    name: str

    def problem(self, originals: dict[str, Any]) -> str | None:
        target = resolve(self.name)
        if not isinstance(target, property | functools.cached_property):
            return f"{self.name} is not a property" if target is not None else f"{self.name} does not exist"
        return None


@dataclass(frozen=True)
class ModelFields:
    """A pydantic model the adapter builds: it has these fields and requires no other."""

    model: str
    fields: tuple[str, ...]

    def problem(self, originals: dict[str, Any]) -> str | None:
        model = resolve(self.model)
        declared = getattr(model, "model_fields", None)
        if declared is None:
            return f"{self.model} does not exist"
        missing = [name for name in self.fields if name not in declared]
        required = [name for name, field in declared.items() if field.is_required() and name not in self.fields]
        if not missing and not required:
            return None
        changes = ([f"has no field {', '.join(missing)}"] if missing else []) + (
            [f"requires {', '.join(required)}"] if required else []
        )
        return f"{self.model} {' and '.join(changes)}: the adapter fills {', '.join(self.fields)}"


@dataclass(frozen=True)
class LogEvent:
    """A log event of Airflow's the adapter recognises by its text."""

    function: str
    event: str

    def problem(self, originals: dict[str, Any]) -> str | None:
        function = resolve(self.function)
        if function is None or f'"{self.event}"' not in inspect.getsource(function):
            return f"{self.function} no longer logs {self.event!r}"
        return None


Expectation = Signature | PrivateField | Property | ModelFields | LogEvent

EXPECTATIONS: tuple[Expectation, ...] = (
    # The workflow clock (clock.py).
    Signature(UTCNOW, "()"),
    # Mapped tasks expanded a slice at a time (expansion.py).
    Signature(GET_MAPPED_TI_COUNT, "(task, run_id, *, session)"),
    Signature(EXPAND_MAPPED_TASK, "(task, run_id, *, session)"),
    # A run's scheduling pass focused on what changed (dag_run_hooks.py).
    Signature(GET_READY_TIS, "(self, schedulable_tis, finished_tis, session)"),
    Signature(ARE_PREMATURE_TIS, "(self, unfinished_tis, finished_tis, session)"),
    Signature(REVISE_MAP_INDEXES, "(self, task, *, dag_version_id, session)"),
    Signature(GET_TASK_INSTANCES, "(self, state=None, *, session=None)"),
    # Relatives and priority weights of a deserialized DAG, computed once (dag_relations.py).
    Signature(DOWNSTREAM_WEIGHT, "(self, ti)"),
    Signature(UPSTREAM_WEIGHT, "(self, ti)"),
    Signature(FLAT_RELATIVE_IDS, "(self, *, upstream=False, depth=None)"),
    Signature(SETUPS_AND_TEARDOWNS, "(self)"),
    # A try run by Airflow's runner outside its supervisor (task_runtime.py).
    PrivateField(RUNTIME_TASK_INSTANCE, CONTEXT_FROM_SERVER),
    Signature("airflow.sdk.execution_time.task_runner.run", "(ti, context, log)"),
    Signature("airflow.sdk.execution_time.task_runner.finalize", "(ti, state, context, log, error=None)"),
    Signature("airflow.sdk.execution_time.supervisor.set_supervisor_comms", "(temp_comms)"),
    LogEvent(TASK_CALLBACKS, FAILED_CALLBACK_EVENT),
    # Deferred tasks recorded and resumed as Airflow's triggerer does (workflows/deferral.py).
    Signature(DECRYPT_TRIGGER_KWARGS, "(encrypted_kwargs)"),
    Signature(HANDLE_EVENT_SUBMIT, "(event, *, task_instance, session)"),
    # Backfills laid out and schedules fingerprinted by Airflow's code (schedules.py).
    Signature(VALIDATE_BACKFILL_PARAMS, "(dag, reverse, from_date, to_date, reprocess_behavior, dag_run_conf=None)"),
    Signature(BACKFILL_INFO_LIST, "(*, from_date, to_date, reverse, dag)"),
    Property(TIME_RESTRICTION),
    # Asset conditions evaluated without Airflow's database (asset_evaluation.py).
    Signature(RESOLVE_ASSET_REF, "(self, o)"),
    Signature(RESOLVE_ASSET_ALIAS, "(self, o)"),
    # Answers to a task's asset queries, built as Airflow's execution API builds them (execution_api.py).
    *(ModelFields(model, fields) for model, fields in ASSET_MODEL_FIELDS.items()),
)


def problems(expectations: tuple[Expectation, ...], originals: dict[str, Any]) -> list[str]:
    """What does not hold of ``expectations``; ``originals`` stand in for names already replaced."""
    return [problem for expectation in expectations if (problem := expectation.problem(originals)) is not None]


def resolve(dotted: str) -> Any:
    """The object a dotted name points at (module, then attributes), or None if it is missing."""
    parts = dotted.split(".")
    for split in range(len(parts), 0, -1):
        try:
            target: Any = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attribute in parts[split:]:
            target = getattr(target, attribute, None)
            if target is None:
                return None
        return target
    return None


def unannotated_signature(function: Any) -> str:
    signature = inspect.signature(function)
    return str(
        signature.replace(
            parameters=[
                parameter.replace(annotation=inspect.Parameter.empty) for parameter in signature.parameters.values()
            ],
            return_annotation=inspect.Signature.empty,
        )
    )
