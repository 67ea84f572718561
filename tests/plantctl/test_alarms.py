"""The ISA-18.2 alarm board: every state transition, limits with delays and deadband,
suppression by design, shelving, out of service, first-out, floods and KPIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from plantctl.alarms import (
    AlarmBoard,
    AlarmKind,
    AlarmSettings,
    AlarmState,
    Priority,
    alarm_kpis,
    is_annunciation,
    snapshot_view,
)
from plantctl.engine import Action, Actor, Engine, EngineConfig, Request, Role
from plantctl.errors import ConfigError
from plantctl.iolist import IOList, load_io_list
from plantctl.journal import Event, EventKind
from plantctl.tags import Quality, Reading, Reason

ST = "gas_station"
EPOCH = 1_767_225_600.0

IOL = """\
station: gas_station
signals:
  - {tag: GD-401A, description: det A, kind: analog_in, units: "%LEL", range: [0, 100], raw: [4000, 20000],
     modbus: {table: input_register, address: 30001}, alarms: {H: 10, HH: 20}, bad_counts_as: unsafe, bad_means: x}
  - {tag: GD-401B, description: det B, kind: analog_in, units: "%LEL", range: [0, 100], raw: [4000, 20000],
     modbus: {table: input_register, address: 30002}, alarms: {H: 10, HH: 20}, bad_counts_as: unsafe, bad_means: x}
  - {tag: GD-401C, description: det C, kind: analog_in, units: "%LEL", range: [0, 100], raw: [4000, 20000],
     modbus: {table: input_register, address: 30003}, alarms: {H: 10, HH: 20}, bad_counts_as: unsafe, bad_means: x}
  - {tag: PT-322, description: fuel gas pressure, kind: analog_in, units: MPa, range: [0, 5], raw: [4000, 20000],
     modbus: {table: input_register, address: 30004}, alarms: {LL: 2.7, L: 2.9}, bad_counts_as: unsafe, bad_means: x}
  - {tag: PT-220, description: outlet pressure, kind: analog_in, units: MPa, range: [0, 5], raw: [4000, 20000],
     modbus: {table: input_register, address: 30005}, bad_counts_as: unsafe, bad_means: x}
  - {tag: PT-221, description: outlet pressure setpoint, kind: analog_in, units: MPa, range: [0, 5], raw: [4000, 20000],
     modbus: {table: input_register, address: 30006}, bad_counts_as: alarm_only, bad_means: x}
  - {tag: TT-324, description: fuel temperature, kind: analog_in, units: degC, range: [0, 250], raw: [4000, 20000],
     modbus: {table: input_register, address: 30007}, bad_counts_as: alarm_only, bad_means: diagnostic only}
  - tag: XS-400
    description: GT state
    kind: state_enum
    states: ["OFF", STARTING, RUNNING, UNLOADING, STOPPING, TRIPPED]
    modbus: {table: input_register, address: 30008}
    bad_counts_as: not_confirmed
    bad_means: x
  - {tag: TS-402, description: compartment fire, kind: digital_in, modbus: {table: discrete_input, address: 10001},
     alarm_on: true, bad_counts_as: unsafe, bad_means: x}
  - {tag: FS-411, description: ventilation flow OK, kind: digital_in, modbus: {table: discrete_input, address: 10002},
     alarm_on: false, bad_counts_as: unsafe, bad_means: x}
  - {tag: ZSC-320, description: SRV closed, kind: digital_in, modbus: {table: discrete_input, address: 10003},
     bad_counts_as: not_confirmed, bad_means: x}
  - tag: XY-400
    description: GT run permissive
    kind: command_out
    type: bool
    modbus: {table: coil, address: 1}
    feedback:
      "false": {tag: ZSC-320, value: true}
      within_s: 1.0
