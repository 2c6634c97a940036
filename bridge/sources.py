"""Where a run came from, as the bridge records it in the run's Temporal memo.

``dagbridge reconcile`` reads it back to find runs whose record is no longer on the topic (or no
longer maps to them). The memo is set only by the start that created the run: a redelivery that
finds the run started changes nothing.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

SOURCE_MEMO_KEY = "dagbridge.source"


class RunSource(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    topic: str
    partition: int
    offset: int
    route: str | None = None


def run_source_memo(topic: str, partition: int, offset: int, route: str | None) -> dict[str, Any]:
    return {SOURCE_MEMO_KEY: RunSource(topic=topic, partition=partition, offset=offset, route=route).model_dump()}


def run_source(memo: dict[str, Any]) -> RunSource | None:
    """The source recorded in a run's memo; None for a run the bridge did not start."""
    try:
        return RunSource.model_validate(memo.get(SOURCE_MEMO_KEY))
    except ValidationError:
        return None
