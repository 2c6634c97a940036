"""Payloads of the DAG-run workflow and of its task activities.

They travel through Temporal's Pydantic data converter, so datetimes stay timezone-aware and
enums keep their type on both sides. XCom values are carried in Airflow's own serialized form
(what ``XCom.serialize_value`` produces), so any value Airflow can store round-trips unchanged.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

JsonValue = Any


class TaskState(StrEnum):
    """How one task try ended, as Airflow names it."""

    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    UP_FOR_RETRY = "up_for_retry"
    UP_FOR_RESCHEDULE = "up_for_reschedule"
    DEFERRED = "deferred"


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RunType(StrEnum):
    """What started a run: Airflow's ``DagRunType`` values, which also prefix generated run IDs."""

    MANUAL = "manual"
    SCHEDULED = "scheduled"
    BACKFILL = "backfill"
    ASSET_TRIGGERED = "asset_triggered"
    OPERATOR_TRIGGERED = "operator_triggered"


class DataInterval(_Payload):
    start: datetime
    end: datetime


class AssetEventPayload(_Payload):
    """One asset event as Airflow's ``AssetEvent`` row records it: what a run consumed."""

    asset_name: str
    asset_uri: str
    asset_group: str = "asset"
    extra: dict[str, Any] = Field(default_factory=dict)
    timestamp: datetime
    source_dag_id: str | None = None
    source_run_id: str | None = None
    source_task_id: str | None = None
    source_map_index: int = -1
    source_try_number: int | None = None
    source_aliases: list[str] = Field(
        default_factory=list, description="The asset aliases the task emitted the event through"
    )
    event_id: str | None = Field(
        default=None,
        description="``<workflow_id>:<task_id>:<map_index>:<try_number>:<asset uri>``: the event's identity",
    )


class RunOptions(_Payload):
    """Execution knobs decided by whoever starts the run, recorded in history so replays agree."""

    default_task_queue: str = "dagbridge"
    task_start_to_close_timeout_seconds: float = 24 * 3600
    task_heartbeat_timeout_seconds: float = 30
    history_events_per_workflow: int = Field(
        default=10_000,
        description="The run continues as new once its workflow history has this many events (or when "
        "Temporal suggests it), below the server's warning at 10,240",
    )
    task_instances_per_pass: int = Field(
        default=250,
        ge=1,
        description="Task instances one scheduling pass may create (expanding a mapped task) and check "
        "(dependencies); the rest wait for the next pass, so no workflow task nears the SDK's 2 s "
        "deadlock detection",
    )
    priority_key: int | None = Field(
        default=None,
        ge=1,
        description="The run's Temporal priority key (1 first); its workflow and task activities are "
        "dispatched by it. None: the server's default",
    )
    priority_weight: int = Field(
        default=0,
        description="Added to every task's priority_weight when the run's tasks wait for pool and task "
        "slots with other runs' tasks: how much this run goes first",
    )
    trigger_heartbeat_timeout_seconds: float = Field(
        default=120,
        gt=0,
        description="A deferred task's trigger whose worker is silent this long starts again on another worker. "
        "Longer than a task's: a worker holds thousands of waiting triggers, each heartbeating to the server at "
        "most every 0.8 of this (at most every 60 s)",
    )
    task_attempts: int = Field(
        default=10,
        ge=1,
        description="Attempts at a try whose activity produced no result (a lost worker, a timeout) "
        "before the try counts as failed without its runner reporting",
    )


