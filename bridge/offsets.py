"""Which offsets of a partition may be committed while several records are handled at once.

A committed offset N tells the group "everything before N is done". With concurrent
starts, record 7 can finish before record 5; committing 8 then would lose 5 if the bridge
died. So only the contiguous prefix of finished records is ever committed.
"""

from __future__ import annotations

from collections import deque


class PartitionOffsets:
    """Offsets of one partition in the order they were fetched, and which of them are done.

    One instance lives for one assignment of the partition: after a revocation, records
    still in flight from the old assignment mark a discarded instance, which is harmless.
    """

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._done: set[int] = set()
        self._finished_up_to: int | None = None
        self._committed: int | None = None
        self._next: int | None = None

    def add(self, offset: int) -> None:
        if self._pending and offset <= self._pending[-1]:
            raise ValueError(f"offset {offset} fetched after {self._pending[-1]}")
        self._pending.append(offset)
        self._next = offset + 1

    @property
    def next_offset(self) -> int | None:
        """The offset after the last record fetched; None before the first."""
        return self._next

    def done(self, offset: int) -> None:
        self._done.add(offset)
        while self._pending and self._pending[0] in self._done:
            finished = self._pending.popleft()
            self._done.discard(finished)
            self._finished_up_to = finished + 1

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def to_commit(self) -> int | None:
        """The offset to commit now, or None when the last commit already covers every finished record."""
        return None if self._finished_up_to == self._committed else self._finished_up_to

    def committed(self, offset: int) -> None:
        self._committed = offset