"""

NORMAL_VALUES: dict[str, Any] = {
    "GD-401A": 0.0, "GD-401B": 0.0, "GD-401C": 0.0, "PT-322": 3.1, "PT-220": 3.1, "PT-221": 3.1, "TT-324": 25.0,
    "XS-400": 2, "TS-402": False, "FS-411": True, "ZSC-320": False, "XY-400": True,
}

OLGA = ("olga", frozenset({"operator"}))
ERIK = ("erik", frozenset({"engineer"}))
VIC = ("vic", frozenset({"viewer"}))


@pytest.fixture
def iol(tmp_path: Path) -> IOList:
    p = tmp_path / "gas_station.yaml"
    p.write_text(IOL)
    return load_io_list(p)


class Plant:
    """Values, a plant clock and the board: evaluate() as the engine's scan would call it."""

    def __init__(self, iol: IOList, settings: dict[str, Any] | None = None) -> None:
        self.board = AlarmBoard()
        self.board.configure({ST: iol}, settings or {})
        self.values = dict(NORMAL_VALUES)
        self.quality: dict[str, tuple[Quality, Reason]] = {}
        self.sample_t: dict[str, float] = {}
        self.now = 0.0
        self.events: list[Event] = []

    @property
    def wall(self) -> float:
        return EPOCH + self.now

    def snapshot(self) -> dict[str, dict[str, Reading]]:
        out = {}
        for tag, v in self.values.items():
            q, why = self.quality.get(tag, (Quality.GOOD, Reason.NONE))
            out[tag] = Reading(v, q, self.sample_t.get(tag, self.now), why)
        return {ST: out}

    def scan(self, **values: Any) -> list[Event]:
        self.values.update({k.replace("_", "-"): v for k, v in values.items()})
        evs = self.board.evaluate(self.snapshot(), self.now, self.wall)
        self.events.extend(evs)
        return evs

    def run(self, seconds: float, dt: float = 0.5, **values: Any) -> list[Event]:
        out = self.scan(**values)
        end = self.now + seconds
        while self.now < end - 1e-9:
            self.now += dt
            out += self.scan()
        return out

    def keep(self, evs: list[Event]) -> list[Event]:
        self.events.extend(evs)
        return evs

    def state(self, aid: str) -> AlarmState:
        a = self.board.get(aid)
        return AlarmState.NORMAL if a is None else a.state


def alarm_events(evs: list[Event], aid: str) -> list[Event]:
    return [e for e in evs if e.kind is EventKind.ALARM and e.payload["id"] == aid]


# ---------------------------------------------------------------------------------------------
# The ISA-18.2 state table: every transition, driven as the plant and the operators would.

A = f"{ST}:GD-401A:H"
SETTINGS_TABLE: dict[str, Any] = {
    "suppress": [{"name": "GT off", "when": {"tag": f"{ST}:XS-400", "op": "in", "value": ["OFF"]},
                  "alarms": [f"{ST}:GD-401A:*"]}],
    "shelving": {"roles": ["operator", "supervisor"], "max_h": 8},
}


def _act(p: Plant, action: str) -> list[Event]:
    b = p.board
    p.now += 1.0
    if action == "alarm":
        return p.scan(GD_401A=15.0)
    if action == "rtn":
        return p.scan(GD_401A=0.0)
    if action == "ack":
        return p.keep(b.ack(A, "olga", p.now, p.wall))
    if action == "reset":
        return p.keep(b.reset(A, "olga", p.now, p.wall).events)
    if action == "shelve":
        return p.keep(b.shelve(A, OLGA[0], OLGA[1], 600.0, "chattering during pigging", p.now, p.wall).events)
    if action == "unshelve":
        return p.keep(b.unshelve(A, "olga", p.now, p.wall).events)
    if action == "expire":
        p.now += 600.0
        return p.scan()
    if action == "suppress":
        return p.scan(XS_400=0)
    if action == "release":
        return p.scan(XS_400=2)
    if action == "oos":
        return p.keep(b.set_out_of_service(A, ERIK[0], ERIK[1], "WO-4711 detector recalibration", p.now, p.wall).events)
    if action == "ris":
        return p.keep(b.return_to_service(A, ERIK[0], ERIK[1], p.now, p.wall).events)
    raise AssertionError(action)


N, U, K, R, LT = AlarmState.NORMAL, AlarmState.UNACK, AlarmState.ACKED, AlarmState.RTN_UNACK, AlarmState.LATCHED
SH, SU, OS = AlarmState.SHELVED, AlarmState.SUPPRESSED, AlarmState.OUT_OF_SERVICE

