"""MooN voting with degraded modes, as a pure function.

A voting group has N members and trips when M of them vote. A member is in one
of three states: voting to trip, healthy (not voting), or *degraded* (its
reading is BAD, or it is bypassed). What a degraded member does is a property of
the group, because the right answer differs by service:

- ``vote_trip``: a degraded member counts as a trip vote (favours safety; for
  2oo3 one faulted detector makes the group 1oo2 on the other two);
- ``drop``: degraded members are removed and M is kept, capped at what is left
  (favours availability; 2oo3 with one faulted becomes 2oo2, then 1oo1);
- ``reduce``: degraded members are removed and M drops by one per degraded
  member, never below 1 (2oo3 with one faulted becomes 1oo2, then 1oo1).

Whatever the mode, a group with no healthy member left cannot see the plant,
and fails safe: it trips (this is the "all channels lost" rule; the two-channel
case of plant-reference 3.7 raises an alarm through the engine instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


class DegradedMode(StrEnum):
    VOTE_TRIP = "vote_trip"
    DROP = "drop"
    REDUCE = "reduce"


class Member(StrEnum):
    TRIP = "trip"
    HEALTHY = "healthy"
    DEGRADED = "degraded"


@dataclass(frozen=True, slots=True)
class VoteResult:
    trip: bool
    votes: int  # members voting to trip (degraded ones included under vote_trip)
    required: int  # M after degradation
    available: int  # N after degradation
    degraded: int

    @property
    def architecture(self) -> str:
        return f"{self.required}oo{self.available}"


def vote(m: int, members: Sequence[Member], mode: DegradedMode) -> VoteResult:
    n = len(members)
    if not 1 <= m <= n:
        raise ValueError(f"cannot vote {m}oo{n}")
    trips = sum(1 for x in members if x is Member.TRIP)
    degraded = sum(1 for x in members if x is Member.DEGRADED)
    live = n - degraded
    if live == 0:
        return VoteResult(True, trips + degraded, 0, 0, degraded)
    if mode is DegradedMode.VOTE_TRIP:
        votes = trips + degraded
        return VoteResult(votes >= m, votes, m, n, degraded)
    if mode is DegradedMode.DROP:
        required = min(m, live)
    else:
        required = max(1, m - degraded)
    return VoteResult(trips >= required, trips, required, live, degraded)
