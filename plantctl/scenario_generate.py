"""``plantctl scenario generate --from-ce SITE``: one scenario per cause-to-effect path of a site.

Theory of operation
-------------------
Every interlock of the site's cause-and-effect matrix becomes a scenario that
drives its members to the trip condition and expects the TRIP event and each
effect: a command verified by its feedback (or issued, where the I/O list
declares no feedback, or where the cause needs equipment that ignores its
commands), or a procedure started. Every voting group (N > 1) gets one more
scenario per degraded-voting mode (vote_trip, drop, reduce) with one member
faulted and one more driven to trip, and the expectation that mode implies: a
trip with the degraded architecture, or no trip and the degraded alarm. A
scenario cannot change the site's configuration, so the mode is set with the
scenario key ``degraded_override``.

How a member is driven, in order of preference:

1. a *physical* cause known for the reference plants (``PHYSICAL``): the fault
   that makes the process itself cross the limit (a fire, the ventilation lost,
   the 6 kV supply lost, a diesel that never starts);
2. a *stuck* fault of the catalogue: one that takes the member's tag and a
   ``value`` (``detector_stuck``): the reading is frozen beyond the limit;
3. a *signal* fault: one that takes only the member's tag (``sensor_fault``):
   the reading goes BAD, which trips only under ``vote_trip``, so the scenario
   sets ``degraded_override: {ID: vote_trip}`` and says so.

A member none of these can drive leaves its path out, reported on stderr.
The expectations are written from the modes' documented meaning (voting.py's
docstring), not computed by plantctl.voting, so a regression there fails them.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .interlocks import Condition, Interlock, Op
from .iolist import Kind, Signal
from .procedure_cli import load_definitions
from .site import Site, load_site
from .voting import DegradedMode


@dataclass(frozen=True)
class Drive:
    """Faults that put one member in its trip state, and how long the trip may take."""

    initial: tuple[tuple[str, dict[str, Any]], ...] = ()  # present from t = 0
    at_5s: tuple[tuple[str, dict[str, Any]], ...] = ()  # injected at 5 s
    trip_within_s: float = 30.0
    ignores_commands: bool = False  # the equipment will not answer the effect commands
    why: str = ""
    override: DegradedMode | None = None


# Physical causes of the reference plants (plant-reference sections 3 and 5), by (station, tag).
PHYSICAL: dict[tuple[str, str], Drive] = {
    ("gas_station", "TS-402"): Drive(at_5s=(("fire", {"zone": "GC"}),), why="a fire in the GT compartment"),
    ("gas_station", "FS-411"): Drive(at_5s=(("ventilation_lost", {"which": "all"}),), trip_within_s=30.0,
                                     why="the compartment extraction lost"),
    # The GT's own PLC trips on PT-322 LL with the same 2 s delay and disarms this backup cause; it is
    # shown with the GT ignoring its trips, so its effect commands are issued but cannot be verified.
    ("gas_station", "PT-322"): Drive(initial=(("gt_fails_to_trip", {}),), at_5s=(("instrument_air_lost", {}),),
                                     trip_within_s=30.0, ignores_commands=True,
                                     why="instrument air lost (supply valves close) with the GT ignoring its own "
                                         "trip, as the GT's PLC would otherwise trip first"),
    ("pump_station", "EI-601"): Drive(at_5s=(("power_loss", {}),), why="the 6 kV supply lost"),
    ("pump_station", "XA-801"): Drive(initial=(("diesel_fail_cranks", {"n": 6}),), at_5s=(("power_loss", {}),),
                                      trip_within_s=300.0, why="the diesel failing all six cranks after a power loss"),
    ("pump_station", "PT-720"): Drive(initial=(("diesel_fail_cranks", {"n": 6}),), at_5s=(("power_loss", {}),),
                                      trip_within_s=60.0, why="a power loss with no diesel"),
}


@dataclass
class Generated:
    path: Path
    name: str
    interlock: str
    mode: str | None = None


@dataclass
class _Catalogue:
    specs: list[Any] = field(default_factory=list)

    def _tagged(self, station: str, tag: str) -> list[Any]:
        out = []
        for s in self.specs:
            if s.station != station:
                continue
            p = {x.name: x for x in s.params}
            if "tag" in p and p["tag"].choices is not None and tag in p["tag"].choices:
                out.append(s)
        return out

    def stuck(self, station: str, tag: str) -> Any | None:
        for s in self._tagged(station, tag):
            if {x.name for x in s.params} == {"tag", "value"}:
                return s
        return None

    def signal_fault(self, station: str, tag: str) -> Any | None:
        """A fault that makes the member BAD (open loop first: it keeps the PLC's own view honest)."""
        cands = [s for s in self._tagged(station, tag) if {x.name for x in s.params} == {"tag"}]
        cands.sort(key=lambda s: (0 if "open_loop" in s.name else 1, s.name))
        return cands[0] if cands else None


def _beyond(cond: Condition, sig: Signal) -> float:
    """A value well inside the trip side of the condition (10 % of span past the limit)."""
    lo, hi = sig.range or (0.0, 100.0)
    margin = 0.1 * (hi - lo)
    limit = float(cond.value)
    v = limit + margin if cond.op in (Op.GE, Op.GT) else limit - margin
    return round(min(hi, max(lo, v)), 3)


def drive(il: Interlock, cond: Condition, site: Site, cat: _Catalogue) -> Drive | None:
    """How to put one member of ``il`` in its trip state, or None."""
    phys = PHYSICAL.get((il.station, cond.tag))
    if phys is not None:
        return phys
    sig = site.stations[il.station].iolist.by_tag[cond.tag]
    stuck = cat.stuck(il.station, cond.tag)
    if stuck is not None and sig.kind is Kind.ANALOG_IN:
        v = _beyond(cond, sig)
        return Drive(at_5s=((stuck.name, {"tag": cond.tag, "value": v}),),
                     why=f"{cond.tag} frozen at {v} {sig.units} ({stuck.name})")
    bad = cat.signal_fault(il.station, cond.tag)
    if bad is not None:
        return Drive(at_5s=((bad.name, {"tag": cond.tag}),), override=DegradedMode.VOTE_TRIP,
                     why=f"{cond.tag} BAD ({bad.name}), which votes to trip under vote_trip")
    return None


def implied(mode: DegradedMode, m: int, n: int, faulted: int, tripping: int) -> tuple[bool, str]:
    """What a degraded mode means (voting.py's docstring): (trips?, architecture after degradation)."""
    if mode is DegradedMode.VOTE_TRIP:  # a faulted member is a trip vote
        return tripping + faulted >= m, f"{m}oo{n}"
    live = n - faulted
    req = m if mode is DegradedMode.DROP else max(1, m - faulted)
    return req <= live and tripping >= req, f"{req}oo{live}"


def _feedback_s(sig: Signal) -> float:
    """The longest feedback deadline the I/O list gives a command (0 without feedback)."""
    fb = sig.feedback or {}
    times = [float(fb.get("within_s", 0.0))]
    times += [float(v["within_s"]) for v in fb.values() if isinstance(v, dict) and "within_s" in v]
    return max(times)


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _effect_expectations(il: Interlock, site: Site, within: float, ignores: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    iol = site.stations[il.station].iolist
    for eff in il.effects:
        if eff.procedure:
            out.append({"event": "PROCEDURE_TRANSITION", "where": {"procedure": eff.procedure, "trigger": "start"},
                        "within": f"{within:g} s", "says": f"{il.id} starts {eff.procedure}"})
            continue
        sig = iol.by_tag[str(eff.command)]
        value: Any = bool(eff.value) if sig.is_bit else eff.value
        shown = sig.state_name(int(value)) if sig.states and not isinstance(value, bool) else value
        kind = "COMMAND" if ignores or not sig.feedback else "COMMAND_VERIFIED"
        verb = "issued" if kind == "COMMAND" else "verified by its feedback"
        out.append({"event": kind, "where": {"tag": sig.tag, "value": value, "source": il.id},
                    "within": f"{within:g} s", "says": f"{il.id}: {sig.tag} := {shown} {verb}"})
    return out


def _procedures(il: Interlock, site: Site, defs: dict[str, Any]) -> list[str]:
    procs = [p for p in site.procedures if p in defs and defs[p].station == il.station]
    for eff in il.effects:
        if eff.procedure and eff.procedure not in procs:
            procs.append(eff.procedure)
    return procs


def _faults(station: str, items: tuple[tuple[str, dict[str, Any]], ...]) -> list[dict[str, Any]]:
    return [{"station": station, "fault": f, "params": dict(p)} if p else {"station": station, "fault": f}
            for f, p in items]


def _scenario(name: str, proves: str, il: Interlock, site_ref: str, procs: list[str], duration: float,
              initial: list[dict[str, Any]], events: list[dict[str, Any]], expect: list[dict[str, Any]],
              override: DegradedMode | None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "proves": proves,
        "site": site_ref,
        "stations": [il.station],
        "procedures": procs,
        "duration": f"{duration:g} s",
        "scan_period": 0.1,
        "seed": 1,
    }
    if override is not None:
        doc["degraded_override"] = {il.id: override.value}
    if initial:
        doc["initial"] = initial
    doc["events"] = events
    doc["record"] = [c.tag for c in il.members if c.tag]
    doc["expect"] = expect
    return doc


def generate(site_path: str | Path, out_dir: str | Path, *, sim_package: str = "sim_plc",
             proc_package: str = "sequences", warn: Any = None) -> list[Generated]:
    """Write the scenarios of every cause-to-effect path of the site into ``out_dir``."""
    defs = load_definitions(proc_package)
    site = load_site(site_path, known_procedures=set(defs))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    site_ref = os.path.relpath(Path(site_path).resolve(), out.resolve())
    cat = _Catalogue(list(importlib.import_module(f"{sim_package}.catalogue").all_faults()))
    written: list[Generated] = []

    def emit(doc: dict[str, Any], il: Interlock, mode: str | None) -> None:
        path = out / f"{doc['name']}.yaml"
        header = ("# Generated by `plantctl scenario generate --from-ce` from "
                  f"{Path(site_path).name}, interlock {il.id} (site line {il.line}). Regenerate, do not edit.\n")
        path.write_text(header + yaml.safe_dump(doc, sort_keys=False, width=110, default_flow_style=None),
                        encoding="utf-8")
        written.append(Generated(path, str(doc["name"]), il.id, mode))

    for il in site.interlocks:
        drives = [(c, drive(il, c, site, cat)) for c in il.members]
        missing = [c.tag for c, d in drives if d is None]
        procs = _procedures(il, site, defs)
        # the main path: the first M members driven to trip
        drivable = [(c, d) for c, d in drives if d is not None]
        if len(drivable) < il.m:
            if warn is not None:
                warn(f"{il.id}: no fault can drive {', '.join(missing)} to the trip condition: path left out")
        else:
            chosen = drivable[: il.m]
            initial: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            override: DegradedMode | None = None
            trip_within = 0.0
            ignores = False
            whys: list[str] = []
            for _c, d in chosen:
                assert d is not None
                initial += [f for f in _faults(il.station, d.initial) if f not in initial]
                for f in _faults(il.station, d.at_5s):
                    ev = {"at": "5 s", "inject": f}
                    if ev not in events:
                        events.append(ev)
                trip_within = max(trip_within, d.trip_within_s)
                ignores = ignores or d.ignores_commands
                override = override or d.override
                if d.why not in whys:
                    whys.append(d.why)
            trip_within += il.on_delay_s + 5.0
            fb = max((_feedback_s(site.stations[il.station].iolist.by_tag[str(e.command)])
                      for e in il.effects if e.command), default=0.0)
            eff_within = trip_within + fb + 5.0
            expect: list[dict[str, Any]] = [
                {"event": "TRIP", "where": {"interlock": il.id}, "within": f"{trip_within:g} s",
                 "says": f"{il.id} trips ({il.architecture})"},
                *_effect_expectations(il, site, eff_within, ignores),
            ]
            effects = ", ".join(e.describe() for e in il.effects) or "no effects (alarm and first-out only)"
            proves = (f"Cause and effect {il.id} ({il.description}): {'; '.join(whys)} drives "
                      f"{', '.join(c.tag for c, _ in chosen)} to the trip condition, the controller trips and "
                      f"acts: {effects}."
                      + (" The member is driven BAD, so the scenario overrides the group to vote_trip."
                         if override is not None else ""))
            emit(_scenario(f"ce-{_slug(il.id)}-trips-and-acts", proves, il, site_ref, procs,
                           max(eff_within, trip_within) + 30.0, initial, events, expect, override), il, None)
        # degraded voting: one member faulted, one more driven to trip, under each mode
        if len(il.members) < 2:
            continue
        faulted = il.members[0]
        bad = cat.signal_fault(il.station, faulted.tag)
        tripper = next(((c, d) for c, d in drives[1:] if d is not None and d.override is None), None)
        if bad is None or tripper is None:
            if warn is not None:
                warn(f"{il.id}: cannot fault one member and drive another: degraded-voting variants left out")
            continue
        c1, d1 = tripper
        assert d1 is not None
        n = len(il.members)
        for mode in DegradedMode:
            trips, arch = implied(mode, il.m, n, 1, 1)
            initial = _faults(il.station, d1.initial)
            events = [{"at": "2 s", "inject": {"station": il.station, "fault": bad.name, "params": {"tag": faulted.tag}}},
                      *({"at": "10 s", "inject": f} for f in _faults(il.station, d1.at_5s))]
            trip_within = 10.0 + d1.trip_within_s + il.on_delay_s + 5.0
            expect = [{"alarm": f"{il.id}:degraded", "within": "10 s",
                       "says": f"{faulted.tag} faulted: voting degraded to {arch} is alarmed"}]
            if trips:
                expect.append({"event": "TRIP", "where": {"interlock": il.id, "architecture": arch, "degraded": 1},
                               "within": f"{trip_within:g} s", "says": f"under {mode.value} one more member trips ({arch})"})
                expect += _effect_expectations(il, site, trip_within + 10.0, d1.ignores_commands)
                verdict = f"trips on {c1.tag} alone ({arch})"
            else:
                expect.append({"never": "TRIP", "where": {"interlock": il.id},
                               "says": f"under {mode.value} one tripping member is not enough ({arch})"})
                verdict = f"does not trip on {c1.tag} alone ({arch}) and alarms the degraded vote"
            proves = (f"Degraded voting of {il.id} set to {mode.value}: with {faulted.tag} faulted ({bad.name}) the "
                      f"{il.architecture} group {verdict}.")
            emit(_scenario(f"ce-{_slug(il.id)}-{mode.value.replace('_', '-')}-one-member-faulted", proves, il,
                           site_ref, procs, trip_within + 40.0, initial, events, expect, mode), il, mode.value)
    return written


def cli(args: argparse.Namespace) -> int:
    out = Path(args.output)
    done = generate(args.from_ce, out, warn=lambda m: print(f"warning: {m}", file=sys.stderr))
    for g in done:
        print(g.path)
    print(f"{len(done)} scenario(s) written to {out}", file=sys.stderr)
    return 0


__all__ = ["PHYSICAL", "Drive", "Generated", "cli", "drive", "generate", "implied"]