# (setup actions, latching, action, expected state, user journaled (None: no event), condition after)
TABLE: list[tuple[tuple[str, ...], bool, str, AlarmState, str | None, bool]] = [
    ((), False, "alarm", U, "", True),
    (("alarm",), False, "ack", K, "olga", True),
    (("alarm",), False, "rtn", R, "", False),
    (("alarm", "ack"), False, "rtn", N, "", False),
    (("alarm", "rtn"), False, "ack", N, "olga", False),
    (("alarm", "rtn"), False, "alarm", U, "", True),
    (("alarm", "ack"), False, "ack", K, None, True),
    ((), False, "ack", N, None, False),
    # latched
    (("alarm",), True, "rtn", LT, "", False),
    (("alarm", "ack"), True, "rtn", LT, "", False),
    (("alarm", "rtn"), True, "ack", LT, "olga", False),
    (("alarm", "rtn"), True, "reset", N, "olga", False),
    (("alarm", "ack", "rtn"), True, "reset", N, "olga", False),
    (("alarm", "rtn"), True, "alarm", U, "", True),
    (("alarm",), True, "reset", U, None, True),
    # shelved
    (("alarm",), False, "shelve", SH, "olga", True),
    ((), False, "shelve", SH, "olga", False),
    (("alarm", "rtn"), False, "shelve", SH, "olga", False),
    (("alarm", "rtn"), True, "shelve", SH, "olga", False),
    (("alarm", "shelve"), False, "unshelve", U, "olga", True),
    (("shelve",), False, "unshelve", N, "olga", False),
    (("alarm", "shelve"), False, "expire", U, "", True),
    (("shelve",), False, "expire", N, "", False),
    (("alarm", "shelve", "rtn"), False, "expire", N, "", False),
    (("shelve",), False, "alarm", SH, "", True),
    (("alarm", "shelve"), False, "rtn", SH, "", False),
    (("shelve", "alarm"), False, "ack", SH, None, True),
    # suppressed by design
    ((), False, "suppress", SU, "", False),
    (("alarm",), False, "suppress", SU, "", True),
    (("alarm", "suppress"), False, "release", U, "", True),
    (("suppress",), False, "release", N, "", False),
    (("suppress",), False, "alarm", SU, "", True),
    (("suppress", "alarm"), False, "release", U, "", True),
    # out of service
    (("alarm", "ack"), False, "oos", OS, "erik", True),
    (("alarm", "oos"), False, "ris", U, "erik", True),
    (("oos",), False, "ris", N, "erik", False),
    (("alarm", "shelve"), False, "oos", OS, "erik", True),
    (("oos",), False, "shelve", OS, None, False),
    (("oos",), False, "alarm", OS, "", True),
]


@pytest.mark.parametrize(("setup", "latching", "action", "expected", "user", "condition"), TABLE,
                         ids=[f"{'+'.join(r[0]) or 'normal'}{'(latching)' if r[1] else ''}--{r[2]}" for r in TABLE])
def test_isa_18_2_state_table(iol: IOList, setup: tuple[str, ...], latching: bool, action: str,
                              expected: AlarmState, user: str | None, condition: bool) -> None:
    settings = dict(SETTINGS_TABLE, latching=[A] if latching else [])
    p = Plant(iol, settings)
    for step in setup:
        _act(p, step)
    before = p.state(A)
    evs = alarm_events(_act(p, action), A)
    assert p.state(A) is expected
    assert p.board.is_active(A) is condition
    if user is None:
        assert evs == []
        return
    assert evs, f"no event for {before.value} --{action}-->"
    last = evs[-1]
    # every change journaled: new state, old state, the user, the condition
    assert last.payload["state"] == expected.value
    assert last.payload["from"] == before.value
    assert last.user == user
    assert last.payload["condition"] is condition


def test_annunciation_counts_only_visible_returns(iol: IOList) -> None:
    p = Plant(iol, SETTINGS_TABLE)
    for step in ("alarm", "rtn", "alarm", "shelve", "rtn", "alarm", "unshelve", "ack"):
        _act(p, step)
    ann = [e for e in alarm_events(p.events, A) if is_annunciation(e)]
    # first raise, the return from RTN_UNACK, the unshelve with the condition present; not while shelved
    assert len(ann) == 3


