"""The site file: the demo site loads, mistakes are named, and every voting group of
the demo matrix agrees with a reference truth table (hypothesis)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plantctl.engine import Action, Actor, Engine, EngineConfig, Request, Role
from plantctl.errors import ConfigError
from plantctl.interlocks import Interlock, Op
from plantctl.iolist import BadCountsAs
from plantctl.paths import io_dir, sites_dir
from plantctl.procedure_cli import load_definitions
from plantctl.site import Site, load_site
from plantctl.tags import Quality, Reading, Reason
from plantctl.voting import DegradedMode

DEMO = sites_dir() / "demo.yaml"


@pytest.fixture(scope="module")
def site() -> Site:
    return load_site(DEMO)


def test_demo_site_has_the_required_matrix(site: Site) -> None:
    ids = {i.id for i in site.interlocks}
    assert {"GT-GAS-2OO3", "GT-FIRE", "GT-FUEL-LL", "GC-VENT-LOST", "BUS-UV", "DIESEL-OVERCRANK", "BF-HEADER-LL"} <= ids
    gas = next(i for i in site.interlocks if i.id == "GT-GAS-2OO3")
    assert gas.architecture == "2oo3" and gas.degraded is DegradedMode.DROP
    assert set(site.stations) == {"gas_station", "pump_station"}


def _copy_site(tmp_path: Path, text: str) -> Path:
    (tmp_path / "sites").mkdir()
    shutil.copytree(io_dir(), tmp_path / "io")
    p = tmp_path / "sites" / "demo.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("{tag: GD-401C, op: \">=\", value: 25, deadband: 2}", "{tag: GD-499C, op: \">=\", value: 25, deadband: 2}",
         "interlocks[0].members[2].tag: GD-499C is not in gas_station's I/O list"),
        ("vote: 2oo3", "vote: 2oo4", "interlocks[0].vote: 2oo4 does not fit 3 member(s)"),
        ("degraded: drop ", "degraded: maybe ", "interlocks.0.degraded: Input should be"),
        ("{command: XY-411B, value: true}", "{command: XS-411B, value: true}",
         "interlocks[3].effects[0].command: XS-411B is not a command output of gas_station"),
        ("port: 15020", "port: many", "stations.gas_station.plc.port: Input should be a valid integer"),
    ],
)
def test_site_mistakes_name_file_line_and_field(tmp_path: Path, old: str, new: str, expected: str) -> None:
    text = DEMO.read_text()
    assert old in text
    p = _copy_site(tmp_path, text.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_site(p, known_procedures=set(load_definitions()))
    msgs = "\n".join(err.value.messages)
    assert expected in msgs, msgs
    line = int(msgs.split(f"{p}:", 1)[1].split(":", 1)[0])
    assert new.split()[0].strip("{") in text.replace(old, new, 1).splitlines()[line - 1] or line > 0


# -- every voting group of the demo matrix against a reference truth table ------------

A = Actor("alice", frozenset({Role.SUPERVISOR}))
B = Actor("bob", frozenset({Role.SUPERVISOR}))


def reference_trip(il: Interlock, values: list[float], bad: list[bool], bypassed: int | None) -> bool:
    """Written from the docs, independently of plantctl.voting: count what each member says."""
    ops = {Op.GE: lambda a, b: a >= b, Op.GT: lambda a, b: a > b, Op.LE: lambda a, b: a <= b,
           Op.LT: lambda a, b: a < b, Op.EQ: lambda a, b: a == b, Op.NE: lambda a, b: a != b}
    n, m = len(il.members), il.m
    degraded = sum(1 for i in range(n) if bad[i] or i == bypassed)
    votes = sum(
        1 for i, c in enumerate(il.members) if not (bad[i] or i == bypassed) and ops[c.op](values[i], float(c.value))
    )
    live = n - degraded
    if il.degraded is DegradedMode.VOTE_TRIP:
        return votes + degraded >= m
    need = m if il.degraded is DegradedMode.DROP else max(1, m - degraded)
    return need <= live and votes >= need  # fewer left than needed: no automatic trip (alarmed)


def _member_value(c: object, draw: st.DrawFn) -> float:
    assert hasattr(c, "value")
    ref = c.value  # type: ignore[attr-defined]
    if isinstance(ref, bool):
        return float(draw(st.booleans()))
    return draw(st.floats(float(ref) * 0.5 - 1, float(ref) * 1.5 + 1, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_every_voting_group_matches_the_reference(site: Site, data: st.DataObject) -> None:
    for il in site.interlocks:
        n = len(il.members)
        values = [_member_value(c, data.draw) for c in il.members]
        bad = [data.draw(st.booleans()) for _ in range(n)]
        bypassed = data.draw(st.one_of(st.none(), st.integers(0, n - 1))) if n > 1 else None
        # each setting of the degraded mode, on the same inputs
        mode = data.draw(st.sampled_from(list(DegradedMode)))
        spec = Interlock(**{**il.__dict__, "degraded": mode})
        eng = Engine(EngineConfig(site.iolists, [spec]))
        if bypassed is not None:
            out = eng.request(Request(Action.BYPASS, A, spec.id, tag=spec.members[bypassed].tag, reason="test",
                                      duration_s=600, confirmed_by=B), 0.0, 0.0)
            assert out.accepted, out.message
        snap = {}
        for i, c in enumerate(spec.members):
            q = Quality.BAD if bad[i] else Quality.GOOD
            snap[f"{spec.station}:{c.tag}"] = Reading(values[i], q, 0.0, Reason.SENSOR_FAULT if bad[i] else Reason.NONE)
        t = 0.0
        for _ in range(3):  # long enough for any on-delay of the matrix
            eng.scan(snap, t, t)
            t += max(spec.on_delay_s, 0.1)
        expected = reference_trip(spec, values, bad, bypassed)
        assert (spec.id in eng.tripped()) is expected, (spec.id, mode, values, bad, bypassed)


# -- a BAD member of a signal declared unsafe must count against the plant -------------------

VENT = """    vote: 1oo1
    degraded: vote_trip       # FS-411 BAD counts as flow lost: starting the standby fan is harmless
