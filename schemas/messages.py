"""The Kafka contracts: trigger messages in, task and run events out (see DESIGN.md).

Identifier rules are Airflow's own, restated here so the bridge can reject a bad trigger
before it reaches Temporal, without importing Airflow. They are ASCII-only on purpose:
the JSON Schema files carry the same patterns, and ECMA-262 regexes (what most other
languages' validators use) have no Unicode ``\\w``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from schemas.ids import run_event_id, task_event_id
from schemas.runs import (
    AssetEventPayload,
    DagRunRequest,
    DagRunResult,
    RunOptions,
    RunType,
    TaskState,
    TaskTryRequest,
    TaskTryResult,
)

SCHEMA_VERSION: Literal[1] = 1
DEFAULT_MAX_CONF_BYTES = 64 * 1024
# A conf travels inside several payloads (the run's input, each try's input), and the JSON parser of
# the Temporal payload converter stops at 200 levels in all: a deeper conf would be accepted here and
# then be unreadable once inside a try's input. Real confs are a few levels deep.
MAX_CONF_DEPTH = 64
MAX_ID_LENGTH = 250  # Airflow's ID_LEN: the width of dag_id and run_id columns
KAFKA_RUN_ID_PREFIX = "kafka__"
# A DLQ header must stay small whatever the input was.
MAX_REASON_CHARS = 1000


def _no_double_dot(value: str) -> str:
    # Airflow blocks ".." in DAG and run IDs against path traversal (core.allow_double_dot_in_ids).
    if ".." in value:
        raise ValueError("must not contain '..'")
    return value


DagId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=r"^[A-Za-z0-9_.-]+$"),
    AfterValidator(_no_double_dot),
    Field(description="Airflow DAG ID: letters, digits, '_', '.', '-'; at most 250 characters; no '..'"),
]

# Airflow's default [scheduler] allowed_run_id_pattern.
_RUN_ID_PATTERN = r"^[A-Za-z0-9_.~:+-]+$"

RunId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=_RUN_ID_PATTERN),
    AfterValidator(_no_double_dot),
    Field(description="Airflow run ID: letters, digits, '_.~:+-'; at most 250 characters; no '..'"),
]

IdempotencyKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_ID_LENGTH - len(KAFKA_RUN_ID_PREFIX), pattern=_RUN_ID_PATTERN),
    AfterValidator(_no_double_dot),
    Field(description="Becomes the run ID 'kafka__<idempotency_key>' when run_id is absent: the same rules apply"),
]

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: Any) -> Any:
    # Pydantic alone would also take Unix timestamps and dates without an offset.
    if value is not None and not (isinstance(value, str) and _RFC3339.fullmatch(value)):
        raise ValueError("must be an RFC 3339 date-time with an offset, e.g. 2025-01-01T00:00:00Z")
    return value


def _utc_representable(value: datetime | None) -> datetime | None:
    # Airflow stores dates in UTC; 9999-12-31T23:59:59-01:00 has no UTC form.
    if value is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("is out of range once converted to UTC") from None
    return value


# Lax inside, so Pydantic parses the string the regex let through (its strict mode would
# only take a datetime object at this point).
LogicalDate = Annotated[
    AwareDatetime | None, Strict(False), BeforeValidator(_rfc3339), AfterValidator(_utc_representable)
]


class _Message(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, json_schema_serialization_defaults_required=True
    )


class TriggerMessage(_Message):
    """A request to start one DAG run, as producers put it on the trigger topic."""

    model_config = ConfigDict(title="DagTrigger")

    schema_version: Literal[1]
    dag_id: DagId
    run_id: RunId | None = None
    logical_date: LogicalDate = Field(
        default=None, description="RFC 3339 with offset; the record's timestamp when absent"
    )
    conf: dict[str, Any] | None = Field(
        default=None,
        description="The run's conf: plain JSON (no NaN or Infinity), at most 64 levels deep and at most 64 KiB "
        "as compact UTF-8 JSON unless the bridge is configured otherwise",
    )
    idempotency_key: IdempotencyKey | None = None

    @field_validator("conf")
    @classmethod
    def _bounded_json(cls, conf: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        if conf is None:
            return None
        return bounded_conf(conf, (info.context or {}).get("max_conf_bytes", DEFAULT_MAX_CONF_BYTES))

    def run_id_at(self, topic: str, partition: int, offset: int) -> str:
        """The run ID of this trigger once it sits at ``offset`` of ``topic[partition]``."""
        if self.run_id is not None:
            return self.run_id
        if self.idempotency_key is not None:
            return KAFKA_RUN_ID_PREFIX + self.idempotency_key
        return f"{KAFKA_RUN_ID_PREFIX}{topic}-{partition}-{offset}"


def bounded_conf(conf: dict[str, Any], limit: int) -> dict[str, Any]:
    """``conf`` unchanged; raises ``ValueError`` if it is not plain JSON, nested deeper than
    ``MAX_CONF_DEPTH`` or larger than ``limit`` bytes."""
    depth = _nesting_depth(conf)
    if depth > MAX_CONF_DEPTH:
        raise ValueError(f"is nested {depth} levels deep, more than the limit of {MAX_CONF_DEPTH}")
    # Pydantic's JSON parser takes NaN and Infinity, which are not JSON and which other
    # consumers of the conf could not read back.
    try:
        encoded = json.dumps(conf, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except ValueError as err:
        raise ValueError(f"is not plain JSON: {err}") from None
    if len(encoded) > limit:
        raise ValueError(f"is {len(encoded)} bytes as JSON, more than the limit of {limit}")
    return conf


def _nesting_depth(value: Any) -> int:
    """Levels of objects and arrays in a JSON value (1 for a flat object), without recursion."""
    depth, level = 0, [(value, 1)]
    while level:
        item, at = level.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            depth = max(depth, at)
            level.extend((child, at + 1) for child in children)
    return depth


class InvalidTrigger(ValueError):
    """A trigger that can never start a run; ``reason`` says why, short enough for a DLQ header."""

    def __init__(self, reason: str) -> None:
        self.reason = reason if len(reason) <= MAX_REASON_CHARS else reason[: MAX_REASON_CHARS - 3] + "..."
        super().__init__(self.reason)


def validation_reason(err: ValidationError) -> str:
    # The default rendering repeats the input, which can be the whole (large) message.
    parts = []
    for error in err.errors(include_url=False, include_input=False, include_context=False):
        location = ".".join(str(part) for part in error["loc"]) or "message"
        parts.append(f"{location}: {error['msg']}")
    return "; ".join(parts)


def record_time(timestamp_ms: int) -> datetime | None:
    """The record's timestamp as a date; None when it has none; raises ``InvalidTrigger`` when out of range."""
    if timestamp_ms < 0:  # Kafka's "no timestamp"
        return None
    try:
        return datetime.fromtimestamp(timestamp_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError) as err:
        raise InvalidTrigger(
            f"logical_date: absent, and the record timestamp {timestamp_ms} is out of range ({err})"
        ) from err