def test_shelving_needs_role_reason_bounded_duration_and_not_critical(iol: IOList) -> None:
    p = Plant(iol, {"shelving": {"roles": ["operator"], "max_h": 1}, "tags": {f"{ST}:GD-401B": {"priority": {"HH": "critical"}}}})
    b = p.board
    p.scan(GD_401A=25.0, GD_401B=25.0)
    refused = [
        b.shelve(A, VIC[0], VIC[1], 60, "why not", p.now, p.wall),
        b.shelve(A, OLGA[0], OLGA[1], 60, "  ", p.now, p.wall),
        b.shelve(A, OLGA[0], OLGA[1], 3601, "long job", p.now, p.wall),
        b.shelve(A, OLGA[0], OLGA[1], 0, "no time", p.now, p.wall),
        b.shelve(f"{ST}:GD-401B:HH", OLGA[0], OLGA[1], 60, "critical", p.now, p.wall),
        b.shelve("nope", OLGA[0], OLGA[1], 60, "unknown", p.now, p.wall),
    ]
    assert [o.accepted for o in refused] == [False] * 6
    assert all(o.events == [] for o in refused)
    assert "role" in refused[0].message and "reason" in refused[1].message and "critical" in refused[4].message
    assert b.get(f"{ST}:GD-401B:HH") is not None and b.get(f"{ST}:GD-401B:HH").priority is Priority.CRITICAL  # type: ignore[union-attr]
    ok = b.shelve(A, OLGA[0], OLGA[1], 3600, "detector being cleaned", p.now, p.wall)
    assert ok.accepted and ok.events[0].payload["reason"] == "detector being cleaned"
    assert ok.events[0].payload["until"] == pytest.approx(p.now + 3600)
    assert A not in [a.id for a in b.active()] and A in [a.id for a in b.shelved()]
    assert not b.set_out_of_service(A, OLGA[0], OLGA[1], "no", p.now, p.wall).accepted  # operator: not permitted
    assert not b.set_out_of_service(A, ERIK[0], ERIK[1], " ", p.now, p.wall).accepted  # no work order
    assert not b.reset(A, "olga", p.now, p.wall).accepted  # not latched


def test_engine_api_unchanged(iol: IOList) -> None:
    b = AlarmBoard()
    ev = b.raise_("link:gas_station", "PLC link lost", Priority.CRITICAL, 1.0, EPOCH + 1, ST, "fieldbus")
    assert [e.payload["state"] for e in ev] == ["unacknowledged"] and ev[0].source == "fieldbus"
    assert b.raise_("link:gas_station", "again", Priority.CRITICAL, 2.0, EPOCH + 2, ST, "fieldbus") == []
    assert b.is_active("link:gas_station") and b.active()[0].id == "link:gas_station"
    b.raise_("x:low", "low one", Priority.LOW, 3.0, EPOCH + 3, ST, "x")
    assert [a.id for a in b.active()] == ["link:gas_station", "x:low"]  # priority first
    assert b.clear("link:gas_station", 4.0, EPOCH + 4)[0].payload["state"] == "returned unacknowledged"
    assert not b.is_active("link:gas_station") and b.alarms["link:gas_station"].state is AlarmState.RTN_UNACK
    ack = b.ack("link:gas_station", "olga", 5.0, EPOCH + 5)
    assert ack[0].user == "olga" and ack[0].payload["state"] == "normal"
    assert "link:gas_station" not in b.alarms  # ad-hoc alarms leave the board once normal
    assert b.ack("link:gas_station", "olga", 6.0, EPOCH + 6) == []
    assert b.clear("never-raised", 6.0, EPOCH + 6) == []


def test_engine_acks_a_configured_limit_alarm_through_its_request(tmp_path: Path, iol: IOList) -> None:
    eng = Engine(EngineConfig({ST: iol}, []))
    eng.alarms.configure({ST: iol}, {})
    snap = {t: Reading(v, Quality.GOOD, 1.0) for t, v in NORMAL_VALUES.items()}
    snap["GD-401C"] = Reading(12.0, Quality.GOOD, 1.0)
    evs = eng.alarms.evaluate(snapshot_view(snap, [ST]), 1.0, EPOCH + 1)
    assert [e.payload["id"] for e in evs] == [f"{ST}:GD-401C:H"]
    out = eng.request(Request(Action.ACK, Actor("olga", frozenset({Role.OPERATOR})), tag=f"{ST}:GD-401C:H"), 2.0, EPOCH + 2)
    assert out.accepted and eng.alarms.get(f"{ST}:GD-401C:H").state is AlarmState.ACKED  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------
# Limits: deadband, delays, digital, deviation, rate, BAD


