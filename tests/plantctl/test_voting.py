"""MooN voting against a hand-written truth table and as properties."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plantctl.voting import DegradedMode, Member, vote

T, H, D = Member.TRIP, Member.HEALTHY, Member.DEGRADED

# 2oo3, by hand, from plant-reference 3.7, F-G09 and F-G11: (trips, degraded) -> trip?
# vote_trip: a faulted channel is a trip vote (1oo2 on the rest; two faulted trip);
# drop:      a faulted channel is removed, M kept (2oo2; with two faulted 2oo1: no automatic trip);
# reduce:    M drops with each faulted channel (1oo2, then 1oo1; all faulted: no automatic trip).
TRUTH_2OO3 = {
    # (trips, degraded): (vote_trip, drop, reduce)
    (0, 0): (False, False, False),
    (1, 0): (False, False, False),
    (2, 0): (True, True, True),
    (3, 0): (True, True, True),
    (0, 1): (False, False, False),
    (1, 1): (True, False, True),
    (2, 1): (True, True, True),
    (0, 2): (True, False, False),
    (1, 2): (True, False, True),
    (0, 3): (True, False, False),
}
MODES = (DegradedMode.VOTE_TRIP, DegradedMode.DROP, DegradedMode.REDUCE)


@pytest.mark.parametrize("members", list(itertools.product((T, H, D), repeat=3)))
def test_2oo3_truth_table(members: tuple[Member, ...]) -> None:
    key = (members.count(T), members.count(D))
    for mode, expected in zip(MODES, TRUTH_2OO3[key], strict=True):
        assert vote(2, members, mode).trip is expected, (members, mode)


def test_architecture_after_degradation() -> None:
    assert vote(2, [T, H, D], DegradedMode.DROP).architecture == "2oo2"
    assert vote(2, [T, H, D], DegradedMode.REDUCE).architecture == "1oo2"
    assert vote(2, [H, H, H], DegradedMode.DROP).architecture == "2oo3"
    assert vote(2, [T, D, D], DegradedMode.DROP).blind  # F-G11: the operator must trip by hand
    assert not vote(2, [T, D, D], DegradedMode.REDUCE).blind


members_st = st.lists(st.sampled_from([T, H, D]), min_size=1, max_size=8)


@given(members_st, st.data())
def test_properties(members: list[Member], data: st.DataObject) -> None:
    n = len(members)
    m = data.draw(st.integers(1, n))
    results = {mode: vote(m, members, mode).trip for mode in MODES}
    # no degraded member: plain MooN, whatever the mode
    if D not in members:
        assert all(r == (members.count(T) >= m) for r in results.values())
    # all degraded: vote_trip trips; the others cannot trip by themselves (and say so)
    if members.count(D) == n:
        assert results[DegradedMode.VOTE_TRIP]
        assert vote(m, members, DegradedMode.DROP).blind and vote(m, members, DegradedMode.REDUCE).blind
    # vote_trip is never less safe than reduce, which is never less safe than drop
    assert results[DegradedMode.VOTE_TRIP] >= results[DegradedMode.REDUCE] >= results[DegradedMode.DROP]
    # monotone: one more trip vote never clears a trip
    for i, x in enumerate(members):
        if x is H:
            more = members[:i] + [T] + members[i + 1 :]
            for mode in MODES:
                assert vote(m, more, mode).trip >= results[mode]


def test_bad_sizes_refused() -> None:
    with pytest.raises(ValueError):
        vote(4, [T, T, T], DegradedMode.DROP)


def test_an_unseen_member_never_votes_to_trip_in_any_mode() -> None:
    """No data from the field (not read yet, link lost) is left out of the vote with M kept,
    even under vote_trip, where a field fault (DEGRADED) would vote to trip."""

    U, D, H, T = Member.UNSEEN, Member.DEGRADED, Member.HEALTHY, Member.TRIP
    assert vote(1, [D], DegradedMode.VOTE_TRIP).trip  # a failed sensor counts as its trip
    unseen = vote(1, [U], DegradedMode.VOTE_TRIP)
    assert not unseen.trip and unseen.blind  # a lost link: cannot trip, says so
    two = vote(2, [U, T, H], DegradedMode.VOTE_TRIP)
    assert not two.trip and two.architecture == "2oo2" and not two.blind
    assert vote(2, [U, T, D], DegradedMode.VOTE_TRIP).trip  # the fault still votes
    assert vote(2, [U, T, H], DegradedMode.REDUCE).architecture == "2oo2"  # M lowered only by faults
    assert vote(2, [D, T, H], DegradedMode.REDUCE).architecture == "1oo2"
