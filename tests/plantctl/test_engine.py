"""The scan engine and cause and effect, on hand-made snapshots and a virtual time line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from plantctl.engine import Action, Actor, Engine, EngineConfig, Request, Role
from plantctl.interlocks import Condition, Effect, Interlock, Op, TripState
from plantctl.iolist import load_io_list
from plantctl.journal import EventKind
from plantctl.tags import Quality, Reading, Reason
from plantctl.voting import DegradedMode

IOL = """\
station: gas_station
signals:
  - {tag: GD-401A, description: det A, kind: analog_in, units: "%LEL", range: [0, 100], raw: [4000, 20000],
     fault_raw: [3600, 21000], modbus: {table: input_register, address: 30001}, alarms: {H: 10, HH: 20},
     bad_counts_as: unsafe, bad_means: channel lost}
  - {tag: GD-401B, description: det B, kind: analog_in, units: "%LEL", range: [0, 100], raw: [4000, 20000],
     modbus: {table: input_register, address: 30002}, bad_counts_as: unsafe, bad_means: channel lost}
  - {tag: GD-401C, description: det C, kind: analog_in, units: "%LEL", range: [0, 100], raw: [4000, 20000],
     modbus: {table: input_register, address: 30003}, bad_counts_as: unsafe, bad_means: channel lost}
  - {tag: ZSC-320, description: SRV closed, kind: digital_in, modbus: {table: discrete_input, address: 10001},
     bad_counts_as: not_confirmed, bad_means: closure unknown}
  - tag: XY-400
    description: GT run permissive (0 = trip)
    kind: command_out
    type: bool
    modbus: {table: coil, address: 1}
    feedback:
      "false": {tag: ZSC-320, value: true}
      within_s: 1.0