def test_deadband_holds_the_alarm_until_past_it(iol: IOList) -> None:
    p = Plant(iol, {"tags": {f"{ST}:GD-401A": {"deadband": 1.0}}})
    assert alarm_events(p.scan(GD_401A=9.99), A) == []
    assert alarm_events(p.scan(GD_401A=10.0), A)[0].payload["value"] == 10.0
    p.now += 1
    assert alarm_events(p.scan(GD_401A=9.2), A) == []  # inside the deadband: still in alarm
    assert p.board.is_active(A)
    p.now += 1
    rtn = alarm_events(p.scan(GD_401A=8.9), A)
    assert rtn[0].payload["state"] == "returned unacknowledged" and rtn[0].payload["limit"] == 10.0


def test_default_deadband_is_a_fraction_of_span(iol: IOList) -> None:
    p = Plant(iol, {"deadband_frac": 0.02})  # 2 %LEL on 0-100
    p.scan(GD_401A=11)
    p.now += 1
    p.scan(GD_401A=8.5)
    assert p.board.is_active(A)
    p.now += 1
    p.scan(GD_401A=7.9)
    assert not p.board.is_active(A)


def test_on_delay_ignores_short_excursions_and_off_delay_holds_the_alarm(iol: IOList) -> None:
    p = Plant(iol, {"tags": {f"{ST}:GD-401A": {"on_delay_s": 3.0, "off_delay_s": 5.0}}})
    assert alarm_events(p.run(2.5, GD_401A=12.0), A) == []  # 2.5 s < 3 s
    p.run(2.0, GD_401A=0.0)
    evs = p.run(4.0, GD_401A=12.0)
    raised = alarm_events(evs, A)
    assert len(raised) == 1 and raised[0].payload["state"] == "unacknowledged"
    t_raise = raised[0].t_plant
    assert t_raise - (p.now - 4.0) == pytest.approx(3.0)
    evs = p.run(4.5, GD_401A=0.0)
    assert alarm_events(evs, A) == []  # off-delay 5 s not yet over
    p.scan(GD_401A=13.0)  # back before the off-delay ran out: still the same alarm
    p.now += 0.5
    evs = p.run(6.0, GD_401A=0.0)
    rtn = alarm_events(evs, A)
    assert len(rtn) == 1 and rtn[0].t_plant - (p.now - 6.0) == pytest.approx(5.0)


def test_digital_alarm_on_true_and_on_false(iol: IOList) -> None:
    p = Plant(iol)
    evs = p.scan(TS_402=True, FS_411=False)
    ids = {e.payload["id"] for e in evs}
    assert ids == {f"{ST}:TS-402:ALM", f"{ST}:FS-411:ALM"}
    assert p.board.get(f"{ST}:TS-402:ALM").priority is Priority.HIGH  # type: ignore[union-attr]
    p.now += 1
    evs = p.scan(TS_402=False, FS_411=True)
    assert {e.payload["state"] for e in evs} == {"returned unacknowledged"}


def test_bad_reading_holds_and_alarm_only_signal_raises_a_bad_alarm(iol: IOList) -> None:
    p = Plant(iol)
    p.scan(GD_401A=15.0)
    p.now += 1
    p.quality["GD-401A"] = (Quality.BAD, Reason.SENSOR_FAULT)
    p.scan(GD_401A=0.0)
    assert p.board.is_active(A)  # a value that cannot be read does not clear the alarm
    assert p.board.get(f"{ST}:GD-401A:BAD") is None  # unsafe signals: their interlock handles BAD
    p.quality["TT-324"] = (Quality.BAD, Reason.COMMS_LOST)
    assert alarm_events(p.scan(), f"{ST}:TT-324:BAD") == []  # the link alarm covers lost comms
    p.quality["TT-324"] = (Quality.BAD, Reason.SENSOR_FAULT)
    bad = alarm_events(p.scan(), f"{ST}:TT-324:BAD")
    assert bad and bad[0].payload["state"] == "unacknowledged" and "diagnostic only" in bad[0].payload["message"]
    assert p.board.get(f"{ST}:TT-324:BAD").priority is Priority.LOW  # type: ignore[union-attr]


