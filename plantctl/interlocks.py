"""Cause and effect: voted causes, latched trips, first-out, bypasses, overrides.

Theory of operation
-------------------
The matrix is configuration (the site file), not code. Each row is a *cause*
(``Interlock``): N member conditions on tags, voted MooN (plantctl.voting) with
the group's degraded mode, an optional on-delay and off-delay; and its
*effects*: commands whose feedback the I/O list declares (verified by the
engine against a deadline) or the start of a procedure.

Per scan, ``InterlockState.evaluate`` turns the snapshot into a member state
per condition (with deadband hysteresis; a BAD reading or a bypass makes the
member DEGRADED), votes, applies the delays and then the latch:

    NORMAL --vote held for on_delay--> TRIPPED (latched, effects fire once)
    TRIPPED --reset by an authorised user, cause clear--> NORMAL

A trip is a state and an event, never an exception. First-out is kept per
*trip group* (several causes that trip the same equipment, e.g. "GT-400"): the
first cause to trip since the group was last all clear, and inside it the first
member that voted. Startup overrides and forcing sit on top of the vote and
always expire; each is an event and an active alarm while it lasts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from .tags import Quality, Reading, Reason
from .voting import DegradedMode, Member, VoteResult, vote


class Op(StrEnum):
    GE = ">="
    GT = ">"
    LE = "<="
    LT = "<"
    EQ = "=="
    NE = "!="


@dataclass(frozen=True)
class Condition:
    tag: str
    op: Op
    value: float | bool | int
    deadband: float = 0.0

    def test(self, value: float | bool | int, was_active: bool) -> bool:
        """Comparison with hysteresis: once active, it clears only past the deadband."""
        db = self.deadband if was_active else 0.0
        v = float(value)
        ref = float(self.value)
        if self.op is Op.GE:
            return v >= ref - db
        if self.op is Op.GT:
            return v > ref - db
        if self.op is Op.LE:
            return v <= ref + db
        if self.op is Op.LT:
            return v < ref + db
        if self.op is Op.EQ:
            return v == ref
        return v != ref

    def describe(self) -> str:
        return f"{self.tag} {self.op.value} {self.value}"


@dataclass(frozen=True)
class Effect:
    """Either a command (tag, value) or a procedure to start."""

    command: str | None = None
    value: float | bool | int | str | None = None
    procedure: str | None = None

    def describe(self) -> str:
        if self.procedure:
            return f"start {self.procedure}"
        return f"{self.command} := {self.value}"


# Reasons a BAD reading carries when no data came from the field at all (the link), as
# opposed to a field fault: such a member is unseen, never a trip vote (plantctl.voting).
NO_DATA: frozenset[Reason] = frozenset({Reason.NOT_CONNECTED, Reason.COMMS_LOST})


@dataclass(frozen=True)
class Interlock:
    id: str
    station: str
    description: str
    members: tuple[Condition, ...]
    m: int = 1
    degraded: DegradedMode = DegradedMode.VOTE_TRIP
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    trip_group: str = ""
    effects: tuple[Effect, ...] = ()
    latch: bool = True
    priority: int = 1  # 1 = highest
    line: int = 0
    # Armed only while all of these hold (e.g. the low fuel-pressure trip only while the GT
    # runs). An arming signal that is BAD keeps the interlock armed: it counts against the plant.
    armed_when: tuple[Condition, ...] = ()

    @property
    def architecture(self) -> str:
        return f"{self.m}oo{len(self.members)}"


class TripState(StrEnum):
    NORMAL = "normal"
    PENDING = "pending"  # vote true, on-delay running
    TRIPPED = "tripped"


class ForceMode(StrEnum):
    TRIP = "trip"
    NORMAL = "normal"


@dataclass
class Bypass:
    tag: str
    user: str
    reason: str
    since: float
    until: float


@dataclass
class Override:
    """Startup override or force: on the whole interlock, always with an expiry."""

    kind: str  # "startup" | "force_trip" | "force_normal"
    user: str
    reason: str
    since: float
    until: float


@dataclass
class InterlockState:
    spec: Interlock
    state: TripState = TripState.NORMAL
    member_active: list[bool] = field(default_factory=list)
    vote_since: float | None = None  # when the vote became true (on-delay)
    clear_since: float | None = None  # when the vote became false (off-delay)
    tripped_at: float | None = None
    first_member: str | None = None  # first member that voted in this episode
    bypass: Bypass | None = None
    override: Override | None = None
    last_vote: VoteResult | None = None
    cause_active: bool = False  # vote after delays: what a reset must see clear

    def __post_init__(self) -> None:
        if not self.member_active:
            self.member_active = [False] * len(self.spec.members)

    def armed(self, snapshot: Mapping[str, Reading]) -> bool:
        for cond in self.spec.armed_when:
            r = snapshot.get(cond.tag)
            if r is None or r.quality is Quality.BAD:
                continue  # cannot tell: stay armed
            if not cond.test(r.value, False):
                return False
        return True

    def member_states(self, snapshot: Mapping[str, Reading]) -> tuple[list[Member], list[str]]:
        """Member states, and the tags of bypassed members that would vote to trip."""
        states: list[Member] = []
        bypassed_tripping: list[str] = []
        for i, cond in enumerate(self.spec.members):
            r = snapshot.get(cond.tag)
            bypassed = self.bypass is not None and self.bypass.tag == cond.tag
            if r is None or (r.quality is Quality.BAD and r.reason in NO_DATA):
                self.member_active[i] = False
                states.append(Member.UNSEEN)  # nothing from the field: never a trip vote
                continue
            if r.quality is Quality.BAD:
                self.member_active[i] = False
                states.append(Member.DEGRADED)
                continue
            active = cond.test(r.value, self.member_active[i])
            self.member_active[i] = active
            if bypassed:
                if active:
                    bypassed_tripping.append(cond.tag)
                states.append(Member.DEGRADED)
            elif active:
                states.append(Member.TRIP)  # a doubtful value in the trip direction still votes
            elif r.quality is Quality.UNCERTAIN and r.reason is not Reason.OUT_OF_RANGE:
                # The device itself doubts the value (an OPC-UA Uncertain status: a held last
                # usable value, a substitute): it cannot vouch for "healthy". A value merely past
                # its span (OUT_OF_RANGE) is still a measurement, and is compared as such.
                states.append(Member.DEGRADED)
            else:
                states.append(Member.HEALTHY)
        return states, bypassed_tripping

    def cause_unseen(self) -> str:
        """Why the cause cannot be said to be clear although the vote is false ("" when it can):
        the vote is blind, too few members left readable to reach it (a 1oo1 cause whose
        signal is BAD, two of a 2oo3 group). A trip is not reset, nor released by itself,
        while its cause cannot be seen. A group still able to vote (2oo3 down to 2oo2) can."""
        vote = self.last_vote
        if vote is not None and vote.blind:
            return f"its vote is blind ({vote.degraded} of {len(self.spec.members)} members unreadable or bypassed)"
        return ""

    def evaluate(self, snapshot: Mapping[str, Reading], now: float) -> tuple[bool, list[str]]:
        """One scan. Returns (newly tripped, bypassed members now voting)."""
        states, bypassed_tripping = self.member_states(snapshot)
        result = vote(self.spec.m, states, self.spec.degraded)
        self.last_vote = result
        raw = result.trip and self.armed(snapshot)
        # First-out inside the group: the first member to vote in this episode
        # (an episode ends when the group is back to normal with no member voting).
        if self.first_member is None:
            for cond, st in zip(self.spec.members, states, strict=True):
                if st is Member.TRIP:
                    self.first_member = cond.tag
                    break
            else:
                if raw:
                    self.first_member = next(
                        (c.tag for c, s in zip(self.spec.members, states, strict=True)
                         if s is Member.DEGRADED), None
                    )
        # overrides on top of the vote (each expires by itself: see expire())
        if self.override is not None:
            if self.override.kind == "force_trip":
                raw = True
            elif self.override.kind in ("force_normal", "startup"):
                raw = False
        # on-delay / off-delay
        if raw:
            self.clear_since = None
            if self.vote_since is None:
                self.vote_since = now
            held = now - self.vote_since >= self.spec.on_delay_s - 1e-9
            self.cause_active = held or self.cause_active
        else:
            self.vote_since = None
            if self.cause_active:
                if self.clear_since is None:
                    self.clear_since = now
                if now - self.clear_since >= self.spec.off_delay_s - 1e-9:
                    self.cause_active = False
                    self.clear_since = None
        newly = False
        if self.state is not TripState.TRIPPED:
            if self.cause_active:
                self.state = TripState.TRIPPED
                self.tripped_at = now
                newly = True
            elif raw:
                self.state = TripState.PENDING
            else:
                self.state = TripState.NORMAL
                if Member.TRIP not in states:
                    self.first_member = None
        elif not self.spec.latch and not self.cause_active and not self.cause_unseen():
            self.state = TripState.NORMAL
            self.first_member = None
        return newly, bypassed_tripping
