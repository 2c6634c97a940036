"""A custom timetable registered by a plugin, as Airflow requires for a timetable it serializes.

Intervals alternate between ``short`` and ``long`` seconds from ``start_date``: a schedule no
built-in timetable expresses, at a pace tests can wait for.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin
from airflow.timetables.base import DagRunInfo, DataInterval, TimeRestriction, Timetable
from pendulum import DateTime


class AlternatingTimetable(Timetable):
    def __init__(self, short: int = 1, long: int = 2) -> None:
        self.short = short
        self.long = long

    def serialize(self) -> dict[str, Any]:
        return {"short": self.short, "long": self.long}

    @classmethod
    def deserialize(cls, data: dict[str, Any]) -> AlternatingTimetable:
        return cls(data["short"], data["long"])

    @property
    def summary(self) -> str:
        return f"alternating {self.short}s/{self.long}s"

    def infer_manual_data_interval(self, *, run_after: DateTime) -> DataInterval:
        return DataInterval(run_after - timedelta(seconds=self.short), run_after)

    def next_dagrun_info(
        self, *, last_automated_data_interval: DataInterval | None, restriction: TimeRestriction
    ) -> DagRunInfo | None:
        if last_automated_data_interval is None:
            if restriction.earliest is None:
                return None
            start, length = restriction.earliest, self.short
        else:
            start = last_automated_data_interval.end
            previous = (last_automated_data_interval.end - last_automated_data_interval.start).total_seconds()
            length = self.long if previous == self.short else self.short
        end = start + timedelta(seconds=length)
        if restriction.latest is not None and end > restriction.latest:
            return None
        return DagRunInfo.interval(start=start, end=end)


class AlternatingTimetablePlugin(AirflowPlugin):
    name = "alternating_timetable"
    timetables: ClassVar[list[type[Timetable]]] = [AlternatingTimetable]
