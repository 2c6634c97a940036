"""Payloads of the per-DAG schedule workflow, of backfills, and of the activities that ask Airflow's
timetable code what to run next.

The workflows never run timetable code themselves (it reads the wall clock and may be a user's
plugin): an activity computes each :class:`ScheduledRun` and the workflow only decides when to
start it and that it starts once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.runs import DataInterval, RunOptions, RunType


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ScheduledRun(_Payload):
    """One run as the DAG's timetable laid it out: what Airflow's scheduler would create."""

    run_id: str
    run_type: RunType
    logical_date: datetime | None
    data_interval: DataInterval | None
    run_after: datetime


class ScheduleQuery(_Payload):
    """Ask for the run after ``last`` (the last scheduled run; ``None`` before the first)."""

    dag_id: str
    last: ScheduledRun | None = None


class DagSchedule(_Payload):
    """What the DAG file says about scheduling, read by the activity each time it is asked."""

    fingerprint: str = Field(description="Changes whenever anything that decides the DAG's runs changes")
    is_paused_upon_creation: bool = False
    max_active_runs: int = Field(ge=1)
    next_run: ScheduledRun | None = Field(description="None: the timetable schedules nothing (more) after last")


class ScheduleAnswer(_Payload):
    as_of: datetime = Field(description="The wall clock the timetable read when it answered")
    schedule: DagSchedule | None = Field(description="None: the DAG is no longer in the dags folder")
    problem: str | None = Field(default=None, description="Why the DAG cannot be scheduled, when it cannot")


class ScheduleState(_Payload):
    """Everything the schedule workflow knows, carried through continue-as-new."""

    dag_id: str
    options: RunOptions = RunOptions()
    paused: bool | None = Field(default=None, description="None until the DAG's is_paused_upon_creation was read")
    last: ScheduledRun | None = Field(default=None, description="The last run this schedule started")
    in_flight: list[str] = Field(default_factory=list, description="Run IDs started and not known to have ended")
    fingerprint: str | None = None
    runs_started: int = 0


class ScheduleStatus(_Payload):
    """The schedule workflow's answer to a status query."""

    dag_id: str
    paused: bool | None
    present: bool = Field(description="The DAG is in the dags folder and its timetable can be scheduled")
    problem: str | None = None
    last_run_id: str | None
    next_run: ScheduledRun | None
    in_flight: list[str]
    runs_started: int


class ReprocessBehavior(StrEnum):
    """Airflow's backfill choice for intervals that already have a run."""

    NONE = "none"
    FAILED = "failed"
    COMPLETED = "completed"


class ExistingRun(_Payload):
    run_id: str
    run_type: RunType
    state: str = Field(description="running, or the final state of the run (success, failed)")


class BackfillRequest(_Payload):
    dag_id: str
    from_date: datetime
    to_date: datetime
    reprocess_behavior: ReprocessBehavior = ReprocessBehavior.NONE
    max_active_runs: int | None = Field(default=None, ge=1, description="Default: the DAG's max_active_runs")
    run_backwards: bool = False
    options: RunOptions = RunOptions()
    state: BackfillState | None = Field(
        default=None, description="Set by the backfill workflow only, when it continues as new: where it stands"
    )


class BackfillPlan(_Payload):
    """The intervals of a backfill, in the order they are to run, and who already ran them."""

    runs: list[ScheduledRun]
    max_active_runs: int = Field(ge=1)
    existing: dict[str, ExistingRun] = Field(
        default_factory=dict, description="backfill run ID -> a run of the same interval that already exists"
    )


class BackfillOutcome(StrEnum):
    STARTED = "started"
    REPROCESSED = "reprocessed"
    ALREADY_EXISTS = "already_exists"
    IN_FLIGHT = "in_flight"


class BackfillItem(_Payload):
    run_id: str
    logical_date: datetime | None
    outcome: BackfillOutcome | None = Field(default=None, description="None: not reached yet")
    state: str | None = Field(default=None, description="The run's final state once it ended")


class BackfillProgress(_Payload):
    """Where a backfill stands: its backfill workflow's query answer and its result."""

    dag_id: str
    items: list[BackfillItem]
    cancelled: bool = False


class BackfillState(_Payload):
    """Where a backfill stands, carried through continue-as-new: every interval, and the runs not reached yet."""

    items: list[BackfillItem] = Field(description="Every interval of the backfill, in its order")
    remaining: list[ScheduledRun] = Field(description="The last len(remaining) intervals' runs, not reached yet")
    max_active_runs: int = Field(ge=1)
    existing: dict[str, ExistingRun] = Field(
        default_factory=dict, description="backfill run ID -> a run of the same interval that already exists"
    )


BackfillRequest.model_rebuild()
