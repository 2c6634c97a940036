"""Which offsets of a partition the bridge may commit while records are handled concurrently."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.offsets import PartitionOffsets


def test_only_the_contiguous_prefix_of_finished_offsets_is_committed() -> None:
    offsets = PartitionOffsets()
    for offset in (5, 6, 7, 9):
        offsets.add(offset)
    assert offsets.to_commit() is None
    offsets.done(6)
    offsets.done(9)
    assert offsets.to_commit() is None, "5 is still in flight"
    offsets.done(5)
    assert offsets.to_commit() == 7
    offsets.committed(7)
    assert offsets.to_commit() is None
    offsets.done(7)
    assert (offsets.to_commit(), offsets.in_flight) == (10, 0)


def test_offsets_must_arrive_in_order() -> None:
    offsets = PartitionOffsets()
    offsets.add(3)
    with pytest.raises(ValueError, match="offset 3 fetched after 3"):
        offsets.add(3)


def test_a_commit_of_an_older_offset_is_followed_by_the_newer_one() -> None:
    offsets = PartitionOffsets()
    offsets.add(0)
    offsets.add(1)
    offsets.done(0)
    offsets.committed(1)
    offsets.done(1)
    assert offsets.to_commit() == 2


@given(st.permutations(list(range(20))))
def test_whatever_the_finishing_order_a_commit_never_passes_an_unfinished_record(order: list[int]) -> None:
    fetched = list(range(100, 120))
    offsets = PartitionOffsets()
    for offset in fetched:
        offsets.add(offset)
    finished: set[int] = set()
    for index in order:
        offsets.done(fetched[index])
        finished.add(fetched[index])
        commit = offsets.to_commit()
        if commit is not None:
            assert set(range(100, commit)) <= finished
            # Exactly the end of the finished prefix: the record at the commit offset is not done yet.
            assert commit == 120 or commit not in finished
            offsets.committed(commit)
    assert (offsets.to_commit(), offsets.in_flight) == (None, 0)