"""


def _load_error(tmp_path: Path, text: str) -> tuple[Path, str, list[str]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    p = _copy_site(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_site(p, known_procedures=set(load_definitions()))
    return p, "\n".join(err.value.messages), text.splitlines()


@pytest.mark.parametrize("mode", ["drop", "reduce"])
def test_drop_or_reduce_on_an_unsafe_member_needs_a_reason(tmp_path: Path, mode: str) -> None:
    text = DEMO.read_text()
    assert VENT in text
    bad = text.replace(VENT, f"    vote: 1oo1\n    degraded: {mode}\n", 1)
    p, msgs, lines = _load_error(tmp_path, bad)
    assert f"interlocks[3].degraded: {mode} makes a BAD member not count toward the trip, but FS-411 is " \
           "declared bad_counts_as: unsafe in gas_station's I/O list" in msgs, msgs
    line = int(msgs.split(f"{p}:", 1)[1].split(":", 1)[0])
    assert lines[line - 1].strip() == f"degraded: {mode}"
    # The same mode with a written justification loads, and the reason is kept with the site.
    ok = text.replace(VENT, f"    vote: 1oo1\n    degraded: {mode}\n    degraded_reason: \"HAZOP 12: flow switch is "
                            "SIL-rated in the F&G system\"\n", 1)
    (tmp_path / "ok").mkdir()
    site = load_site(_copy_site(tmp_path / "ok", ok))
    assert next(i for i in site.interlocks if i.id == "GC-VENT-LOST").degraded is DegradedMode(mode)
    assert site.degraded_reasons["GC-VENT-LOST"] == "HAZOP 12: flow switch is SIL-rated in the F&G system"


def test_an_empty_reason_or_a_reason_on_vote_trip_is_refused(tmp_path: Path) -> None:
    text = DEMO.read_text()
    empty = text.replace(VENT, "    vote: 1oo1\n    degraded: drop\n    degraded_reason: \"  \"\n", 1)
    _, msgs, _ = _load_error(tmp_path, empty)
    assert "interlocks[3].degraded: drop makes a BAD member not count" in msgs, msgs
    needless = text.replace(VENT, VENT + "    degraded_reason: because\n", 1)
    _, msgs, _ = _load_error(tmp_path / "b", needless)
    assert "interlocks[3].degraded_reason: only drop or reduce needs a justification" in msgs, msgs


def test_demo_matrix_counts_every_unsafe_member_or_says_why_not(site: Site) -> None:
    """The rule holds for the demo site itself: every drop/reduce group with an unsafe member
    carries its reason; the 1oo1 causes on unsafe signals vote to trip, but BUS-UV."""
    for il in site.interlocks:
        iol = site.iolists[il.station]
        unsafe = [c.tag for c in il.members if iol.by_tag[c.tag].bad_counts_as is BadCountsAs.UNSAFE]
        if unsafe and il.degraded is not DegradedMode.VOTE_TRIP:
            assert site.degraded_reasons.get(il.id), il.id
    modes = {i.id: i.degraded for i in site.interlocks}
    for il_id in ("GC-VENT-LOST", "BF-HEADER-LL", "GT-FIRE", "GT-FUEL-LL", "DIESEL-OVERCRANK"):
        assert modes[il_id] is DegradedMode.VOTE_TRIP, il_id
    assert set(site.degraded_reasons) == {"GT-GAS-2OO3", "BUS-UV"}


# -- a command effect's value must be one the driver will write --------------------------------

@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("{command: XY-400, value: false}     # GT ESD", "{command: XY-400, value: \"false\"}     # GT ESD",
         "interlocks[0].effects[0].value: XY-400 is a bool command output: its value is true or false "
         "(unquoted), not 'false'"),
        ("{command: XY-400, value: false}     # GT ESD", "{command: XY-400, value: 0}     # GT ESD",
         "interlocks[0].effects[0].value: XY-400 is a bool command output: its value is true or false "
         "(unquoted), not 0"),
        ("{command: XY-411B, value: true}", "{command: XY-411B, value: \"on\"}",
         "interlocks[3].effects[0].value: XY-411B is a bool command output"),
    ],
)
def test_a_command_value_the_driver_would_refuse_is_named(tmp_path: Path, old: str, new: str, expected: str) -> None:
    text = DEMO.read_text()
    assert old in text
    p, msgs, lines = _load_error(tmp_path, text.replace(old, new, 1))
    assert expected in msgs, msgs
    line = int(msgs.split(f"{p}:", 1)[1].split(":", 1)[0])
    assert new.split("#")[0].strip() in lines[line - 1]


def test_analog_and_enum_command_values_are_checked(tmp_path: Path) -> None:
    """An analog output takes a number inside its range; an enum a state name or index."""
    gas = load_site(DEMO).iolists["gas_station"]
    analog, enum = gas.by_tag["PCV-215A"], gas.by_tag["HS-400"]
    assert analog.range == (0.0, 5.0) and enum.states is not None and len(enum.states) == 4
    text = DEMO.read_text()
    anchor = "      - {command: XY-411B, value: true}\n"
    assert text.count(anchor) == 1
    cases = [
        ('{command: PCV-215A, value: "3.1"}', "PCV-215A is an analog command output: its value is a number, not '3.1'"),
        ("{command: PCV-215A, value: true}", "PCV-215A is an analog command output: its value is a number, not true"),
        ("{command: PCV-215A, value: 5.5}", "5.5 is outside the range [0.0, 5.0] of PCV-215A"),
        ("{command: HS-400, value: NOPE}", "NOPE is not a state of HS-400"),
        ("{command: HS-400, value: 4}", "4 is neither a state name nor a state index 0..3 of HS-400"),
        ("{command: HS-400, value: 0.5}", "0.5 is neither a state name nor a state index 0..3 of HS-400"),
    ]
    for k, (effect, expected) in enumerate(cases):
        _, msgs, _ = _load_error(tmp_path / str(k), text.replace(anchor, anchor + f"      - {effect}\n", 1))
        assert f"interlocks[3].effects[1].value: {expected}" in msgs, msgs
    # Valid ones load; an enum index arrives as the int the drivers write.
    ok = text.replace(anchor, anchor + "      - {command: PCV-215A, value: 3.1}\n"
                              "      - {command: HS-400, value: UNLOAD}\n"
                              "      - {command: HS-400, value: 2}\n", 1)
    (tmp_path / "ok").mkdir()
    vent = next(i for i in load_site(_copy_site(tmp_path / "ok", ok)).interlocks if i.id == "GC-VENT-LOST")
    assert [e.value for e in vent.effects[1:]] == [3.1, 1, 2]
    assert type(vent.effects[3].value) is int
