"""The XComs of one run, held by its workflow: tasks pull them from here, not from a database."""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterable

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pydantic import TypeAdapter

    from schemas.runs import TaskTryResult, XComEntry

XCOM_LIST = TypeAdapter(list[XComEntry])


class XComStore:
    """Each task instance's XComs from its latest try, with their JSON size and revision per task."""

    def __init__(self) -> None:
        self._xcoms: dict[str, dict[int, list[XComEntry]]] = {}
        self._bytes: dict[str, int] = {}
        # Results stored per task since this workflow of the run began: they only grow.
        self._revisions: dict[str, int] = {}

    @classmethod
    def from_snapshot(cls, snapshot: bytes) -> XComStore:
        """The store as ``snapshot()`` left it in an earlier workflow of the run."""
        store = cls()
        for entry in XCOM_LIST.validate_json(zlib.decompress(snapshot)):
            store._xcoms.setdefault(entry.task_id, {}).setdefault(entry.map_index, []).append(entry)
            store._bytes[entry.task_id] = store._bytes.get(entry.task_id, 0) + _size([entry])
        return store

    def snapshot(self) -> bytes:
        """Every XCom, zlib-compressed JSON, for the run's next workflow (continue-as-new)."""
        entries = [
            entry for by_map_index in self._xcoms.values() for entries in by_map_index.values() for entry in entries
        ]
        return zlib.compress(XCOM_LIST.dump_json(entries))

    def store(self, result: TaskTryResult) -> None:
        """Keep a try's XComs (a later try of the same task instance replaces them) and their size."""
        by_map_index = self._xcoms.setdefault(result.task_id, {})
        replaced = by_map_index.pop(result.map_index, [])
        if result.xcoms:
            by_map_index[result.map_index] = list(result.xcoms)
        elif not by_map_index:
            del self._xcoms[result.task_id]
        self._bytes[result.task_id] = self._bytes.get(result.task_id, 0) - _size(replaced) + _size(result.xcoms)
        self._revisions[result.task_id] = self._revisions.get(result.task_id, 0) + 1

    def revision(self, task_ids: Iterable[str]) -> int:
        """A number that changes whenever any of these tasks' XComs may have changed, in this workflow."""
        return sum(self._revisions.get(task_id, 0) for task_id in set(task_ids))

    def of_tasks(self, task_ids: Iterable[str]) -> list[XComEntry]:
        """The XComs of these tasks, by task id, then map index, then as pushed."""
        return [
            entry
            for task_id in sorted(set(task_ids).intersection(self._xcoms))
            for _, entries in sorted(self._xcoms[task_id].items())
            for entry in entries
        ]

    def of_task_instance(self, task_id: str, map_index: int) -> list[XComEntry]:
        """The XComs the task instance's latest try pushed."""
        return list(self._xcoms.get(task_id, {}).get(map_index, []))

    def size_of(self, entries: list[XComEntry]) -> int:
        """The JSON size of every XCom of the tasks these entries come from."""
        return sum(self._bytes[task_id] for task_id in {entry.task_id for entry in entries})

    def values(self, task_id: str, map_index: int) -> dict[str, object]:
        return {entry.key: entry.value for entry in self._xcoms.get(task_id, {}).get(map_index, [])}


def _size(entries: Iterable[XComEntry]) -> int:
    return sum(len(json.dumps(entry.value)) for entry in entries)
