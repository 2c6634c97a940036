"""Payloads of concurrency limits: DAG runs ask a limit's workflow for slots and give them back.

A limit is one long-lived workflow per pool, per task with ``max_active_tis_per_dag`` and per DAG
(``max_active_runs``). Holders are named by the DAG run's workflow id plus what holds the slot,
never by a workflow run id, so they stay the same across continue-as-new on either side.
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.ids import LimitKind, limit_workflow_id

UNLIMITED = -1  # Airflow's convention for a pool without a slot limit


class _Payload(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SlotClaim(_Payload):
    """One holder asking one limit for slots."""

    kind: LimitKind
    name: str = Field(description="Pool name, `<dag_id>.<task_id>` or the DAG id")
    holder: str
    slots: int = 1
    priority_weight: int = 0
    capacity: int | None = Field(
        default=None, description="Slots of the limit; None for a pool, resolved from the worker's DAGBRIDGE_POOLS"
    )

    @property
    def limit_id(self) -> str:
        return limit_workflow_id(self.kind, self.name)

    @model_validator(mode="after")
    def _capacity_unless_pool(self) -> Self:
        if (self.capacity is None) != (self.kind is LimitKind.POOL):
            raise ValueError(
                "a pool's capacity comes from the worker's configuration, any other limit's with the claim"
            )
        return self


class SlotRelease(_Payload):
    limit_id: str
    holders: list[str]


class SlotChanges(_Payload):
    """Everything one DAG run gives back and asks for in one scheduling pass."""

    requester: str = Field(description="Workflow id of the DAG run, where grants are signalled")
    release: list[SlotRelease] = Field(default_factory=list)
    acquire: list[SlotClaim] = Field(default_factory=list)


class SlotRefusal(_Payload):
    """A claim that can never be granted (an undeclared pool, more slots than the pool has)."""

    holder: str
    limit_id: str
    reason: str


class SlotGrant(_Payload):
    """From a limit to a DAG run: these holders now have their slots."""

    limit_id: str
    holders: list[str]


class SlotAnswers(_Payload):
    """What the limits answered a DAG run's changes at once."""

    refusals: list[SlotRefusal] = Field(default_factory=list)
    grants: list[SlotGrant] = Field(default_factory=list)


class SlotRequest(_Payload):
    holder: str
    requester: str
    slots: int
    priority_weight: int


class Waiter(SlotRequest):
    arrival: int = Field(description="Arrival order at the limit: ties of priority go to the earlier one")


class Holding(_Payload):
    holder: str
    requester: str
    slots: int


class LimitUpdate(_Payload):
    """Sent to a limit by one DAG run: releases first, then new waiters (a retried try releases, then asks again)."""

    requester: str
    capacity: int | None = Field(default=None, description="None when only releasing: unchanged")
    holder_check_seconds: float
    release: list[str] = Field(default_factory=list)
    acquire: list[SlotRequest] = Field(default_factory=list)


class LimitState(_Payload):
    """A limit's whole state: its workflow input, carried across continue-as-new."""

    limit_id: str
    capacity: int
    holder_check_seconds: float
    holders: list[Holding] = Field(default_factory=list)
    waiting: list[Waiter] = Field(default_factory=list)
    arrivals: int = 0
    max_history_events: int = Field(default=4000, description="Continue as new beyond this history length")