def test_deviation_from_a_value_and_from_another_tag(iol: IOList) -> None:
    p = Plant(iol, {"deviation": [
        {"tag": f"{ST}:PT-220", "reference_tag": "PT-221", "limit": 0.2, "priority": "high"},
        {"tag": f"{ST}:PT-322", "reference": 3.1, "limit": 0.3, "deadband": 0.05},
    ]})
    evs = p.scan(PT_220=3.35, PT_221=3.1)
    assert [e.payload["id"] for e in evs] == [f"{ST}:PT-220:DEV"]
    assert evs[0].payload["priority"] == int(Priority.HIGH)
    p.now += 1
    assert p.scan(PT_221=3.3) and not p.board.is_active(f"{ST}:PT-220:DEV")  # setpoint followed
    p.now += 1
    assert alarm_events(p.scan(PT_322=3.45), f"{ST}:PT-322:DEV")
    p.now += 1
    p.scan(PT_322=3.36)
    assert p.board.is_active(f"{ST}:PT-322:DEV")  # 0.26 > 0.3 - 0.05
    p.now += 1
    p.scan(PT_322=3.3)
    assert not p.board.is_active(f"{ST}:PT-322:DEV")


def test_rate_of_change(iol: IOList) -> None:
    p = Plant(iol, {"rate": [{"tag": f"{ST}:PT-220", "limit_per_s": 0.01, "window_s": 10}]})
    aid = f"{ST}:PT-220:ROC"
    p.run(20, PT_220=3.1)
    assert not p.board.is_active(aid)
    v = 3.1
    for _ in range(10):  # falling 0.004 MPa/s: slow
        v -= 0.002
        p.now += 0.5
        p.scan(PT_220=v)
    assert not p.board.is_active(aid)
    raised = []
    for _ in range(30):  # falling 0.03 MPa/s: a burst pipe
        v -= 0.015
        p.now += 0.5
        raised += alarm_events(p.scan(PT_220=v), aid)
    assert raised and raised[0].payload["state"] == "unacknowledged"
    p.run(20, PT_220=v)
    assert not p.board.is_active(aid)


def test_priorities_default_by_kind_and_overridden_per_tag(iol: IOList) -> None:
    p = Plant(iol, {"priorities": {"H": "low"}, "tags": {f"{ST}:GD-401C": {"priority": {"HH": 1}}}})
    b = p.board
    assert b.get(f"{ST}:GD-401A:H").priority is Priority.LOW  # type: ignore[union-attr]
    assert b.get(f"{ST}:GD-401A:HH").priority is Priority.HIGH  # type: ignore[union-attr]
    assert b.get(f"{ST}:GD-401C:HH").priority is Priority.CRITICAL  # type: ignore[union-attr]
    assert b.get(f"{ST}:PT-322:L").priority is Priority.MEDIUM  # type: ignore[union-attr]
    p.scan(GD_401A=30.0, GD_401C=30.0)
    assert [a.id for a in b.active()][0] == f"{ST}:GD-401C:HH"


def test_disabled_kinds_are_not_configured(iol: IOList) -> None:
    p = Plant(iol, {"tags": {f"{ST}:PT-322": {"disabled": ["L"]}}})
    assert p.board.get(f"{ST}:PT-322:L") is None and p.board.get(f"{ST}:PT-322:LL") is not None


# ---------------------------------------------------------------------------------------------
# Suppression by design, first-out, flood


def test_low_pressure_alarms_suppressed_while_the_gt_is_stopped(iol: IOList) -> None:
    p = Plant(iol, {"suppress": [{
        "name": "GT not running", "when": {"tag": f"{ST}:XS-400", "op": "in", "value": ["OFF", "TRIPPED"]},
        "alarms": [f"{ST}:PT-322:L", f"{ST}:PT-322:LL"], "release_delay_s": 30}]})
    p.run(2)
    evs = p.scan(XS_400=5)  # GT tripped
    assert {e.payload["id"] for e in evs} == {f"{ST}:PT-322:L", f"{ST}:PT-322:LL"}
    assert {e.payload["state"] for e in evs} == {"suppressed by design"}
    assert {e.payload["rule"] for e in evs} == {"GT not running"}
    evs = p.run(10, PT_322=1.0)  # the pressure falls behind the closed SRV
    assert p.board.active() == []
    assert {e.payload["state"] for e in evs} == {"suppressed by design"} and all(e.payload["condition"] for e in evs)
    assert p.board.is_active(f"{ST}:PT-322:LL")
    evs = p.run(25, XS_400=1)  # restarting with low pressure: suppression holds for the release delay
    assert p.board.active() == []
    evs = p.run(10)
    ann = [e for e in evs if is_annunciation(e)]
    assert {e.payload["id"] for e in ann} == {f"{ST}:PT-322:L", f"{ST}:PT-322:LL"}
    assert ann[0].t_plant - (p.now - 35) == pytest.approx(30.0, abs=0.6)
    # a suppressed condition that is unreadable does not suppress (fail safe)
    p.quality["XS-400"] = (Quality.BAD, Reason.DEVICE_STATUS)
    p.scan(XS_400=0)
    assert p.state(f"{ST}:PT-322:LL") is AlarmState.UNACK


