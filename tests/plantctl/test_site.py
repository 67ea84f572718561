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