class RunSnapshot(_Payload):
    """A run in progress, carried across continue-as-new: no try is running when it is taken."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    database: bytes = Field(description="The private Airflow database, zlib-compressed SQLite")
    xcoms: bytes = Field(description="Every XCom of the run so far, zlib-compressed JSON")


class DagRunRequest(_Payload):
    """Input of the DAG-run workflow."""

    dag_id: str
    run_id: str
    logical_date: datetime | None = None
    conf: dict[str, Any] = Field(default_factory=dict)
    run_type: RunType = RunType.MANUAL
    data_interval: DataInterval | None = Field(
        default=None,
        description="As the DAG's timetable computed it; absent: the timetable's manual interval for logical_date",
    )
    run_after: datetime | None = Field(default=None, description="Absent: the logical date, else the start time")
    triggering_asset_events: list[AssetEventPayload] = Field(
        default_factory=list, description="The asset events an asset-triggered run consumed"
    )
    serialized_dag: dict[str, Any] | None = Field(
        default=None,
        description="Airflow's serialized DAG; loaded from the worker's dags folder when absent.",
    )
    options: RunOptions = RunOptions()
    resume: RunSnapshot | None = Field(
        default=None,
        description="Where the run stood when its workflow continued as new to keep its history short",
    )

    def summary(self) -> str:
        """The one line Temporal's UI shows for the run's workflow, next to its ID."""
        return f"{self.run_type.value} run {self.run_id} of DAG {self.dag_id}"


# What one task try may push in XComs, in total, as JSON. Everything a try reports travels back in
# its activity's result, and Temporal refuses a payload over 2 MiB (its default blob size limit):
# such a result would fail the activity again on every retry. Half of that leaves room for the rest.
MAX_TRY_XCOM_BYTES = 1024 * 1024


class XComEntry(_Payload):
    task_id: str
    map_index: int = -1
    key: str
    value: JsonValue = None


class TaskError(_Payload):
    type: str
    message: str
    traceback: str | None = Field(default=None, description="The last lines of the try's traceback")


class TaskInstanceResult(_Payload):
    task_id: str
    map_index: int = -1
    state: str | None
    try_number: int
    start_date: datetime | None = None
    end_date: datetime | None = None
    xcom: dict[str, JsonValue] = Field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"


class DagRunResult(_Payload):
    dag_id: str
    run_id: str
    state: str
    start_date: datetime | None = None
    end_date: datetime | None = None
    error: str | None = None
    task_instances: list[TaskInstanceResult] = Field(default_factory=list)

    @property
    def tasks_succeeded(self) -> int:
        return sum(ti.state == TaskState.SUCCESS.value for ti in self.task_instances)

    @property
    def tasks_failed(self) -> int:
        return sum(ti.state in ("failed", "upstream_failed") for ti in self.task_instances)


class DagRunContext(_Payload):
    """What a task needs to know about its DAG run (Airflow's ``dag_run`` in the context)."""

    dag_id: str
    run_id: str
    run_type: str
    logical_date: datetime | None
    data_interval_start: datetime | None
    data_interval_end: datetime | None
    run_after: datetime
    start_date: datetime | None
    conf: dict[str, Any] = Field(default_factory=dict)
    consumed_asset_events: list[AssetEventPayload] = Field(
        default_factory=list, description="What the task context's triggering_asset_events and inlet_events show"
    )


class RunTaskInstance(_Payload):
    """One task instance of the run and its state, as Airflow's database had it."""

    task_id: str
    map_index: int = -1
    state: str | None = None


class TaskTryRequest(_Payload):
    """Input of the activity that runs one try of one task instance."""

    dag_run: DagRunContext
    task_id: str
    map_index: int = -1
    try_number: int
    max_tries: int
    upstream_xcoms: list[XComEntry] = Field(default_factory=list)
    inputs_held_by_workflow: bool = Field(
        default=False,
        description="The run's conf and the upstream XComs were too large to travel with every try "
        "(they would be stored in history once per try): the activity reads them with the workflow's "
        "try_inputs query instead",
    )
    held_inputs_revision: int = Field(
        default=0,
        description="Which version of the held inputs the try reads: tries of the same task that one workflow "
        "handed out with the same revision read the same conf and upstream XComs, so a worker queries them once "
        "and reuses them",
    )
    run_task_instances: list[RunTaskInstance] = Field(
        default_factory=list,
        description="The task instances of this task and of its direct upstream tasks when the try was "
        "handed out: what the task's task-instance count and state queries about its own run are "
        "answered from. Of a task mapped very wide only this try's own instance is listed",
    )
    task_instance_counts: dict[str, int] = Field(
        default_factory=dict, description="How many task instances each of those tasks had, listed or not"
    )
    reschedule_count: int = Field(
        default=0, description="Pokes of this try that already ended with a reschedule (reschedule-mode sensors)"
    )
    first_reschedule_start_date: datetime | None = Field(
        default=None, description="When this try's first rescheduled poke started: where a sensor's timeout counts from"
    )
    next_method: str | None = Field(
        default=None,
        description="Set when the try resumes after a deferral: the operator method to call instead of execute "
        "(``__fail__`` when its trigger failed or timed out)",
    )
    next_kwargs: dict[str, Any] | None = Field(
        default=None,
        description="The keyword arguments of next_method, serde-encoded as Airflow stores them (the trigger's "
        "event payload under ``event``)",
    )
    resume_count: int = Field(default=0, description="Deferrals of this try the task already resumed from")

    @property
    def label(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"


class TryInputs(_Payload):
    """What a try reads from its run when it was too large to send with the try."""

    conf: dict[str, Any] = Field(default_factory=dict)
    upstream_xcoms: list[XComEntry] = Field(default_factory=list)


class Deferral(_Payload):
    """A task's ``TaskDeferred``, as the runner's ``DeferTask`` message carries it to Airflow's API."""

    classpath: str
    trigger_kwargs: dict[str, Any] = Field(description="The trigger's kwargs, serde-encoded as Airflow stores them")
    trigger_timeout_seconds: float | None = None
    next_method: str
    next_kwargs: dict[str, Any] | None = Field(default=None, description="serde-encoded")


class TaskTryResult(_Payload):
    """How a try ended and what it left behind for the scheduler and downstream tasks."""

    task_id: str
    map_index: int = -1
    try_number: int
    state: TaskState
    start_date: datetime
    end_date: datetime
    error: TaskError | None = None
    xcoms: list[XComEntry] = Field(default_factory=list)
    mapped_length: int | None = Field(
        default=None, description="Length of the return value, when downstream tasks map over it"
    )
    skip_downstream: list[str] = Field(default_factory=list)
    retry_delay_seconds: float | None = None
    reschedule_date: datetime | None = None
    rendered_map_index: str | None = None
    deferral: Deferral | None = Field(
        default=None, description="What the task deferred to, when it ended the try's current run as deferred"
    )
    failed_callbacks: list[str] = Field(
        default_factory=list,
        description="The task callbacks (e.g. on_success_callback) that raised during the try; Airflow "
        "logs them and keeps the try's outcome",
    )
    log: str | None = Field(default=None, description="Where the try's log lives: a path or an object-store URL")
    asset_events: list[AssetEventPayload] = Field(
        default_factory=list, description="The asset events a successful try emitted through its outlets"
    )


class TriggerRequest(_Payload):
    """Input of the activity that runs one deferred task instance's trigger until its first event."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1
    try_number: int
    classpath: str
    trigger_kwargs: dict[str, Any] = Field(description="serde-encoded, as the task sent them")
    start_from_trigger: bool = Field(
        default=False,
        description="The task starts from its trigger (``start_from_trigger``): as Airflow's triggerer does, the "
        "trigger's kwargs that are also the task's template fields are rendered against the task's context",
    )
    timeout_after: datetime | None = Field(
        default=None,
        description="The task instance's trigger timeout: a trigger cancelled after it is not killed (on_kill), "
        "as in Airflow",
    )

    @property
    def label(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.map_index}]"


class TriggerTemplateContext(_Payload):
    """What a trigger's templated kwargs are rendered against: the run's DAG and the run (the workflow's answer)."""

    serialized_dag: dict[str, Any] = Field(description="The DAG the run runs, as Airflow serializes it")
    dag_run: DagRunContext


class TriggerOutcome(_Payload):
    """The first event a trigger yielded, or how it failed."""

    payload: Any = Field(default=None, description="The event's payload, serde-encoded")
    end_state: str | None = Field(
        default=None,
        description="Set when the trigger ended the task itself (a TaskSuccessEvent/TaskFailedEvent/"
        "TaskSkippedEvent of an end_from_trigger trigger): the state it gave the task instance",
    )
    end_xcoms: dict[str, Any] = Field(default_factory=dict, description="XComs such an event pushes")
    traceback: list[str] | None = Field(default=None, description="The trigger raised: its formatted traceback")