"""

ALICE = Actor("alice", frozenset({Role.SUPERVISOR}), "10.0.0.5")
BOB = Actor("bob", frozenset({Role.SUPERVISOR}), "10.0.0.6")
OLGA = Actor("olga", frozenset({Role.OPERATOR}))
VIEW = Actor("vic", frozenset({Role.VIEWER}))


def make_engine(tmp_path: Path, mode: DegradedMode = DegradedMode.DROP, on_delay: float = 0.0, off_delay: float = 0.0,
                *, latch: bool = True, before: tuple[Interlock, ...] = ()) -> Engine:
    p = tmp_path / "gas_station.yaml"
    p.write_text(textwrap.dedent(IOL))
    iol = load_io_list(p)
    il = Interlock(
        id="GT-GAS-2OO3",
        station="gas_station",
        description="compartment gas 2oo3 at 25 %LEL",
        members=tuple(Condition(f"GD-401{x}", Op.GE, 25.0, 2.0) for x in "ABC"),
        m=2,
        degraded=mode,
        on_delay_s=on_delay,
        off_delay_s=off_delay,
        trip_group="GT-400",
        effects=(Effect("XY-400", False), Effect(procedure="GAS-L5")),
        latch=latch,
    )
    return Engine(EngineConfig({"gas_station": iol}, [*before, il], bypass_max_s=3600.0))


def snap(a: float, b: float, c: float, t: float, *, bad: str = "", closed: bool = False) -> dict[str, Reading]:
    out = {}
    for name, v in zip("ABC", (a, b, c), strict=True):
        q = Quality.BAD if name in bad else Quality.GOOD
        out[f"GD-401{name}"] = Reading(v, q, t, Reason.SENSOR_FAULT if name in bad else Reason.NONE)
    out["ZSC-320"] = Reading(closed, Quality.GOOD, t)
    return out


def kinds(events: list) -> list[EventKind]:  # type: ignore[type-arg]
    return [e.kind for e in events]


def test_2oo3_trip_latches_with_first_out_and_effects(tmp_path: Path) -> None:
    eng = make_engine(tmp_path)
    assert eng.scan(snap(1, 1, 1, 0.0), 0.0, 100.0).commands == []
    r1 = eng.scan(snap(30, 1, 1, 0.1), 0.1, 100.1)
    assert r1.commands == [] and eng.interlocks["GT-GAS-2OO3"].state is TripState.NORMAL
    r2 = eng.scan(snap(30, 26, 1, 0.2), 0.2, 100.2)
    assert [(c.tag, c.value) for c in r2.commands] == [("XY-400", False)]
    assert r2.commands[0].verify is not None and r2.commands[0].verify.deadline == pytest.approx(1.2)
    assert r2.start_procedures == [("GAS-L5", "GT-GAS-2OO3")]
    trip = next(e for e in r2.events if e.kind is EventKind.TRIP)
    assert trip.payload["first_member"] == "GD-401A" and trip.payload["first_out"] is True
    assert EventKind.FIRST_OUT in kinds(r2.events)
    # cause goes away: still tripped (latched), no new commands
    r3 = eng.scan(snap(0, 0, 0, 0.3, closed=True), 0.3, 100.3)
    assert r3.commands == [] and eng.tripped() == ["GT-GAS-2OO3"]
    assert EventKind.COMMAND_VERIFIED in kinds(r3.events)


def test_reset_needs_clear_cause_role_and_second_person(tmp_path: Path) -> None:
    eng = make_engine(tmp_path)
    eng.scan(snap(30, 30, 1, 0.0), 0.0, 0.0)
    # cause present
    out = eng.request(Request(Action.RESET, ALICE, "GT-GAS-2OO3", confirmed_by=BOB), 1.0, 1.0)
    assert not out.accepted and "cause still present" in out.message
    eng.scan(snap(0, 0, 0, 2.0, closed=True), 2.0, 2.0)
    assert not eng.request(Request(Action.RESET, VIEW, "GT-GAS-2OO3", confirmed_by=BOB), 3.0, 3.0).accepted
    assert "second person" in eng.request(Request(Action.RESET, ALICE, "GT-GAS-2OO3"), 3.0, 3.0).message
    assert "different user" in eng.request(Request(Action.RESET, ALICE, "GT-GAS-2OO3", confirmed_by=ALICE), 3.0, 3.0).message
    ok = eng.request(Request(Action.RESET, ALICE, "GT-GAS-2OO3", confirmed_by=BOB), 3.0, 3.0)
    assert ok.accepted and eng.tripped() == []
    events = eng.take_events()
    reset = next(e for e in events if e.kind is EventKind.TRIP_RESET)
    assert reset.user == "alice" and reset.address == "10.0.0.5" and reset.payload["confirmed_by"] == "bob"
    refused = [e for e in events if e.kind is EventKind.OPERATOR_ACTION and not e.payload["accepted"]]
    assert len(refused) == 3  # every refusal is journaled too


def test_deadband_and_on_off_delay(tmp_path: Path) -> None:
    eng = make_engine(tmp_path, on_delay=2.0, off_delay=1.0)
    eng.scan(snap(30, 30, 0, 0.0), 0.0, 0.0)
    eng.scan(snap(30, 24, 0, 1.0), 1.0, 1.0)  # 24 is inside the 2 %LEL deadband: still voting
    assert eng.interlocks["GT-GAS-2OO3"].state is TripState.PENDING
    r = eng.scan(snap(30, 24, 0, 2.0), 2.0, 2.0)
    assert eng.tripped() == ["GT-GAS-2OO3"] and r.commands
    # a blip shorter than the on-delay never trips
    eng2 = make_engine(tmp_path, on_delay=2.0)
    for t in (0.0, 1.0):
        eng2.scan(snap(30, 30, 0, t), t, t)
    eng2.scan(snap(0, 0, 0, 1.5), 1.5, 1.5)
    eng2.scan(snap(30, 30, 0, 2.5), 2.5, 2.5)
    assert eng2.tripped() == []


@pytest.mark.parametrize(
    ("mode", "trips_with_one_bad_and_one_high"),
    [(DegradedMode.VOTE_TRIP, True), (DegradedMode.DROP, False), (DegradedMode.REDUCE, True)],
)
def test_degraded_voting_per_mode(tmp_path: Path, mode: DegradedMode, trips_with_one_bad_and_one_high: bool) -> None:
    eng = make_engine(tmp_path, mode)
    r = eng.scan(snap(30, 0, 0, 0.0, bad="B"), 0.0, 0.0)
    assert (eng.tripped() == ["GT-GAS-2OO3"]) is trips_with_one_bad_and_one_high
    assert any(e.kind is EventKind.ALARM and "degraded" in e.payload["id"] for e in r.events)


def test_bypass_rules(tmp_path: Path) -> None:
    eng = make_engine(tmp_path)
    il = "GT-GAS-2OO3"
    assert not eng.request(Request(Action.BYPASS, OLGA, il, tag="GD-401A", reason="cal", duration_s=60, confirmed_by=BOB), 0, 0).accepted
    assert "reason" in eng.request(Request(Action.BYPASS, ALICE, il, tag="GD-401A", duration_s=60, confirmed_by=BOB), 0, 0).message
    assert "duration" in eng.request(
        Request(Action.BYPASS, ALICE, il, tag="GD-401A", reason="cal", duration_s=99999, confirmed_by=BOB), 0, 0
    ).message
    ok = eng.request(Request(Action.BYPASS, ALICE, il, tag="GD-401A", reason="calibration", duration_s=600, confirmed_by=BOB), 0, 0)
    assert ok.accepted
    second = eng.request(Request(Action.BYPASS, ALICE, il, tag="GD-401B", reason="cal", duration_s=60, confirmed_by=BOB), 1, 1)
    assert not second.accepted and "one member at a time" in second.message
    assert eng.alarms.is_active(f"{il}:bypass")
    # the bypassed input goes to trip: alarmed, and (drop mode) 2oo2 on B and C does not trip
    r = eng.scan(snap(40, 0, 0, 10.0), 10.0, 10.0)
    assert eng.alarms.is_active(f"{il}:bypassed-trip:GD-401A") and eng.tripped() == []
    assert any(e.kind is EventKind.ALARM for e in r.events)
    # it expires by itself
    r = eng.scan(snap(0, 0, 0, 600.0), 600.0, 600.0)
    off = [e for e in r.events if e.kind is EventKind.BYPASS_OFF]
    assert off and off[0].payload["how"] == "expired" and not eng.alarms.is_active(f"{il}:bypass")


def test_force_and_startup_override_expire(tmp_path: Path) -> None:
    eng = make_engine(tmp_path)
    il = "GT-GAS-2OO3"
    eng.request(Request(Action.OVERRIDE, ALICE, il, reason="GT start", duration_s=30, mode="startup"), 0, 0)
    eng.scan(snap(30, 30, 30, 1.0), 1.0, 1.0)
    assert eng.tripped() == []  # overridden during start-up
    eng.scan(snap(30, 30, 30, 31.0), 31.0, 31.0)  # expired in this scan's housekeeping
    eng.scan(snap(30, 30, 30, 31.1), 31.1, 31.1)
    assert eng.tripped() == [il]
    eng2 = make_engine(tmp_path)
    engineer = Actor("erin", frozenset({Role.ENGINEER}))
    engineer2 = Actor("ed", frozenset({Role.ENGINEER}))
    assert not eng2.request(Request(Action.FORCE, ALICE, il, reason="permit 7", duration_s=30, mode="force_trip", confirmed_by=BOB), 0, 0).accepted
    assert eng2.request(Request(Action.FORCE, engineer, il, reason="permit 7", duration_s=30, mode="force_trip", confirmed_by=engineer2), 0, 0).accepted
    r = eng2.scan(snap(0, 0, 0, 0.1), 0.1, 0.1)
    assert eng2.tripped() == [il] and any(e.kind is EventKind.FORCE for e in r.events)


def test_failed_verification_raises_alarm_and_event_at_deadline(tmp_path: Path) -> None:
    eng = make_engine(tmp_path)
    eng.scan(snap(30, 30, 0, 0.0), 0.0, 0.0)
    r = eng.scan(snap(30, 30, 0, 0.9), 0.9, 0.9)
    assert EventKind.COMMAND_FAILED not in kinds(r.events)
    r = eng.scan(snap(30, 30, 0, 1.0), 1.0, 1.0)
    failed = [e for e in r.events if e.kind is EventKind.COMMAND_FAILED]
    assert failed and failed[0].payload["feedback"] == "ZSC-320"
    assert eng.alarms.is_active("cmd:gas_station:XY-400:failed")


def test_manual_command_refused_against_a_latched_trip(tmp_path: Path) -> None:
    eng = make_engine(tmp_path)
    eng.scan(snap(30, 30, 0, 0.0), 0.0, 0.0)
    out = eng.request(Request(Action.COMMAND, OLGA, station="gas_station", tag="XY-400", value=True), 1, 1)
    assert not out.accepted and "held by trip" in out.message
    assert not eng.request(Request(Action.COMMAND, VIEW, station="gas_station", tag="XY-400", value=False), 1, 1).accepted


def test_limit_crossings_with_hysteresis(tmp_path: Path) -> None:
    eng = make_engine(tmp_path)
    seq = [(5, "N"), (11, "H"), (9.5, "H"), (8, "N"), (21, "HH"), (19.5, "HH"), (15, "H")]
    seen = []
    for i, (v, _) in enumerate(seq):
        r = eng.scan(snap(v, 0, 0, float(i)), float(i), float(i))
        seen += [e.payload["to"] for e in r.events if e.kind is EventKind.LIMIT_CROSSING]
    assert seen == ["H", "N", "HH", "H"]


def test_link_events_and_alarm(tmp_path: Path) -> None:
    eng = make_engine(tmp_path)
    eng.link_changed("gas_station", True, 0, 0)
    eng.link_changed("gas_station", False, 5, 5, "timeout")
    eng.link_changed("gas_station", False, 6, 6, "timeout")  # once per outage
    events = eng.take_events()
    assert kinds(events).count(EventKind.LINK_DOWN) == 1
    assert eng.alarms.is_active("link:gas_station")


def test_no_reset_while_the_vote_is_blind_and_a_non_latching_trip_holds(tmp_path: Path) -> None:
    """A cause that cannot be seen has not cleared: with two of three detectors BAD (drop
    keeps 2oo3 -> 2oo1: blind) the trip is not reset; a group still able to vote (one BAD:
    2oo2) can be. A non-latching trip is not released by itself while blind either."""
    eng = make_engine(tmp_path)
    eng.scan(snap(30, 30, 1, 0.0), 0.0, 0.0)
    eng.scan(snap(0, 0, 0, 1.0, bad="AB"), 1.0, 1.0)
    out = eng.request(Request(Action.RESET, ALICE, "GT-GAS-2OO3", confirmed_by=BOB), 1.5, 1.5)
    assert not out.accepted and "blind" in out.message, out.message
    eng.scan(snap(0, 0, 0, 2.0, bad="A"), 2.0, 2.0)  # 2oo2 on B and C, both reading no gas
    assert eng.request(Request(Action.RESET, ALICE, "GT-GAS-2OO3", confirmed_by=BOB), 2.5, 2.5).accepted

    unlatched = make_engine(tmp_path, latch=False)
    st = unlatched.interlocks["GT-GAS-2OO3"]
    unlatched.scan(snap(30, 30, 1, 0.0), 0.0, 0.0)
    unlatched.scan(snap(0, 0, 0, 1.0, bad="AB"), 1.0, 1.0)
    assert st.state is TripState.TRIPPED  # held: the cause cannot be seen
    unlatched.scan(snap(0, 0, 0, 2.0), 2.0, 2.0)
    assert st.state is TripState.NORMAL  # seen clear: released


def test_a_doubtful_healthy_reading_does_not_vouch_for_the_plant(tmp_path: Path) -> None:
    """An UNCERTAIN reading from the device (an OPC-UA Uncertain status: a held value) that
    shows no gas counts as degraded, not healthy; one in the trip direction still votes; a value
    merely past its span (OUT_OF_RANGE) is compared as a measurement."""
    eng = make_engine(tmp_path, mode=DegradedMode.VOTE_TRIP)
    s = snap(0, 0, 0, 0.0)
    s["GD-401A"] = Reading(0.0, Quality.UNCERTAIN, 0.0, Reason.DEVICE_STATUS)
    s["GD-401B"] = Reading(0.0, Quality.UNCERTAIN, 0.0, Reason.OUT_OF_RANGE)
    eng.scan(s, 0.0, 0.0)
    vote = eng.interlocks["GT-GAS-2OO3"].last_vote
    assert vote is not None and vote.degraded == 1 and not vote.trip  # A degraded; B healthy
    s["GD-401B"] = Reading(120.0, Quality.UNCERTAIN, 0.1, Reason.OUT_OF_RANGE)  # over range: gas
    eng.scan(s, 0.1, 0.1)
    assert eng.tripped() == ["GT-GAS-2OO3"]  # under vote_trip: A (doubtful) + B (over range)


def test_an_interlock_that_raises_is_alarmed_and_the_others_still_trip(tmp_path: Path) -> None:
    broken = Interlock(id="BROKEN", station="gas_station", description="raises", members=(
        Condition("GD-401A", Op.GE, 25.0, 2.0),), m=1, degraded=DegradedMode.DROP, effects=())
    eng = make_engine(tmp_path, before=(broken,))  # evaluated first

    def boom(*_: object) -> None:
        raise ValueError("bug")

    eng.interlocks["BROKEN"].evaluate = boom  # type: ignore[method-assign]
    result = eng.scan(snap(30, 30, 1, 0.0), 0.0, 0.0)
    assert eng.tripped() == ["GT-GAS-2OO3"] and result.commands  # the others still trip
    alarm = eng.alarms.alarms["BROKEN:fault"]
    assert alarm.in_alarm and "evaluation failed" in alarm.message


def test_vote_trip_trips_on_a_sensor_fault_never_on_a_lost_link(tmp_path: Path) -> None:
    """Under vote_trip a detector BAD by a sensor fault votes to trip; the same detector BAD
    because the link is down (or not up yet) does not: it is left out, M kept."""
    eng = make_engine(tmp_path, mode=DegradedMode.VOTE_TRIP)
    s = snap(30, 0, 0, 0.0)
    s["GD-401B"] = Reading(0.0, Quality.BAD, 0.0, Reason.COMMS_LOST)
    eng.scan(s, 0.0, 0.0)
    assert eng.tripped() == []  # A votes; B unseen; C healthy: 1 vote of 2
    s["GD-401B"] = Reading(0.0, Quality.BAD, 0.1, Reason.SENSOR_FAULT)
    eng.scan(s, 0.1, 0.1)
    assert eng.tripped() == ["GT-GAS-2OO3"]  # A and the failed B