def test_suppression_covers_alarms_raised_by_the_engine(iol: IOList) -> None:
    p = Plant(iol, {"suppress": [{"name": "GT off", "when": {"tag": f"{ST}:XS-400", "value": 0},
                                  "alarms": ["cmd:gas_station:XY-400:*"]}]})
    p.scan(XS_400=0)
    evs = p.board.raise_("cmd:gas_station:XY-400:failed", "XY-400 not confirmed", Priority.HIGH, p.now, p.wall, ST, "x")
    assert evs[0].payload["state"] == "suppressed by design" and p.board.active() == []


def test_first_out_names_the_earliest_sample_of_the_group(iol: IOList) -> None:
    p = Plant(iol, {"first_out_groups": {"GT-400": [f"{ST}:GD-401*", f"{ST}:TS-402:*", "GT-*:trip"]}})
    p.run(1)
    # A and B cross in the same scan, but B's sample is older: B is first out.
    p.sample_t = {"GD-401A": p.now + 1.0, "GD-401B": p.now + 0.7}
    p.now += 1
    evs = p.scan(GD_401A=12.0, GD_401B=11.0)
    assert [e.payload["id"] for e in evs] == [f"{ST}:GD-401B:H", f"{ST}:GD-401A:H"]
    assert evs[0].payload["first_out"] == "GT-400" and "first_out" not in evs[1].payload
    p.sample_t = {}
    p.run(2, GD_401A=22.0, GD_401B=22.0, GD_401C=15.0, TS_402=True)
    assert p.board.first_out == {"GT-400": f"{ST}:GD-401B:H"}
    # everything back, acknowledged: the group is reset, the next event has a new first-out
    p.run(1, GD_401A=0.0, GD_401B=0.0, GD_401C=0.0, TS_402=False)
    p.keep(p.board.ack_all("olga", p.now, p.wall))
    p.scan()
    assert p.board.first_out == {}
    evs = p.scan(TS_402=True)
    assert evs[0].payload["first_out"] == "GT-400" and p.board.first_out["GT-400"] == f"{ST}:TS-402:ALM"


def test_flood_more_than_ten_in_ten_minutes_per_area_with_the_rate(iol: IOList) -> None:
    p = Plant(iol, {"areas": {"GT": [f"{ST}:GD-401*", f"{ST}:TS-402"], "fuel": [ST]},
                    "flood": {"threshold": 10, "window_s": 600, "end_below": 5}})
    b = p.board
    assert b.get(f"{ST}:GD-401A:H").area == "GT" and b.get(f"{ST}:PT-322:L").area == "fuel"  # type: ignore[union-attr]
    floods: list[Event] = []
    # 12 annunciations in the GT area, one every 30 s (a chattering detector and its neighbours)
    for i in range(6):
        p.now += 15
        floods += alarm_events(p.scan(GD_401A=12.0, GD_401B=12.0), "flood:GT")
        p.now += 15
        p.scan(GD_401A=0.0, GD_401B=0.0)
        p.keep(b.ack_all("olga", p.now, p.wall))
        p.scan(PT_322=2.8 if i % 2 else 3.1)  # fuel area alarms do not count for GT
    assert len(floods) == 1
    f = floods[0]
    assert f.payload["state"] == "unacknowledged" and f.payload["alarms_in_window"] == 11
    assert f.payload["rate_per_10min"] == 11.0 and f.payload["rate_per_hour"] == 66.0
    assert b.flooding().keys() == {"GT"}
    rate = b.alarm_rate("GT", p.now)
    assert rate.count == 12 and rate.flooding
    assert not b.alarm_rate("fuel", p.now).flooding
    # quiet: the window slides and the flood ends once 5 or fewer remain in it
    evs = p.run(700, dt=10.0)
    end = alarm_events(evs, "flood:GT")
    assert end and end[-1].payload["condition"] is False and end[-1].payload["flood_s"] > 0
    assert b.flooding() == {}