def parse_trigger(
    value: bytes | None,
    *,
    topic: str,
    partition: int,
    offset: int,
    timestamp_ms: int,
    max_conf_bytes: int = DEFAULT_MAX_CONF_BYTES,
    options: RunOptions | None = None,
) -> DagRunRequest:
    """Turn one trigger record into the workflow's input, or raise ``InvalidTrigger``.

    The defaults are derived from the record itself, so a redelivery of the same record
    always yields the same run ID (and so the same workflow ID).
    """
    if not value:
        raise InvalidTrigger("message: empty message")
    try:
        message = TriggerMessage.model_validate_json(value, context={"max_conf_bytes": max_conf_bytes})
    except ValidationError as err:
        raise InvalidTrigger(validation_reason(err)) from None
    run_id = message.run_id_at(topic, partition, offset)
    # Given IDs were validated above; only one derived from the topic name can break the rules.
    if len(run_id) > MAX_ID_LENGTH or ".." in run_id:
        raise InvalidTrigger(
            f"run_id: absent, and the one derived from the record ({run_id!r}) breaks Airflow's rules; "
            "give run_id or idempotency_key"
        )
    logical_date = message.logical_date if message.logical_date is not None else record_time(timestamp_ms)
    return DagRunRequest(
        dag_id=message.dag_id,
        run_id=run_id,
        logical_date=logical_date,
        conf=message.conf or {},
        options=options or RunOptions(),
    )


class EventError(_Message):
    type: str
    message: str
    traceback: str | None = Field(default=None, description="The last lines of the try's traceback, when it raised")


TryEndState = Literal["success", "failed", "skipped", "up_for_retry"]
# A rescheduled poke ends no try (see TRY_END_STATES): it has no task event.
_TRY_END_STATES: dict[TaskState, TryEndState] = {
    TaskState.SUCCESS: "success",
    TaskState.FAILED: "failed",
    TaskState.SKIPPED: "skipped",
    TaskState.UP_FOR_RETRY: "up_for_retry",
}


