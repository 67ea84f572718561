"""MooN voting with degraded modes, as a pure function.

A voting group has N members and trips when M of them vote. A member is in one
of three states: voting to trip, healthy (not voting), or *degraded* (its
reading is BAD, or it is bypassed). What a degraded member does is a property of
the group, because the right answer differs by service:

- ``vote_trip``: a degraded member counts as a trip vote (favours safety; for
  2oo3 one faulted detector makes the group 1oo2 on the other two, two faulted
  trip it: ``FAULT_VOTES_TRIP = true`` of plant-reference 3.7);
- ``drop``: degraded members are removed and M is kept (favours availability;
  2oo3 with one faulted becomes 2oo2; with two faulted it is 2oo1 and can no
  longer trip by itself: ``FAULT_VOTES_TRIP = false``, scenario F-G11);
- ``reduce``: degraded members are removed and M drops by one per degraded
  member, never below 1 (2oo3 with one faulted becomes 1oo2, then 1oo1).

A member can also be *unseen*: no data has come from the field at all (not yet
read since the controller started, or the PLC link is lost). That is not a field
fault, and it never votes to trip, in any mode: a trip voted on a link that is not
up could not be delivered over that link, would go out late when the link comes
back, and would trip the plant at every controller start before the first read.
An unseen member is removed from the vote and M is kept (as ``drop``), so it counts
against the group's ability to trip; the lost link is alarmed at top priority by
itself. A field fault (a sensor fault, a device-doubted value, a stale value) is
*degraded* and follows the group's mode.

When fewer members are left than the vote needs (``blind``), the group cannot
trip automatically any more. That is never silent: the engine raises a
top-priority alarm telling the operator to unload and stop by hand (3.7: "with
two channels faulted: alarm, and the operator must unload and stop"), and the
PLC's own hard-wired trip remains the last layer.
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
    DEGRADED = "degraded"  # a field fault, or bypassed: the group's mode decides
    UNSEEN = "unseen"  # no data from the field (not read yet, link lost): never a trip vote


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

    @property
    def blind(self) -> bool:
        """Too few members left to reach the vote: no automatic trip is possible."""
        return self.required > self.available


def vote(m: int, members: Sequence[Member], mode: DegradedMode) -> VoteResult:
    n = len(members)
    if not 1 <= m <= n:
        raise ValueError(f"cannot vote {m}oo{n}")
    trips = sum(1 for x in members if x is Member.TRIP)
    faulted = sum(1 for x in members if x is Member.DEGRADED)
    unseen = sum(1 for x in members if x is Member.UNSEEN)
    degraded = faulted + unseen
    if mode is DegradedMode.VOTE_TRIP:
        votes = trips + faulted  # unseen members are left out, M kept (see the module docstring)
        return VoteResult(votes >= m, votes, m, n - unseen, degraded)
    live = n - degraded
    required = m if mode is DegradedMode.DROP else max(1, m - faulted)
    return VoteResult(required <= live and trips >= required, trips, required, live, degraded)