# ---------------------------------------------------------------------------------------------
# KPIs


def test_kpis_per_hour_top_ten_chattering_and_stale(iol: IOList) -> None:
    p = Plant(iol, {"chattering": {"count": 3, "window_s": 60}, "stale_after_h": 1})
    b = p.board
    # GD-401A chatters: 4 times in 40 s
    for _ in range(4):
        p.now += 5
        p.scan(GD_401A=12.0)
        p.now += 5
        p.scan(GD_401A=0.0)
    # TS-402 once, and it stands for two hours
    p.now += 1
    p.scan(TS_402=True)
    p.keep(b.ack(f"{ST}:TS-402:ALM", "olga", p.now, p.wall))
    p.now += 2 * 3600
    p.scan()
    k = b.kpis(p.wall, since_wall=EPOCH)
    assert k.annunciations == 5
    assert k.per_hour == pytest.approx(5 / ((p.wall - EPOCH) / 3600))
    assert k.top_ten[0] == (A, 4) and (f"{ST}:TS-402:ALM", 1) in k.top_ten
    assert k.chattering == [(A, 4)]
    assert [s[0] for s in k.stale] == [f"{ST}:TS-402:ALM"] and k.stale[0][1] > 3600
    assert k.peak_per_10min == 5
    # the same function over journaled events gives the same figures
    j = alarm_kpis(p.events, EPOCH, p.wall, chatter_count=3, chatter_window_s=60, stale_after_s=3600)
    assert j.as_dict() == k.as_dict()


# ---------------------------------------------------------------------------------------------
# Configuration


def test_settings_errors_name_every_problem(iol: IOList) -> None:
    with pytest.raises(ConfigError) as e1:
        AlarmSettings.from_dict({"flood": {"threshold": 0}, "bogus": 1})
    assert any("flood.threshold" in m for m in e1.value.messages) and any("bogus" in m for m in e1.value.messages)
    with pytest.raises(ConfigError) as e2:
        AlarmSettings.from_dict({"priorities": {"H": "urgent", "ZZ": 1}, "deviation": [{"tag": "PT-220", "limit": 1}],
                                 "suppress": [{"name": "a", "when": {"tag": f"{ST}:XS-400", "op": "in", "value": 0},
                                               "alarms": ["x"]}]})
    msgs = "\n".join(e2.value.messages)
    assert "urgent" in msgs and "ZZ" in msgs and "station:TAG" in msgs and "reference" in msgs and "needs a list" in msgs
    b = AlarmBoard()
    with pytest.raises(ConfigError) as e3:
        b.configure({ST: iol}, {"tags": {f"{ST}:NOPE-1": {"deadband": 1}},
                                "rate": [{"tag": "pump_station:PT-720", "limit_per_s": 1}],
                                "suppress": [{"name": "a", "when": {"tag": f"{ST}:XS-400", "op": "in", "value": ["PARKED"]},
                                              "alarms": ["x"]}]})
    msgs = "\n".join(e3.value.messages)
    assert "NOPE-1" in msgs and "pump_station" in msgs and "PARKED" in msgs


def test_reconfigure_keeps_the_state_of_alarms_that_remain(iol: IOList) -> None:
    p = Plant(iol)
    p.scan(GD_401A=15.0)
    p.board.configure({ST: iol}, {"tags": {f"{ST}:PT-322": {"disabled": ["L", "LL"]}}})
    assert p.state(A) is AlarmState.UNACK and p.board.get(f"{ST}:PT-322:L") is None


def test_every_configured_alarm_has_its_kind_and_message(iol: IOList) -> None:
    b = AlarmBoard()
    b.configure({ST: iol}, {})
    kinds = {a.id: a.kind for a in b.alarms.values()}
    assert kinds[A] is AlarmKind.H and kinds[f"{ST}:PT-322:LL"] is AlarmKind.LL
    assert kinds[f"{ST}:TS-402:ALM"] is AlarmKind.DIGITAL and kinds[f"{ST}:TT-324:BAD"] is AlarmKind.BAD
    assert f"{ST}:ZSC-320:ALM" not in kinds and not any(":XY-400:" in k for k in kinds)
    assert "limit 2.7 MPa" in b.alarms[f"{ST}:PT-322:LL"].message
