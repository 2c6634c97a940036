"""A limit's bookkeeping: who gets slots, in which order, and what is carried across continue-as-new."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from schemas.limits import UNLIMITED, LimitState, LimitUpdate, SlotRequest, Waiter
from workflows.concurrency_limit import SlotBook, grants


def waiter(holder: str, priority_weight: int, arrival: int, slots: int = 1) -> Waiter:
    return Waiter(holder=holder, requester="run", slots=slots, priority_weight=priority_weight, arrival=arrival)


def request(holder: str, requester: str = "run-a", slots: int = 1, priority_weight: int = 0) -> SlotRequest:
    return SlotRequest(holder=holder, requester=requester, slots=slots, priority_weight=priority_weight)


def update(*acquire: SlotRequest, release: tuple[str, ...] = (), capacity: int | None = None) -> LimitUpdate:
    requester = acquire[0].requester if acquire else "run-a"
    return LimitUpdate(
        requester=requester, capacity=capacity, holder_check_seconds=1, release=list(release), acquire=list(acquire)
    )


def book(capacity: int) -> SlotBook:
    return SlotBook(LimitState(limit_id="pool:p", capacity=capacity, holder_check_seconds=1))


def test_grants_go_by_priority_then_arrival() -> None:
    waiting = [waiter("early-low", 1, 1), waiter("late-high", 5, 3), waiter("early-high", 5, 2)]

    assert [w.holder for w in grants(waiting, 2)] == ["early-high", "late-high"]
    assert [w.holder for w in grants(waiting, None)] == ["early-high", "late-high", "early-low"]


def test_a_waiter_too_big_for_the_free_slots_lets_smaller_lower_priority_ones_through() -> None:
    waiting = [waiter("big", 9, 1, slots=3), waiter("small", 1, 2)]

    assert [w.holder for w in grants(waiting, 2)] == ["small"]
    assert [w.holder for w in grants(waiting, 0)] == []


@given(
    st.lists(st.tuples(st.integers(1, 4), st.integers(0, 3)), max_size=12, unique_by=lambda t: t),
    st.integers(0, 10),
)
def test_grants_never_exceed_the_free_slots_and_pass_over_only_what_does_not_fit(
    sizes_and_priorities: list[tuple[int, int]], free: int
) -> None:
    waiting = [waiter(f"h{i}", priority, i, slots) for i, (slots, priority) in enumerate(sizes_and_priorities)]
    granted = grants(waiting, free)
    assert sum(w.slots for w in granted) <= free
    left = free - sum(w.slots for w in granted)
    assert all(w.slots > left for w in waiting if w not in granted)


def test_the_book_grants_up_to_its_capacity_and_keeps_the_rest_waiting() -> None:
    slots = book(capacity=2)
    slots.apply(update(request("a"), request("b"), request("c")))

    assert [w.holder for w in slots.grant()] == ["a", "b"]
    assert sorted(slots.holders) == ["a", "b"]
    assert sorted(slots.waiting) == ["c"]
    assert slots.grant() == []


def test_a_release_makes_room_for_the_next_waiter() -> None:
    slots = book(capacity=1)
    slots.apply(update(request("a"), request("b")))
    slots.grant()
    slots.apply(update(release=("a",)))

    assert [w.holder for w in slots.grant()] == ["b"]


def test_a_repeated_request_keeps_its_first_arrival() -> None:
    slots = book(capacity=0)
    slots.apply(update(request("a")))
    slots.apply(update(request("b")))
    slots.apply(update(request("a")))

    assert {holder: w.arrival for holder, w in slots.waiting.items()} == {"a": 1, "b": 2}


def test_an_unlimited_pool_grants_everyone() -> None:
    slots = book(capacity=UNLIMITED)
    slots.apply(update(*(request(f"h{i}", slots=3) for i in range(5))))

    assert len(slots.grant()) == 5


def test_the_latest_capacity_wins() -> None:
    slots = book(capacity=1)
    slots.apply(update(request("a"), request("b"), capacity=2))

    assert [w.holder for w in slots.grant()] == ["a", "b"]


def test_releasing_a_requester_frees_its_holders_and_drops_its_waiters() -> None:
    slots = book(capacity=1)
    slots.apply(update(request("a", requester="gone"), request("b", requester="gone")))
    slots.apply(update(request("c", requester="alive")))
    slots.grant()

    slots.release_requesters({"gone"})

    assert (list(slots.holders), list(slots.waiting)) == ([], ["c"])
    assert [w.holder for w in slots.grant()] == ["c"]


def test_the_state_carried_across_continue_as_new_rebuilds_the_same_book() -> None:
    slots = book(capacity=1)
    slots.apply(update(request("a"), request("b", priority_weight=3)))
    slots.grant()

    carried = SlotBook(LimitState.model_validate_json(slots.state().model_dump_json()))

    assert carried.state() == slots.state()
    assert carried.requesters() == ["run-a"]