class TaskEvent(_Message):
    """How one task try ended; published by the activity that ran it."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str = Field(description="<workflow_id>:<task_id>:<map_index>:<try_number>; the same for every repeat")
    dag_id: str
    run_id: str
    task_id: str
    map_index: int
    try_number: int
    state: TryEndState
    start_date: AwareDatetime
    end_date: AwareDatetime
    duration_seconds: float
    error: EventError | None = None
    xcom_keys: list[str] = Field(default_factory=list)
    log: str | None = Field(
        default=None,
        description="Where the try's log lives (a path on the worker's logs volume or an object-store URL); "
        "null when no worker reported the try",
    )

    @classmethod
    def of_try(cls, workflow_id: str, request: TaskTryRequest, result: TaskTryResult) -> TaskEvent:
        return cls.of_result(workflow_id, request.dag_run.dag_id, request.dag_run.run_id, result)

    @classmethod
    def of_result(cls, workflow_id: str, dag_id: str, run_id: str, result: TaskTryResult) -> TaskEvent:
        return cls(
            event_id=task_event_id(workflow_id, result.task_id, result.map_index, result.try_number),
            dag_id=dag_id,
            run_id=run_id,
            task_id=result.task_id,
            map_index=result.map_index,
            try_number=result.try_number,
            state=_TRY_END_STATES[result.state],
            start_date=result.start_date,
            end_date=result.end_date,
            duration_seconds=(result.end_date - result.start_date).total_seconds(),
            error=(
                EventError(type=result.error.type, message=result.error.message, traceback=result.error.traceback)
                if result.error
                else None
            ),
            xcom_keys=sorted({entry.key for entry in result.xcoms}),
            log=result.log,
        )


# A sensor in reschedule mode ends a poke, not a try: Airflow keeps its try_number, so
# such pokes get no event (they would all share one event_id).
TRY_END_STATES = frozenset(TaskState) - {TaskState.UP_FOR_RESCHEDULE, TaskState.DEFERRED}


class TaskInstanceSummary(_Message):
    task_id: str
    map_index: int
    state: str | None = Field(description="Airflow's final state, e.g. success, failed, skipped, upstream_failed")
    try_number: int


class RunEvent(_Message):
    """How a DAG run ended; published once by its workflow."""

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str = Field(description="<workflow_id>:finished")
    dag_id: str
    run_id: str
    run_type: RunType = Field(default=RunType.MANUAL, description="What started the run")
    state: Literal["success", "failed"]
    logical_date: AwareDatetime | None = None
    start_date: AwareDatetime | None = None
    end_date: AwareDatetime | None = None
    error: str | None = Field(default=None, description="Why the run could not run to its end, when it could not")
    task_instances: list[TaskInstanceSummary] = Field(default_factory=list)

    @classmethod
    def of_result(cls, workflow_id: str, result: DagRunResult, request: DagRunRequest) -> RunEvent:
        return cls(
            event_id=run_event_id(workflow_id),
            dag_id=result.dag_id,
            run_id=result.run_id,
            run_type=request.run_type,
            state="success" if result.state == "success" else "failed",
            logical_date=request.logical_date,
            start_date=result.start_date,
            end_date=result.end_date,
            error=result.error,
            task_instances=[
                TaskInstanceSummary(
                    task_id=ti.task_id, map_index=ti.map_index, state=ti.state, try_number=ti.try_number
                )
                for ti in result.task_instances
            ],
        )


class AssetEventMessage(_Message):
    """One asset event a successful task try emitted; published by the activity that ran the try.

    Keyed by the asset's URI, so one asset's events stay in order on one partition.
    """

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str = Field(
        description="<workflow_id>:<task_id>:<map_index>:<try_number>:<asset uri>, with #<n> for the n-th "
        "further event of the same asset in the same try; the same for every repeat"
    )
    asset_name: str
    asset_uri: str
    asset_group: str = "asset"
    extra: dict[str, Any] = Field(default_factory=dict, description="The event's extra (the task's outlet_events)")
    source_aliases: list[str] = Field(default_factory=list, description="Asset aliases the event was emitted through")
    timestamp: AwareDatetime = Field(description="When the producing try ended")
    dag_id: str = Field(description="The producing task's DAG")
    run_id: str
    task_id: str
    map_index: int
    try_number: int

    @classmethod
    def of_event(cls, event: AssetEventPayload) -> AssetEventMessage:
        """Raises ``ValueError`` for an event that does not name its producing try."""
        if event.event_id is None or event.source_dag_id is None or event.source_try_number is None:
            raise ValueError(f"asset event of {event.asset_uri!r} does not name the try that emitted it")
        return cls(
            event_id=event.event_id,
            asset_name=event.asset_name,
            asset_uri=event.asset_uri,
            asset_group=event.asset_group,
            extra=event.extra,
            source_aliases=event.source_aliases,
            timestamp=event.timestamp,
            dag_id=event.source_dag_id,
            run_id=event.source_run_id or "",
            task_id=event.source_task_id or "",
            map_index=event.source_map_index,
            try_number=event.source_try_number,
        )
