"""Plant A in software: natural-gas supply to GT-400, with the PLC logic the real PLC carries.

Theory of operation
-------------------
Gas path (plant-reference.md 1.1, 3.3) as a chain of lumped isothermal volumes joined by
restrictions (3.2)::

    offtake (4.5 MPa while XV-001 open) -L0- N1 PL-100 -L1- N2 RS inlet header -L2- N3 RS outlet
    header + PL-250 -L3- N4 front module -L4- N5 GT manifold -> GT fuel demand

L0 = XV-001 + pipeline friction, L1 = XV-201, L2 = runs A||B (XV-211, F-212, SSV-213, monitor PCV-214
and active PCV-215 as min(u, u_m), XV-216; no reverse flow through a regulator) in series with XV-205,
L3 = XV-301 + branches A||B (XV-311, F-312, XV-313), L4 = SRV-320. Sinks: BDV-102 (N1), PSV-203 (N3),
BV-321 (N4), leaks by zone, GT fuel (N5). PT-202 is the station outlet downstream of XV-205: the
pressure of N3 plus the PL-250 friction drop at the current flow (0.05 MPa at base load), and it is
what the regulators and slam-shuts sense. (A tiny header node between the regulators and XV-205 was
tried: with tau_reg = 2 s, closing XV-205 at load then overshoots past OPSO and PSV-203, which the
reference does not describe, so the header is lumped into N3 as 3.3 says.)

Every friction-equivalent restriction is calibrated in ``__init__`` so that the normal pressures of
the tag list (4.49/4.45/3.20/3.15/3.10 MPa) carry base-load fuel (13.7 kg/s); the plant starts in
that steady state. Small nodes (N4 2 m3, N5 0.5 m3) make the pressure ODEs stiff, so pressures are
advanced by a linearly implicit Euler step: every flow is linearised in the pressures at its ends,
the chain gives a tridiagonal system, solved by the Thomas algorithm in plain floats. Stable for any
dt; accurate where it matters (pipeline decay, blow-down, PL-250 starvation: seconds to hours).
Slower, explicit states (valve strokes, regulator actuators, GT load, compartment gas, detectors)
advance with the same dt; ``step(dt)`` splits a large dt into substeps of at most ``max_substep_s``.

The PLC logic is the real PLC's, not plantctl's: regulators with P pilots and slam-shuts (latched,
manual reset), the GT's own 2oo3 gas trip of *healthy* channels (a faulted detector does not vote
here; plantctl's FAULT_VOTES_TRIP is the controller's business), PT-322 < 2.70 MPa for 2 s, fire,
and XY-400 = 0 (ESD). A trip closes SRV-320. The PLC reads its transmitters as a client would: a
failed-low PT-322 trips the GT, a faulted detector reads -25 %LEL (0 mA). As 3.7 says, a reading above
21 mA (106 %LEL) is a channel fault too; a real leak passes 25 %LEL first, so the trip has latched.

The offtake station (external party) answers HS-001 with YA-001 after U(30 s, 5 min) and closes XV-001
and lights FL-002 U(2, 10) min later, drawn from its own seeded generator (so detector noise does not
shift it). Not modelled: the purge of 3.9, gas temperatures (TT-101/TT-324 are constants).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from enum import Enum, IntEnum, StrEnum
from typing import Any

import numpy as np

from .errors import SimError, UnknownFault, UnknownTag
from .faults import FaultSpec, Param
from .gasflow import (
    P_ATM,
    TINY_AREA,
    FlowModel,
    Gas,
    GasNode,
    area_for_flow,
    circle_area,
    gauge_mpa_to_abs,
    remaining_area,
    series_area,
)
from .plant import HEARTBEAT_TAG, heartbeat_count
from .valves import Characteristic, Valve, ValveCmd, ValveFault

STATION = "gas_station"


class GTState(IntEnum):
    """XS-400 (index = register value, order as in the I/O list)."""

    OFF = 0
    STARTING = 1
    RUNNING = 2
    UNLOADING = 3
    STOPPING = 4
    TRIPPED = 5


FIRED = frozenset({GTState.STARTING, GTState.RUNNING, GTState.UNLOADING, GTState.STOPPING})


class LoadCmd(IntEnum):
    """HS-400 (index = register value)."""

    HOLD = 0
    UNLOAD = 1
    FAST_UNLOAD = 2
    LOAD = 3


class TripCause(Enum):
    GAS_2OO3 = "gas_2oo3"  # 2 healthy GD-401 >= 25 %LEL
    LOW_FUEL_PRESSURE = "low_fuel_pressure"  # PT-322 < 2.70 MPa for 2 s
    FIRE = "fire"  # TS-402
    ESD = "esd"  # XY-400 = 0
    FLAMEOUT = "flameout"  # physics, not the PLC: the fuel ran out


class OfftakeState(Enum):
    IDLE = "idle"
    REQUESTED = "requested"  # HS-001 seen, staff not yet answered
    ACKNOWLEDGED = "acknowledged"  # YA-001; they are on their way to XV-001
    DONE = "done"  # XV-001 closing/closed and FL-002 lit


class Zone(StrEnum):
    N1 = "N1"  # PL-100
    N2 = "N2"  # regulating station
    N3 = "N3"  # PL-250
    N4 = "N4"  # front module
    N5 = "N5"  # GT manifold, outdoor side
    GC = "GC"  # into the GT gas compartment (from N5)


class _RegFault(Enum):
    NONE = "none"
    OPEN = "open"
    CLOSED = "closed"


class _VentLoss(StrEnum):
    NONE = "none"
    ALL = "all"  # extract duct/damper: Q -> natural leakage whatever the fans do
    A = "A"  # fan VF-411A fails (the standby fan restores the flow)
    B = "B"


class BadCommandValue(SimError, ValueError):
    """A client wrote a value a command cannot take (enum index or setpoint out of range)."""


# Node indices of the chain.
N1, N2, N3, N4, N5 = range(5)
_ZONE_NODE = {Zone.N1: N1, Zone.N2: N2, Zone.N3: N3, Zone.N4: N4, Zone.N5: N5}


@dataclass(frozen=True)
class ValveTiming:
    """One row of the 3.1 valve table."""

    t_close: float
    t_open: float
    t_dead: float
    t_manual: float


@dataclass
class GasParams:
    """Every (A) number of Plant A (plant-reference.md 1-3). Defaults are the reference values."""

    # gas (1.2)
    k: float = 1.31
    molar_mass: float = 0.01704  # kg/mol
    z: float = 0.92
    t_gas: float = 288.15  # K, isothermal
    rho_gas_amb: float = 0.71  # kg/m3 at 20 degC, 1 atm
    lel_vol: float = 4.4  # LEL_CH4_VOL, vol %
    # normal operating point (1.4): pressures MPa(g), flow kg/s
    p_offtake: float = 4.5  # boundary while XV-001 open
    pt101_normal: float = 4.49  # 0.01 MPa friction-equivalent drop along PL-100 at base load (A)
    pt201_normal: float = 4.45
    pl250_dp: float = 0.05  # PT-202 3.20 -> PT-301 3.15 at base load (friction along PL-250)
    pdt212_normal_kpa: float = 20.0
    pdt312_normal_kpa: float = 25.0
    pt322_normal: float = 3.10
    # volumes (3.3), m3
    v_n1: float = math.pi / 4 * 0.387**2 * 10_000  # PL-100 DN400, 10 km: 1176 m3
    v_n2: float = 3.0
    v_n3: float = math.pi / 4 * 0.290**2 * 500  # PL-250 DN300, 500 m: 33 m3
    v_n4: float = 2.0
    v_n5: float = 0.5
    # valve bores and discharge coefficient (full-bore ball valves)
    valve_cd: float = 0.9
    dn_xv001: float = 0.387
    dn_xv201: float = 0.387
    dn_run: float = 0.2  # XV-211/216 (DN200)
    dn_ssv: float = 0.15
    dn_xv205: float = 0.29
    dn_xv301: float = 0.29
    dn_branch: float = 0.2  # XV-311/313
    dn_srv320: float = 0.2
    # valve strokes (3.1)
    t_xv201: ValveTiming = ValveTiming(10.0, 30.0, 0.5, 600.0)
    t_xv205_301: ValveTiming = ValveTiming(8.0, 25.0, 0.5, 480.0)
    t_run_branch: ValveTiming = ValveTiming(15.0, 15.0, 0.5, 300.0)
    t_srv320: ValveTiming = ValveTiming(0.5, 10.0, 0.1, 600.0)
    t_vent: ValveTiming = ValveTiming(5.0, 5.0, 0.5, 180.0)  # BDV-102, BV-321
    t_ssv: ValveTiming = ValveTiming(0.5, 5.0, 0.0, 300.0)  # slam-shut snaps shut; reopened by the reset
    t_xv001: ValveTiming = ValveTiming(60.0, 60.0, 0.0, 60.0)  # offtake staff at the valve
    # regulators, slam-shuts, relief (3.4)
    sp_active_a: float = 3.20
    sp_active_b: float = 3.12
    sp_monitor: float = 3.36
    reg_kp: float = 20.0
    reg_tau: float = 2.0
    reg_dn: float = 0.15
    reg_cd: float = 0.8
    ssv_opso: float = 3.52
    ssv_upso: float = 2.2
    ssv_delay_s: float = 0.5
    ssv_upso_arm_margin: float = 0.1  # UPSO arms once p > UPSO + margin after a reset (pressure established)
    psv_set: float = 3.70
    psv_dn: float = 0.05
    psv_cd: float = 0.85
    psv_full_lift: float = 0.1  # full lift at 110 % of set
    # vents (3.8) and leaks (3.6)
    vent_cd: float = 0.85
    bdv102_orifice: float = 0.102
    bv321_dn: float = 0.05
    leak_cd: float = 0.62
    # GT (3.5)
    fuel_base: float = 13.7  # kg/s at P_rated
    p_rated: float = 250.0  # MW
    fsnl_fraction: float = 0.25
    load_rate: float = 15.0  # MW/min (loading: same as normal unload (A))
    unload_rate: float = 15.0
    fast_unload_rate: float = 40.0
    breaker_open_mw: float = 5.0
    fuel_shutdown_s: float = 60.0
    speed_rated: float = 3000.0
    coast_tau: float = 300.0
    start_time_s: float = 120.0
    p_combustor: float = 1.8  # MPa(g): no fuel flows below this manifold pressure
    p_fuel_full: float = 2.5  # MPa(g): the GT fuel valve delivers full demand above this
    flameout_fraction: float = 0.3  # delivered / demanded fuel below which the flame goes out...
    flameout_delay_s: float = 2.0  # ...for this long
    # PLC trips (1.4, 3.5, 3.7)
    gas_trip_lel: float = 25.0
    gas_trip_votes: int = 2
    gas_trip_delay_s: float = 0.5  # vote must persist (PLC debounce) so noise at 24.5 %LEL cannot trip
    pt322_trip: float = 2.70
    pt322_trip_delay_s: float = 2.0
    pt322_arm: float = 2.9  # the LL trip arms once fuel pressure is established after a start
    # compartment and ventilation (1.3, 3.6)
    gc_volume: float = 80.0
    fan_flow: float = 1.5  # m3/s each
    natural_vent: float = 0.05  # m3/s with no extraction
    fs411_ok: float = 1.0  # m3/s: FS-411 true at or above
    standby_fan_autostart: bool = True  # PLC starts the other fan after low flow for...
    standby_fan_delay_s: float = 5.0
    # detectors (3.7)
    t90: float = 10.0
    transport_s: float = 2.0
    noise_sigma: float = 0.3
    mixing: tuple[float, float, float] = (1.0, 1.0, 1.0)  # f_i in [0.7, 1.3] for local clouds
    det_clamp_lo: float = -5.0
    det_clamp_hi: float = 120.0
    fault_ma_lo: float = 3.6
    fault_ma_hi: float = 21.0
    # external party (4, general rules)
    ack_delay_s: tuple[float, float] = (30.0, 300.0)  # U(30 s, 5 min)
    action_delay_s: tuple[float, float] = (120.0, 600.0)  # U(2, 10) min, counted from the ack
    # patrol reading at an outdoor leak: well-mixed dilution in this much wind-driven air
    patrol_dilution_m3s: float = 1.0
    # fixed temperatures (no heater modelled)
    tt101: float = 15.0
    tt324: float = 25.0
    # integration
    max_substep_s: float = 0.1


# Engineering ranges of the analog inputs (io/gas_station.yaml; the test checks they agree). Used for
# the value a failed 4-20 mA loop reads: raw 0 uA = lo - 0.25 (hi - lo).
ANALOG_RANGES: dict[str, tuple[float, float]] = {
    "PT-101": (0.0, 7.0),
    "TT-101": (-40.0, 60.0),
    "PT-201": (0.0, 7.0),
    "PDT-212A": (0.0, 200.0),
    "PDT-212B": (0.0, 200.0),
    "PT-202": (0.0, 5.0),
    "FT-204": (0.0, 20.0),
    "PT-301": (0.0, 5.0),
    "PDT-312A": (0.0, 200.0),
    "PDT-312B": (0.0, 200.0),
    "PT-322": (0.0, 5.0),
    "FT-323": (0.0, 20.0),
    "TT-324": (0.0, 250.0),
    "JT-400": (0.0, 270.0),
    "ST-400": (0.0, 3300.0),
    "GD-401A": (0.0, 100.0),
    "GD-401B": (0.0, 100.0),
    "GD-401C": (0.0, 100.0),
    "AI-901": (0.0, 100.0),
}

DETECTORS = ("GD-401A", "GD-401B", "GD-401C")
# Transmitters other than the detectors (which clamp to [-5, 120] %LEL per 3.7) saturate at 3.8 / 20.5 mA.
_SATURATING = tuple(t for t in ANALOG_RANGES if t not in DETECTORS)
_SATURATION = {t: (lo - 0.0125 * (hi - lo), hi + 0.03125 * (hi - lo)) for t, (lo, hi) in ANALOG_RANGES.items()}
VALVE_TAGS = (
    "XV-201", "XV-211A", "XV-211B", "XV-216A", "XV-216B", "XV-205",
    "XV-301", "XV-311A", "XV-311B", "XV-313A", "XV-313B", "SRV-320", "BDV-102", "BV-321",
)  # fmt: skip
FAIL_CLOSED = frozenset(v for v in VALVE_TAGS if v.startswith(("XV-", "SRV-")))

# Client command -> the valve it drives directly (XY-320 goes through the PLC's trip logic).
_CMD_VALVE = {
    "XY-201": "XV-201", "XY-205": "XV-205", "XY-301": "XV-301",
    "XY-211A": "XV-211A", "XY-211B": "XV-211B", "XY-216A": "XV-216A", "XY-216B": "XV-216B",
    "XY-311A": "XV-311A", "XY-311B": "XV-311B", "XY-313A": "XV-313A", "XY-313B": "XV-313B",
    "HS-102": "BDV-102", "HS-321": "BV-321",
}  # fmt: skip
# Limit-switch pairs reported for each valve: (ZSO tag, ZSC tag).
_FEEDBACK = {
    "BDV-102": ("ZSO-102", "ZSC-102"), "XV-201": ("ZSO-201", "ZSC-201"), "XV-205": ("ZSO-205", "ZSC-205"),
    "XV-211A": ("ZSO-211A", "ZSC-211A"), "XV-211B": ("ZSO-211B", "ZSC-211B"),
    "XV-216A": ("ZSO-216A", "ZSC-216A"), "XV-216B": ("ZSO-216B", "ZSC-216B"),
    "XV-301": ("ZSO-301", "ZSC-301"), "XV-311A": ("ZSO-311A", "ZSC-311A"), "XV-311B": ("ZSO-311B", "ZSC-311B"),
    "XV-313A": ("ZSO-313A", "ZSC-313A"), "XV-313B": ("ZSO-313B", "ZSC-313B"),
    "SRV-320": ("ZSO-320", "ZSC-320"), "BV-321": ("ZSO-321", "ZSC-321"),
}  # fmt: skip

_ZONES = tuple(z.value for z in Zone)
_RUNS = ("A", "B")


def _p(name: str, typ: type, help: str, default: Any = None, choices: tuple[str, ...] | None = None) -> Param:
    return Param(name=name, type=typ, help=help, default=default, choices=choices)


_ZONE_P = _p("zone", str, "N1 PL-100, N2 reg. station, N3 PL-250, N4 front module, N5 GT manifold, GC compartment",
             choices=_ZONES)
_VALVE_P = _p("valve", str, "valve tag", choices=VALVE_TAGS)
_DET_P = _p("tag", str, "gas detector", choices=DETECTORS)
_RUN_P = _p("run", str, "regulating run", "A", choices=_RUNS)

FAULTS: tuple[FaultSpec, ...] = (
    FaultSpec("leak", "Hole of hole_mm (Cd 0.62) in a zone: outdoor zones are a mass sink that raises AI-901; "
              "GC leaks from N5 into the compartment air.",
              (_ZONE_P, _p("hole_mm", float, "hole diameter, mm")), ("F-G11", "F-G13", "F-G18"), STATION),
    FaultSpec("leak_growing", "A leak whose hole grows linearly from from_mm to to_mm over over_s.",
              (_ZONE_P, _p("from_mm", float, "initial hole, mm", 1.0), _p("to_mm", float, "final hole, mm", 5.0),
               _p("over_s", float, "growth time, s", 600.0)), ("F-G14",), STATION),
    FaultSpec("fire", "Fire in a zone; in GC it sets the compartment fire detection TS-402 (GT trip).",
              (_p("zone", str, "fire location", "GC", choices=_ZONES),), ("F-G17",), STATION),
    FaultSpec("detector_stuck", "A gas detector reads a frozen value (%LEL) whatever the gas does; no fault bit.",
              (_DET_P, _p("value", float, "frozen reading, %LEL")), ("F-G10", "F-G11"), STATION),
    FaultSpec("detector_drift", "A gas detector drifts by rate_per_min %LEL per minute.",
              (_DET_P, _p("rate_per_min", float, "drift, %LEL/min", 1.0)), (), STATION),
    FaultSpec("detector_open_loop", "A gas detector loop opens: 0 mA, reads -25 %LEL, channel fault XA-401x.",
              (_DET_P,), ("F-G09",), STATION),
    FaultSpec("valve_stuck", "A valve stops moving (at a given opening, or where it is when at < 0).",
              (_VALVE_P, _p("at", float, "opening 0..1 to jam at; -1 = where it is now", -1.0)),
              ("F-G01", "F-G05", "F-G17"), STATION),
    FaultSpec("valve_slow", "A valve strokes factor times slower.",
              (_VALVE_P, _p("factor", float, "slow-down factor", 3.0)), (), STATION),
    FaultSpec("valve_partial", "A valve jams at x_stop on its way.",
              (_VALVE_P, _p("x_stop", float, "jam position 0..1", 0.3)), ("F-G01",), STATION),
    FaultSpec("valve_no_feedback", "A valve moves but its limit switches never make.", (_VALVE_P,), ("F-G02",),
              STATION),
    FaultSpec("valve_passing", "A closed valve still passes a fraction of its full area.",
              (_VALVE_P, _p("fraction", float, "leak-through fraction of full area", 0.005)), ("F-G12",), STATION),
    FaultSpec("regulator_failed_open", "Active regulator PCV-215 of a run fails wide open (the monitor takes over); "
              "the failed pilot drives the main valve from its position to fully open over over_s.",
              (_RUN_P, _p("over_s", float, "time to fully open, s", 30.0)), ("F-G06",), STATION),
    FaultSpec("regulator_failed_closed", "Active regulator PCV-215 of a run fails shut (the standby run takes over).",
              (_RUN_P,), ("F-G07",), STATION),
    FaultSpec("ssv_spurious_trip", "Slam-shut SSV-213 of a run trips for no reason (latched until HS-213 reset).",
              (_RUN_P,), ("F-G08",), STATION),
    FaultSpec("filter_plugging", "Run filter F-212 plugs: its dP at nominal flow rises by kpa_per_min.",
              (_RUN_P, _p("kpa_per_min", float, "dP rise at nominal flow, kPa/min", 5.0)), (), STATION),
    FaultSpec("ventilation_lost", "Compartment extraction lost: 'all' = duct/damper (0.05 m3/s whatever the fans), "
              "'A'/'B' = that fan fails (the standby fan can restore the flow).",
              (_p("which", str, "what fails", "all", choices=("all", "A", "B")),), ("F-G13",), STATION),
    FaultSpec("instrument_air_lost", "Instrument air / solenoid power lost: every fail-closed valve "
              "(XV-2xx, XV-3xx, SRV-320) closes.", (), ("F-G16",), STATION),
    FaultSpec("gt_fails_to_trip", "The GT's trip outputs are ignored: XY-400, XY-320 and the PLC trips neither "
              "stop the GT nor close SRV-320; only fuel starvation (flame-out) stops it.", (), ("F-G15",), STATION),
    FaultSpec("offtake_slow", "Offtake staff acknowledge after ack_delay_s and act action_delay_s after the ack.",
              (_p("ack_delay_s", float, "acknowledgement delay, s", 1200.0),
               _p("action_delay_s", float, "from ack to XV-001 closing / FL-002 lit, s", 600.0)),
              ("F-G03",), STATION),
    FaultSpec("offtake_silent", "Offtake station never answers the request (no ack, no action).", (), ("F-G03",),
              STATION),
    FaultSpec("offtake_passing", "XV-001 passes kg_s into PL-100 after it is reported closed.",
              (_p("kg_s", float, "leak-through, kg/s", 2.0),), ("F-G04",), STATION),
    FaultSpec("sensor_fault", "An analog input fails: its loop reads 0 mA (raw 0, BAD), also as the PLC sees it.",
              (_p("tag", str, "analog input tag", choices=tuple(ANALOG_RANGES)),), ("F-X02",), STATION),
)
_FAULTS_BY_NAME = {f.name: f for f in FAULTS}
# Which parameter makes two injections of the same fault distinct (a leak in N1 and one in N3).
_FAULT_KEY = {
    "leak": "zone", "leak_growing": "zone", "fire": "zone", "detector_stuck": "tag", "detector_drift": "tag",
    "detector_open_loop": "tag", "valve_stuck": "valve", "valve_slow": "valve", "valve_partial": "valve",
    "valve_no_feedback": "valve", "valve_passing": "valve", "regulator_failed_open": "run",
    "regulator_failed_closed": "run", "ssv_spurious_trip": "run", "filter_plugging": "run", "sensor_fault": "tag",
}  # fmt: skip


def _ser2(a: float, b: float) -> float:
    """Two restrictions in series (hot path: no tuple)."""
    if a <= TINY_AREA or b <= TINY_AREA:
        return 0.0
    return a * b / math.sqrt(a * a + b * b)


def _clamp01(x: float) -> float:
    return 0.0 if x < 0.0 else 1.0 if x > 1.0 else x


@dataclass
class _Run:
    """One regulating run: XV-211 - F-212 - SSV-213 - PCV-214 (monitor) - PCV-215 (active) - XV-216."""

    name: str
    inlet: Valve
    outlet: Valve
    ssv: Valve
    a_filter: float  # effective area of F-212 at its current plugging
    u: float = 0.0  # active regulator opening
    um: float = 1.0  # monitor opening
    fault: _RegFault = _RegFault.NONE
    fail_cmd: float = 0.0  # the failed pilot's command to the main valve (ramps to 1 when failed open)
    fail_rate: float = 0.0  # per s
    ssv_tripped: bool = False
    upso_armed: bool = True
    t_over: float = 0.0
    t_under: float = 0.0
    plug_kpa: float = 0.0
    plug_rate: float = 0.0  # kPa/min
    area: float = 0.0
    flow: float = 0.0


@dataclass
class _Detector:
    tag: str
    mixing: float
    y: float = 0.0  # lagged true concentration, %LEL
    drift: float = 0.0
    drift_rate: float = 0.0  # %LEL per s
    stuck: float | None = None
    open_loop: bool = False
    reading: float = 0.0
    fault: bool = False


@dataclass
class _Leak:
    zone: Zone
    d0_mm: float
    d1_mm: float
    over_s: float
    t0: float


@dataclass
class _Offtake:
    state: OfftakeState = OfftakeState.IDLE
    t_request: float = 0.0
    t_ack: float = 0.0
    ack_delay: float = 0.0
    action_delay: float = 0.0
    acked: bool = False
    flare_lit: bool = False
    silent: bool = False
    slow: tuple[float, float] | None = None
    passing_kg_s: float = 0.0


@dataclass
class _Gt:
    state: GTState = GTState.RUNNING
    power: float = 250.0
    speed: float = 3000.0
    demand: float = 13.7  # kg/s the fuel system asks for
    delivered: float = 13.7
    stop_fuel0: float = 0.0
    t_phase: float = 0.0  # time in STARTING / STOPPING
    t_starved: float = 0.0
    ignores_trip: bool = False
    start_request: bool = False
    trip_cause: TripCause | None = None
    trip_time: float | None = None


class GasStation:
    """Plant A: the station model interface (see the module docstring)."""

    name: str = STATION
    FAULTS: tuple[FaultSpec, ...] = FAULTS

    def __init__(self, params: GasParams | None = None, seed: int = 0) -> None:
        self.params = p = params or GasParams()
        self.time = 0.0
        seeds = np.random.SeedSequence(seed).spawn(2)
        self._rng_noise = np.random.default_rng(seeds[0])
        self._rng_ext = np.random.default_rng(seeds[1])  # external party: independent of the noise draws
        self._noise: list[float] = []
        self._noise_i = 0
        self.gas = Gas(p.k, p.molar_mass, p.z, p.t_gas)
        self._fm = FlowModel(self.gas)

        self.nodes: dict[str, GasNode] = {
            name: GasNode(name, v, gas=self.gas)
            for name, v in (("N1", p.v_n1), ("N2", p.v_n2), ("N3", p.v_n3), ("N4", p.v_n4), ("N5", p.v_n5))
        }
        self._node_list = list(self.nodes.values())
        self._cap = [n.capacitance for n in self._node_list]

        # -- valves (3.1) ------------------------------------------------------------------------
        def mk(name: str, tm: ValveTiming, open_: bool, *, fail_closed: bool = False,
               ch: Characteristic = Characteristic.BALL) -> Valve:
            return Valve(name, t_open=tm.t_open, t_close=tm.t_close, t_dead=tm.t_dead, t_manual=tm.t_manual,
                         x=1.0 if open_ else 0.0, fail_closed=fail_closed, characteristic=ch,
                         cmd=ValveCmd.OPEN if open_ else ValveCmd.CLOSE)

        fc = True
        self.valves: dict[str, Valve] = {
            "XV-201": mk("XV-201", p.t_xv201, True, fail_closed=fc),
            "XV-211A": mk("XV-211A", p.t_run_branch, True, fail_closed=fc),
            "XV-211B": mk("XV-211B", p.t_run_branch, True, fail_closed=fc),
            "XV-216A": mk("XV-216A", p.t_run_branch, True, fail_closed=fc),
            "XV-216B": mk("XV-216B", p.t_run_branch, True, fail_closed=fc),
            "XV-205": mk("XV-205", p.t_xv205_301, True, fail_closed=fc),
            "XV-301": mk("XV-301", p.t_xv205_301, True, fail_closed=fc),
            "XV-311A": mk("XV-311A", p.t_run_branch, True, fail_closed=fc),
            "XV-311B": mk("XV-311B", p.t_run_branch, False, fail_closed=fc),
            "XV-313A": mk("XV-313A", p.t_run_branch, True, fail_closed=fc),
            "XV-313B": mk("XV-313B", p.t_run_branch, False, fail_closed=fc),
            "SRV-320": mk("SRV-320", p.t_srv320, True, fail_closed=fc),
            "BDV-102": mk("BDV-102", p.t_vent, False),
            "BV-321": mk("BV-321", p.t_vent, False),
        }
        # Not in VALVE_TAGS (no valve_* faults): the slam-shuts (own latch logic) and the offtake's XV-001.
        self.ssv = {r: mk(f"SSV-213{r}", p.t_ssv, True, ch=Characteristic.LINEAR) for r in _RUNS}
        self.xv001 = mk("XV-001", p.t_xv001, True)
        self._valve_list = [*self.valves.values(), *self.ssv.values(), self.xv001]

        # -- restriction areas (Cd*A, m2), calibrated on the normal operating point ---------------
        cd = p.valve_cd
        self._a_xv001 = cd * circle_area(p.dn_xv001)
        self._a_xv201 = cd * circle_area(p.dn_xv201)
        self._a_runv = cd * circle_area(p.dn_run)
        self._a_ssv = cd * circle_area(p.dn_ssv)
        self._a_reg = p.reg_cd * circle_area(p.reg_dn)
        self._a_xv205 = cd * circle_area(p.dn_xv205)
        self._a_xv301 = cd * circle_area(p.dn_xv301)
        self._a_brv = cd * circle_area(p.dn_branch)
        self._a_srv = cd * circle_area(p.dn_srv320)
        self._a_bdv = p.vent_cd * circle_area(p.bdv102_orifice)
        self._a_bv321 = p.vent_cd * circle_area(p.bv321_dn)
        self._a_psv = p.psv_cd * circle_area(p.psv_dn)
        self._p_boundary = gauge_mpa_to_abs(p.p_offtake)

        m0 = p.fuel_base
        pb = self._p_boundary
        p1 = gauge_mpa_to_abs(p.pt101_normal)
        p2 = gauge_mpa_to_abs(p.pt201_normal)
        p3 = gauge_mpa_to_abs(p.sp_active_a - p.pl250_dp)
        p4 = p3 - p.pdt312_normal_kpa * 1e3
        p5 = gauge_mpa_to_abs(p.pt322_normal)
        g = self.gas
        self._a_fric0 = remaining_area(area_for_flow(m0, pb, p1, g), self._a_xv001)
        self._a_fric1 = remaining_area(area_for_flow(m0, p1, p2, g), self._a_xv201)
        self._a_f212_nominal = area_for_flow(m0, p2, p2 - p.pdt212_normal_kpa * 1e3, g)
        # runs in series with XV-205: the active regulator's opening u_ss carries base load at the setpoint
        a_runs = remaining_area(area_for_flow(m0, p2, p3, g), self._a_xv205)
        a_reg_ss = remaining_area(a_runs, self._a_runv, self._a_f212_nominal, self._a_ssv, self._a_runv)
        self.u_ss = a_reg_ss / self._a_reg
        if not 0.0 < self.u_ss < 1.0:
            raise ValueError(f"regulator cannot carry base load at the normal pressures (u_ss={self.u_ss:.2f})")
        a_branch = remaining_area(area_for_flow(m0, p3, p4, g), self._a_xv301)
        self._a_f312 = remaining_area(a_branch, self._a_brv, self._a_brv)
        self._a_fric4 = remaining_area(area_for_flow(m0, p4, p5, g), self._a_srv)

        for node, pa in zip(self._node_list, (p1, p2, p3, p4, p5), strict=True):
            node.p_abs = pa

        # -- regulating runs, front-module branches ---------------------------------------------
        self.runs = {
            r: _Run(r, self.valves[f"XV-211{r}"], self.valves[f"XV-216{r}"], self.ssv[r], self._a_f212_nominal)
            for r in _RUNS
        }
        self._sp = {"PCV-214A": p.sp_monitor, "PCV-214B": p.sp_monitor, "PCV-215A": p.sp_active_a,
                    "PCV-215B": p.sp_active_b}
        for r, run in self.runs.items():
            run.u = _clamp01(self.u_ss + p.reg_kp * (self._sp[f"PCV-215{r}"] - p.sp_active_a)
                             / self._sp[f"PCV-215{r}"])
            run.um = _clamp01(self.u_ss + p.reg_kp * (p.sp_monitor - p.sp_active_a) / p.sp_monitor)
        self._branch_flow = [0.0, 0.0]
        # link flows L0..L4 (kg/s, linearised at the end of the last step)
        self._flow = [m0] * 5
        self.runs["A"].flow = m0
        self._branch_flow[0] = m0
        self._vent_flow = {"BDV-102": 0.0, "BV-321": 0.0, "PSV-203": 0.0}
        self._leaks: dict[Zone, list[_Leak]] = {}
        self._leak_area = [0.0] * 5  # outdoor hole areas (Cd*A) by node
        self._gc_leak_area = 0.0
        self._leak_growing = False
        self._leak_flow = {z: 0.0 for z in Zone}

        # -- GT, compartment, detectors, external party ------------------------------------------
        self.gt = _Gt(power=p.p_rated, speed=p.speed_rated, demand=m0, delivered=m0)
        self._pt322_armed = True
        self._t_low_fuel = 0.0
        self._t_gas_vote = 0.0
        self.plc_trip: TripCause | None = None  # what the PLC demanded (also when the GT ignores it)
        self.conc = 0.0  # compartment gas, volume fraction
        self._fan_failed = {"A": False, "B": False}
        self._vent_loss = _VentLoss.NONE
        self.q_vent = p.fan_flow
        self._t_lowflow = 0.0
        self.fire_zones: set[Zone] = set()
        self.detectors = [_Detector(tag, f) for tag, f in zip(DETECTORS, p.mixing, strict=True)]
        self._delay_line: deque[tuple[float, float]] = deque([(0.0, 0.0)])
        self._alpha_dt = -1.0
        self._alpha_det = 0.0
        self._alpha_reg = 0.0
        self.offtake = _Offtake()
        self._sensor_fault: set[str] = set()
        self._faults: dict[tuple[str, str], dict[str, Any]] = {}
        self._ssv_reset_pending = {"A": False, "B": False}
        self.ai901 = 0.0

        # -- command outputs as the PLC holds them ----------------------------------------------
        self._cmd: dict[str, bool | int | float] = {
            "HS-001": False, "HS-102": False, "XY-201": True, "HS-213A": False, "HS-213B": False,
            "XY-211A": True, "XY-211B": True, "XY-216A": True, "XY-216B": True, "XY-205": True,
            "XY-301": True, "XY-311A": True, "XY-311B": False, "XY-313A": True, "XY-313B": False,
            "XY-320": True, "HS-321": False, "XY-400": True, "HS-400": int(LoadCmd.HOLD),
            "XY-411A": True, "XY-411B": False, **self._sp,
        }  # fmt: skip

    # =========================================================================================
    # interface
    # =========================================================================================
    def step(self, dt: float = 0.1) -> None:
        """Advance physics and PLC logic by dt (split into substeps of at most max_substep_s)."""
        if dt <= 0.0:
            return
        n = max(1, math.ceil(dt / self.params.max_substep_s - 1e-9))
        h = dt / n
        for _ in range(n):
            self._substep(h)

    def step_many(self, n: int, dt: float = 0.1) -> None:
        for _ in range(n):
            self.step(dt)

    def run_for(self, seconds: float, dt: float = 0.1) -> None:
        """Advance by ``seconds`` of plant time in steps of dt."""
        self.step_many(int(round(seconds / dt)), dt)

    def read_tags(self) -> dict[str, float | int | bool]:
        p = self.params
        v = self.valves
        nodes = self._node_list
        runs = self.runs
        m0 = p.fuel_base
        tags: dict[str, float | int | bool] = {
            "ZSC-001": self.xv001.zsc,
            "FL-002": self.offtake.flare_lit,
            "YA-001": self.offtake.acked,
            "PT-101": (nodes[N1].p_abs - P_ATM) * 1e-6,
            "TT-101": p.tt101,
            "PT-201": (nodes[N2].p_abs - P_ATM) * 1e-6,
            "PDT-212A": (p.pdt212_normal_kpa + runs["A"].plug_kpa) * (runs["A"].flow / m0) ** 2,
            "PDT-212B": (p.pdt212_normal_kpa + runs["B"].plug_kpa) * (runs["B"].flow / m0) ** 2,
            "ZS-213A": runs["A"].ssv_tripped,
            "ZS-213B": runs["B"].ssv_tripped,
            "PT-202": self._pt202(),
            "FT-204": max(0.0, self._flow[2]),
            "PT-301": (nodes[N3].p_abs - P_ATM) * 1e-6,
            "PDT-312A": p.pdt312_normal_kpa * (self._branch_flow[0] / m0) ** 2,
            "PDT-312B": p.pdt312_normal_kpa * (self._branch_flow[1] / m0) ** 2,
            "PT-322": (nodes[N5].p_abs - P_ATM) * 1e-6,
            "FT-323": max(0.0, self._flow[4]),
            "TT-324": p.tt324,
            "JT-400": self.gt.power,
            "ST-400": self.gt.speed,
            "XS-400": int(self.gt.state),
            "FS-411": self.q_vent >= p.fs411_ok,
            "XS-411A": self._fan_running("A"),
            "XS-411B": self._fan_running("B"),
            "TS-402": Zone.GC in self.fire_zones,
            "AI-901": self.ai901,
        }
        for name, (zso, zsc) in _FEEDBACK.items():
            valve = v[name]
            tags[zso] = valve.zso
            tags[zsc] = valve.zsc
        for d in self.detectors:
            tags[d.tag] = d.reading
            tags["XA-" + d.tag[3:]] = d.fault
        for tag in _SATURATING:
            # a transmitter saturates just outside its span (NAMUR NE43: 3.8 / 20.5 mA)
            lo, hi = _SATURATION[tag]
            x = tags[tag]
            tags[tag] = lo if x < lo else hi if x > hi else x
        for tag in self._sensor_fault:
            if not tag.startswith("GD-"):  # detectors already read 0 mA through their own fault path
                tags[tag] = self._failed_value(tag)
        tags.update(self._cmd)
        tags[HEARTBEAT_TAG] = heartbeat_count(self.time)  # the PLC's I/O heartbeat (io list: heartbeat)
        return tags

    def write(self, tag: str, value: float | int | bool) -> None:
        if tag not in self._cmd:
            raise UnknownTag(tag)
        if tag == "HS-400":
            try:
                cmd = LoadCmd(int(value))
            except ValueError as exc:
                raise BadCommandValue(f"HS-400: {value!r} is not a state index 0..{len(LoadCmd) - 1}") from exc
            if cmd == LoadCmd.LOAD and self.gt.state in (GTState.OFF, GTState.TRIPPED):
                self.gt.start_request = True
            self._cmd[tag] = int(cmd)
            return
        if tag in self._sp:
            sp = float(value)
            if not 0.0 <= sp <= 5.0 or math.isnan(sp):
                raise BadCommandValue(f"{tag}: setpoint {value!r} MPa outside [0, 5]")
            self._cmd[tag] = self._sp[tag] = sp
            return
        b = bool(value)
        old = self._cmd[tag]
        self._cmd[tag] = b
        if tag in _CMD_VALVE:
            self.valves[_CMD_VALVE[tag]].set_open(b)
        elif tag in ("HS-213A", "HS-213B"):
            if b and not old:
                self._ssv_reset_pending[tag[-1]] = True
        elif tag == "HS-001":
            self._offtake_request(b, bool(old))
        # XY-320, XY-400 and XY-411A/B act through the PLC logic in the next scan.

    def inject(self, fault: str, **params: Any) -> None:
        spec = _FAULTS_BY_NAME.get(fault)
        if spec is None:
            raise UnknownFault(fault)
        prm = spec.coerce(params)
        key = (fault, str(prm.get(_FAULT_KEY.get(fault, ""), "")))
        if key in self._faults:
            self._undo(fault, self._faults.pop(key))
        self._faults[key] = prm
        self._apply(fault, prm)

    def clear(self, fault: str | None = None) -> None:
        if fault is not None and fault not in _FAULTS_BY_NAME:
            raise UnknownFault(fault)
        for key in [k for k in self._faults if fault is None or k[0] == fault]:
            self._undo(key[0], self._faults.pop(key))

    def active_faults(self) -> list[dict[str, Any]]:
        return [{"fault": name, **prm} for (name, _), prm in self._faults.items()]

    # -- helpers for tests, scenarios and the HMI ------------------------------------------------
    def pressure_mpa(self, node: str) -> float:
        """Gauge pressure of a node: N1, N2, N3, N4, N5."""
        return self.nodes[node].p_mpa_g

    def node_mass(self, node: str) -> float:
        return self.nodes[node].mass

    @property
    def flows(self) -> dict[str, float]:
        """Mass flows (kg/s) of the last step: links along the chain and every sink."""
        fl = self._flow
        return {
            "offtake": fl[0], "XV-201": fl[1], "runs": fl[2], "front_module": fl[3], "SRV-320": fl[4],
            "GT": self.gt.delivered, **self._vent_flow,
            "leaks": sum(self._leak_flow.values()),
        }  # fmt: skip

    @property
    def leak_flows(self) -> dict[Zone, float]:
        """Current leak mass flow by zone, kg/s."""
        return dict(self._leak_flow)

    # =========================================================================================
    # one substep
    # =========================================================================================
    def _substep(self, dt: float) -> None:
        p = self.params
        if dt != self._alpha_dt:
            self._alpha_dt = dt
            self._alpha_det = 1.0 - math.exp(-dt * math.log(10.0) / p.t90)
            self._alpha_reg = 1.0 - math.exp(-dt / p.reg_tau)
        self._offtake_step()
        self._plc_outputs()
        for valve in self._valve_list:
            valve.step(dt)
        self._regulators(dt)
        if self._leak_growing:
            self._update_leak_areas()
        self._gas_flows(dt)
        self._compartment(dt)
        self._detectors(dt)
        self._gt_step(dt)
        self._plc_trips(dt)
        self._ventilation_logic(dt)
        self.time += dt

    # -- external party ----------------------------------------------------------------------------
    def _offtake_request(self, on: bool, was_on: bool) -> None:
        o = self.offtake
        if on and not was_on and o.state in (OfftakeState.IDLE, OfftakeState.DONE):
            lo, hi = self.params.ack_delay_s
            alo, ahi = self.params.action_delay_s
            o.state = OfftakeState.REQUESTED
            o.t_request = self.time
            o.ack_delay = float(self._rng_ext.uniform(lo, hi))
            o.action_delay = float(self._rng_ext.uniform(alo, ahi))
        elif not on and was_on:
            # The request is withdrawn: the ack lamp goes out. XV-001 stays as it is: reopening the
            # upstream source is the offtake station's decision, outside this model.
            o.acked = False
            if o.state == OfftakeState.REQUESTED:
                o.state = OfftakeState.IDLE

    def _offtake_step(self) -> None:
        o = self.offtake
        if o.state in (OfftakeState.IDLE, OfftakeState.DONE) or o.silent:
            return
        ack_delay, action_delay = o.slow if o.slow is not None else (o.ack_delay, o.action_delay)
        if o.state == OfftakeState.REQUESTED and self.time >= o.t_request + ack_delay:
            o.state = OfftakeState.ACKNOWLEDGED
            o.acked = True
            o.t_ack = self.time
        if o.state == OfftakeState.ACKNOWLEDGED and self.time >= o.t_ack + action_delay:
            o.state = OfftakeState.DONE
            self.xv001.set_open(False)
            o.flare_lit = True

    # -- PLC outputs that follow logic rather than a client's write --------------------------------
    def _plc_outputs(self) -> None:
        gt = self.gt
        srv = self.valves["SRV-320"]
        want_open = bool(self._cmd["XY-320"]) and gt.state in FIRED
        if want_open or not gt.ignores_trip:  # F-G15: nothing the PLC or the client does closes it
            srv.set_open(want_open)
        for r, run in self.runs.items():
            if self._ssv_reset_pending[r]:
                self._ssv_reset_pending[r] = False
                self._cmd[f"HS-213{r}"] = False  # pulse: the PLC drops the coil after the reset
                if self._pt202() < self.params.ssv_opso:
                    run.ssv_tripped = False
                    run.upso_armed = False  # re-arms once the outlet pressure is established
                    run.t_over = run.t_under = 0.0
            run.ssv.set_open(not run.ssv_tripped)

    # -- regulators and slam-shuts (3.4) -----------------------------------------------------------
    def _regulators(self, dt: float) -> None:
        p = self.params
        p_out = self._pt202()
        kp, u_ss, alpha = p.reg_kp, self.u_ss, self._alpha_reg
        for r, run in self.runs.items():
            sp = self._sp["PCV-215" + r]
            spm = self._sp["PCV-214" + r]
            if run.fault is _RegFault.OPEN:
                run.fail_cmd = min(1.0, run.fail_cmd + run.fail_rate * dt)
                u_cmd = run.fail_cmd
            elif run.fault is _RegFault.CLOSED:
                u_cmd = 0.0
            else:
                u_cmd = _clamp01(u_ss + kp * (sp - p_out) / sp) if sp > 0.0 else 0.0
            run.u += (u_cmd - run.u) * alpha
            # Monitor: the same law on its own setpoint; wide open while p_out is well below it.
            um_cmd = _clamp01(u_ss + kp * (spm - p_out) / spm) if spm > 0.0 else 0.0
            run.um += (um_cmd - run.um) * alpha
            if run.plug_rate:
                run.plug_kpa += run.plug_rate * dt / 60.0
                self._set_filter(run)
            # Slam-shut: OPSO / UPSO held for > ssv_delay_s trips the latch.
            if not run.ssv_tripped:
                run.t_over = run.t_over + dt if p_out > p.ssv_opso else 0.0
                run.t_under = run.t_under + dt if (run.upso_armed and p_out < p.ssv_upso) else 0.0
                if run.t_over > p.ssv_delay_s or run.t_under > p.ssv_delay_s:
                    run.ssv_tripped = True
                    run.ssv.set_open(False)
                if not run.upso_armed and p_out > p.ssv_upso + p.ssv_upso_arm_margin:
                    run.upso_armed = True

    def _set_filter(self, run: _Run) -> None:
        p = self.params
        p2 = gauge_mpa_to_abs(p.pt201_normal)
        dp = (p.pdt212_normal_kpa + run.plug_kpa) * 1e3
        run.a_filter = area_for_flow(p.fuel_base, p2, max(P_ATM, p2 - dp), self.gas)

    # -- the implicit pressure step ------------------------------------------------------------------
    def _pt202(self) -> float:
        """Station outlet pressure (MPa g) as PT-202 and the regulator pilots see it: N3 plus the
        PL-250 friction drop at the current station flow."""
        f = self._flow[2] / self.params.fuel_base
        return (self._node_list[N3].p_abs - P_ATM) * 1e-6 + self.params.pl250_dp * f * abs(f)

    def _gas_flows(self, dt: float) -> None:
        """Linearly implicit Euler on the node chain (see the module docstring)."""
        flow = self._fm.flow
        nodes = self._node_list
        pr = [n.p_abs for n in nodes]
        cap = self._cap
        v = self.valves
        p = self.params

        # link areas ---------------------------------------------------------------------------
        a0 = _ser2(self._a_fric0, self._a_xv001 * self.xv001.opening)
        a1 = _ser2(self._a_fric1, self._a_xv201 * v["XV-201"].opening)
        run_a = self.runs["A"]
        run_b = self.runs["B"]
        a_run_a = self._run_area(run_a)
        a_run_b = self._run_area(run_b)
        a2 = _ser2(a_run_a + a_run_b, self._a_xv205 * v["XV-205"].opening)
        br_a = series_area(self._a_brv * v["XV-311A"].opening, self._a_f312, self._a_brv * v["XV-313A"].opening)
        br_b = series_area(self._a_brv * v["XV-311B"].opening, self._a_f312, self._a_brv * v["XV-313B"].opening)
        a3 = _ser2(self._a_xv301 * v["XV-301"].opening, br_a + br_b)
        a4 = _ser2(self._a_fric4, self._a_srv * v["SRV-320"].opening)

        # links: flow and derivatives ---------------------------------------------------------
        f0, _, b0 = flow(self._p_boundary, pr[N1], a0)
        links = (
            flow(pr[N1], pr[N2], a1),
            flow(pr[N2], pr[N3], a2) if pr[N2] > pr[N3] else (0.0, 0.0, 0.0),  # a regulator passes no reverse flow
            flow(pr[N3], pr[N4], a3),
            flow(pr[N4], pr[N5], a4),
        )

        # sinks: flow out and d/dp per node ---------------------------------------------------
        s = [0.0] * 5
        c = [0.0] * 5
        f_bdv = self._to_atm(pr[N1], self._a_bdv * v["BDV-102"].opening)
        f_bv = self._to_atm(pr[N4], self._a_bv321 * v["BV-321"].opening)
        s[N1] += f_bdv[0]
        c[N1] += f_bdv[1]
        s[N4] += f_bv[0]
        c[N4] += f_bv[1]
        # PSV-203 on the station outlet: choked flow times a lift proportional to the over-pressure
        pg3 = (pr[N3] - P_ATM) * 1e-6
        f_psv = (0.0, 0.0)
        if pg3 > p.psv_set:
            span = p.psv_full_lift * p.psv_set
            lift = min(1.0, (pg3 - p.psv_set) / span)
            kc = self._fm.kc * self._a_psv
            dlift = 0.0 if lift >= 1.0 else 1e-6 / span
            f_psv = (kc * pr[N3] * lift, kc * (lift + pr[N3] * dlift))
            s[N3] += f_psv[0]
            c[N3] += f_psv[1]
        leak_out = [(0.0, 0.0)] * 5
        for i in range(5):
            if self._leak_area[i] > 0.0:
                leak_out[i] = self._to_atm(pr[i], self._leak_area[i])
                s[i] += leak_out[i][0]
                c[i] += leak_out[i][1]
        f_gc = (0.0, 0.0)
        if self._gc_leak_area > 0.0:
            f_gc = self._to_atm(pr[N5], self._gc_leak_area)
            s[N5] += f_gc[0]
            c[N5] += f_gc[1]
        # GT fuel: the demand in full above p_fuel_full, falling linearly to 0 at the combustor pressure
        pg5 = (pr[N5] - P_ATM) * 1e-6
        demand = self.gt.demand
        f_gt = (0.0, 0.0)
        if demand > 0.0 and pg5 > p.p_combustor:
            span = p.p_fuel_full - p.p_combustor
            if pg5 >= p.p_fuel_full:
                f_gt = (demand, 0.0)
            else:
                f_gt = (demand * (pg5 - p.p_combustor) / span, demand * 1e-6 / span)
            s[N5] += f_gt[0]
            c[N5] += f_gt[1]
        passing = 0.0
        if self.offtake.passing_kg_s > 0.0 and self.xv001.zsc and pr[N1] < self._p_boundary:
            passing = self.offtake.passing_kg_s  # F-G04: XV-001 reported closed but passing

        # tridiagonal system (C/dt - J) dp = F: link k joins node k (up) and k+1 (down) ----------
        diag = [cap[i] / dt + c[i] for i in range(5)]
        upper = [0.0] * 5
        lower = [0.0] * 5
        rhs = [-x for x in s]
        rhs[N1] += f0 + passing
        diag[N1] -= b0
        for k, (f, da, db) in enumerate(links):
            rhs[k] -= f
            rhs[k + 1] += f
            diag[k] += da
            upper[k] += db
            lower[k + 1] -= da
            diag[k + 1] -= db
        for i in range(1, 5):  # Thomas algorithm (diagonally dominant: da >= 0, db <= 0)
            w = lower[i] / diag[i - 1]
            diag[i] -= w * upper[i - 1]
            rhs[i] -= w * rhs[i - 1]
        dp = [0.0] * 5
        dp[4] = rhs[4] / diag[4]
        for i in range(3, -1, -1):
            dp[i] = (rhs[i] - upper[i] * dp[i + 1]) / diag[i]
        for i in range(5):
            # no vacuum source in this plant: linearisation overshoot below atmosphere is clipped
            nodes[i].p_abs = max(P_ATM, pr[i] + dp[i])

        # flows at the new pressures (the linearised ones, so the mass balance closes) -----------
        fl = self._flow
        fl[0] = f0 + b0 * dp[N1] + passing
        for k, (f, da, db) in enumerate(links):
            fl[k + 1] = f + da * dp[k] + db * dp[k + 1]
        a_runs = a_run_a + a_run_b
        run_a.flow = fl[2] * a_run_a / a_runs if a_runs > 0.0 else 0.0
        run_b.flow = fl[2] * a_run_b / a_runs if a_runs > 0.0 else 0.0
        a_br = br_a + br_b
        self._branch_flow[0] = fl[3] * br_a / a_br if a_br > 0.0 else 0.0
        self._branch_flow[1] = fl[3] * br_b / a_br if a_br > 0.0 else 0.0
        self._vent_flow["BDV-102"] = f_bdv[0] + f_bdv[1] * dp[N1]
        self._vent_flow["BV-321"] = f_bv[0] + f_bv[1] * dp[N4]
        self._vent_flow["PSV-203"] = f_psv[0] + f_psv[1] * dp[N3]
        self.gt.delivered = max(0.0, f_gt[0] + f_gt[1] * dp[N5])
        lf = self._leak_flow
        for z, i in _ZONE_NODE.items():
            lf[z] = max(0.0, leak_out[i][0] + leak_out[i][1] * dp[i])
        lf[Zone.GC] = max(0.0, f_gc[0] + f_gc[1] * dp[N5])

    def _run_area(self, run: _Run) -> float:
        if run.inlet.x <= 0.0 or run.outlet.x <= 0.0 or run.ssv.x <= 0.0:
            return 0.0
        u = run.u if run.u < run.um else run.um
        return series_area(self._a_runv * run.inlet.opening, run.a_filter, self._a_ssv * run.ssv.opening,
                           self._a_reg * u, self._a_runv * run.outlet.opening)

    def _to_atm(self, p_abs: float, cd_area: float) -> tuple[float, float]:
        """Outflow to atmosphere and its derivative; no backflow of air into the plant."""
        if cd_area <= 0.0 or p_abs <= P_ATM:
            return (0.0, 0.0)
        f, da, _ = self._fm.forward(p_abs, P_ATM, cd_area)
        return (f, da)

    def _update_leak_areas(self) -> None:
        cd = self.params.leak_cd
        out = [0.0] * 5
        gc = 0.0
        growing = False
        for zone, leaks in self._leaks.items():
            for lk in leaks:
                if lk.over_s > 0.0 and lk.d1_mm != lk.d0_mm:
                    frac = min(1.0, max(0.0, (self.time - lk.t0) / lk.over_s))
                    growing = growing or frac < 1.0
                else:
                    frac = 1.0
                d = (lk.d0_mm + (lk.d1_mm - lk.d0_mm) * frac) * 1e-3
                a = cd * circle_area(d)
                if zone == Zone.GC:
                    gc += a
                else:
                    out[_ZONE_NODE[zone]] += a
        self._leak_area = out
        self._gc_leak_area = gc
        self._leak_growing = growing

    # -- compartment gas and the patrol reading (3.6) ---------------------------------------------
    def _compartment(self, dt: float) -> None:
        p = self.params
        q = self._leak_flow[Zone.GC] / p.rho_gas_amb
        tot = self.q_vent + q
        c_ss = q / tot
        self.conc = c_ss + (self.conc - c_ss) * math.exp(-dt * tot / p.gc_volume)
        worst = 0.0
        for z in (Zone.N1, Zone.N2, Zone.N3, Zone.N4, Zone.N5):
            m = self._leak_flow[z]
            if m > 0.0:
                qz = m / p.rho_gas_amb
                worst = max(worst, 100.0 * 100.0 * qz / (qz + p.patrol_dilution_m3s) / p.lel_vol)
        self.ai901 = min(100.0, worst)

    # -- gas detectors (3.7) -----------------------------------------------------------------------
    def _detectors(self, dt: float) -> None:
        p = self.params
        line = self._delay_line
        now = self.time + dt
        line.append((now, self.conc))
        cutoff = now - p.transport_s
        while len(line) > 1 and line[1][0] <= cutoff + 1e-9:
            line.popleft()
        c_late = line[0][1] * 100.0 * 100.0 / p.lel_vol  # %LEL, transport-delayed
        alpha = self._alpha_det
        sigma = p.noise_sigma
        lo, hi = p.det_clamp_lo, p.det_clamp_hi
        for d in self.detectors:
            d.y += (d.mixing * c_late - d.y) * alpha
            if d.drift_rate:
                d.drift += d.drift_rate * dt
            if d.open_loop or d.tag in self._sensor_fault:
                d.reading = -25.0  # 0 mA
            elif d.stuck is not None:
                d.reading = d.stuck
            else:
                r = d.y + sigma * self._next_noise() + d.drift
                d.reading = lo if r < lo else hi if r > hi else r
            ma = 4.0 + 0.16 * d.reading
            d.fault = ma < p.fault_ma_lo or ma > p.fault_ma_hi

    def _next_noise(self) -> float:
        i = self._noise_i
        if i >= len(self._noise):
            self._noise = self._rng_noise.standard_normal(4096).tolist()
            i = 0
        self._noise_i = i + 1
        return self._noise[i]

    # -- GT (3.5) ------------------------------------------------------------------------------------
    def _fuel_for(self, power: float) -> float:
        p = self.params
        return p.fuel_base * (p.fsnl_fraction + (1.0 - p.fsnl_fraction) * power / p.p_rated)

    def _gt_step(self, dt: float) -> None:
        p = self.params
        gt = self.gt
        cmd = LoadCmd(int(self._cmd["HS-400"]))
        st = gt.state
        # flame-out: physics, acts even when the trip outputs are dead (F-G15)
        if st in FIRED and gt.demand > 0.0 and gt.delivered < p.flameout_fraction * gt.demand:
            gt.t_starved += dt
            if gt.t_starved >= p.flameout_delay_s:
                self._trip_gt(TripCause.FLAMEOUT, force=True)
                st = gt.state
        else:
            gt.t_starved = 0.0

        if st == GTState.RUNNING:
            if cmd == LoadCmd.LOAD:
                gt.power = min(p.p_rated, gt.power + p.load_rate * dt / 60.0)
            elif cmd in (LoadCmd.UNLOAD, LoadCmd.FAST_UNLOAD):
                gt.state = st = GTState.UNLOADING
        if st == GTState.UNLOADING:
            if cmd in (LoadCmd.HOLD, LoadCmd.LOAD):
                gt.state = GTState.RUNNING
            else:
                rate = p.fast_unload_rate if cmd == LoadCmd.FAST_UNLOAD else p.unload_rate
                gt.power = max(0.0, gt.power - rate * dt / 60.0)
                if gt.power <= p.breaker_open_mw:
                    gt.power = 0.0
                    gt.state = GTState.STOPPING
                    gt.stop_fuel0 = self._fuel_for(p.breaker_open_mw)
                    gt.t_phase = 0.0
        elif st == GTState.STOPPING:
            gt.t_phase += dt
            if gt.t_phase >= p.fuel_shutdown_s:
                gt.state = GTState.OFF
        elif st == GTState.STARTING:
            gt.t_phase += dt
            gt.speed = p.speed_rated * min(1.0, gt.t_phase / p.start_time_s)
            if gt.t_phase >= p.start_time_s:
                gt.state = GTState.RUNNING
                gt.power = 0.0
        elif st in (GTState.OFF, GTState.TRIPPED) and gt.start_request:
            gt.start_request = False
            if self._start_permitted():
                gt.state = GTState.STARTING
                gt.t_phase = 0.0
                gt.trip_cause = gt.trip_time = None
                self.plc_trip = None
                self._pt322_armed = False
                self._t_low_fuel = 0.0
        gt.start_request = False

        st = gt.state
        if st in (GTState.RUNNING, GTState.UNLOADING):
            gt.demand = self._fuel_for(gt.power)
            gt.speed = p.speed_rated
        elif st == GTState.STOPPING:
            gt.demand = gt.stop_fuel0 * max(0.0, 1.0 - gt.t_phase / p.fuel_shutdown_s)
            gt.speed *= math.exp(-dt / p.coast_tau)  # breaker open: the shaft runs down
        elif st == GTState.STARTING:
            gt.demand = p.fuel_base * p.fsnl_fraction * gt.speed / p.speed_rated
        else:
            gt.demand = 0.0
            gt.power = 0.0
            gt.speed *= math.exp(-dt / p.coast_tau)  # coast-down 3000 exp(-t/300)

    def _start_permitted(self) -> bool:
        return (bool(self._cmd["XY-400"]) and Zone.GC not in self.fire_zones
                and self._healthy_votes() < self.params.gas_trip_votes)

    def _trip_gt(self, cause: TripCause, force: bool = False) -> None:
        gt = self.gt
        if gt.state not in FIRED or (gt.ignores_trip and not force):
            return
        gt.state = GTState.TRIPPED
        gt.power = 0.0
        gt.demand = 0.0
        gt.trip_cause = cause
        gt.trip_time = self.time

    # -- PLC trips (1.4, 3.5, 3.7) -----------------------------------------------------------------
    def _healthy_votes(self) -> int:
        lim = self.params.gas_trip_lel
        return sum(1 for d in self.detectors if not d.fault and d.reading >= lim)

    def _plc_trips(self, dt: float) -> None:
        p = self.params
        gt = self.gt
        fired = gt.state in FIRED
        self._t_gas_vote = self._t_gas_vote + dt if self._healthy_votes() >= p.gas_trip_votes else 0.0
        pt322 = self._measured("PT-322", (self._node_list[N5].p_abs - P_ATM) * 1e-6)
        if fired and pt322 >= p.pt322_arm:
            self._pt322_armed = True
        low = fired and self._pt322_armed and pt322 < p.pt322_trip
        self._t_low_fuel = self._t_low_fuel + dt if low else 0.0
        cause: TripCause | None = None
        if self._t_gas_vote >= p.gas_trip_delay_s - 1e-9:
            cause = TripCause.GAS_2OO3
        elif self._t_low_fuel >= p.pt322_trip_delay_s - 1e-9:
            cause = TripCause.LOW_FUEL_PRESSURE
        elif Zone.GC in self.fire_zones:
            cause = TripCause.FIRE
        elif not self._cmd["XY-400"]:
            cause = TripCause.ESD
        if cause is not None and fired and self.plc_trip is None:
            self.plc_trip = cause  # latched: stays demanded until a restart resets it
        if self.plc_trip is not None and fired:
            self._trip_gt(self.plc_trip)

    def _measured(self, tag: str, value: float) -> float:
        return self._failed_value(tag) if tag in self._sensor_fault else value

    @staticmethod
    def _failed_value(tag: str) -> float:
        lo, hi = ANALOG_RANGES[tag]
        return lo - 0.25 * (hi - lo)  # 0 mA on a 4-20 mA loop

    # -- ventilation -------------------------------------------------------------------------------
    def _fan_running(self, fan: str) -> bool:
        return bool(self._cmd["XY-411" + fan]) and not self._fan_failed[fan]

    def _ventilation_logic(self, dt: float) -> None:
        p = self.params
        n = int(self._fan_running("A")) + int(self._fan_running("B"))
        if self._vent_loss == _VentLoss.ALL or n == 0:
            self.q_vent = p.natural_vent
        else:
            self.q_vent = p.fan_flow * n
        low = self.q_vent < p.fs411_ok and (self._cmd["XY-411A"] or self._cmd["XY-411B"])
        self._t_lowflow = self._t_lowflow + dt if low else 0.0
        if p.standby_fan_autostart and self._t_lowflow >= p.standby_fan_delay_s:
            for fan in ("A", "B"):
                if not self._cmd["XY-411" + fan]:
                    self._cmd["XY-411" + fan] = True  # the PLC energises the standby fan's output
            self._t_lowflow = 0.0

    # =========================================================================================
    # faults
    # =========================================================================================
    def _apply(self, fault: str, prm: dict[str, Any]) -> None:
        if fault in ("leak", "leak_growing"):
            zone = Zone(prm["zone"])
            if fault == "leak":
                lk = _Leak(zone, prm["hole_mm"], prm["hole_mm"], 0.0, self.time)
            else:
                lk = _Leak(zone, prm["from_mm"], prm["to_mm"], prm["over_s"], self.time)
            self._leaks.setdefault(zone, []).append(lk)
            self._update_leak_areas()
            self._leak_growing = self._leak_growing or fault == "leak_growing"
        elif fault == "fire":
            self.fire_zones.add(Zone(prm["zone"]))
        elif fault.startswith("detector_"):
            d = self._detector(prm["tag"])
            if fault == "detector_stuck":
                d.stuck = prm["value"]
            elif fault == "detector_drift":
                d.drift_rate = prm["rate_per_min"] / 60.0
            else:
                d.open_loop = True
        elif fault.startswith("valve_"):
            v = self.valves[prm["valve"]]
            if fault == "valve_stuck":
                if prm["at"] >= 0.0:
                    v.x = _clamp01(prm["at"])
                v.fault = ValveFault.STUCK
            elif fault == "valve_slow":
                v.fault = ValveFault.SLOW
                v.slow_factor = max(1.0, prm["factor"])
            elif fault == "valve_partial":
                v.fault = ValveFault.PARTIAL
                v.partial_stop = _clamp01(prm["x_stop"])
            elif fault == "valve_no_feedback":
                v.fault = ValveFault.NO_FEEDBACK
            else:
                v.passing = _clamp01(prm["fraction"])
        elif fault == "regulator_failed_open":
            run = self.runs[prm["run"]]
            run.fault = _RegFault.OPEN
            run.fail_cmd = run.u
            run.fail_rate = 1.0 / prm["over_s"] if prm["over_s"] > 0.0 else math.inf
        elif fault == "regulator_failed_closed":
            self.runs[prm["run"]].fault = _RegFault.CLOSED
        elif fault == "ssv_spurious_trip":
            run = self.runs[prm["run"]]
            run.ssv_tripped = True
            run.ssv.set_open(False)
        elif fault == "filter_plugging":
            self.runs[prm["run"]].plug_rate = prm["kpa_per_min"]
        elif fault == "ventilation_lost":
            which = _VentLoss(prm["which"])
            if which == _VentLoss.ALL:
                self._vent_loss = _VentLoss.ALL
            else:
                self._fan_failed[which.value] = True
        elif fault == "instrument_air_lost":
            for name in FAIL_CLOSED:
                self.valves[name].supply_ok = False
        elif fault == "gt_fails_to_trip":
            self.gt.ignores_trip = True
        elif fault == "offtake_slow":
            self.offtake.slow = (prm["ack_delay_s"], prm["action_delay_s"])
        elif fault == "offtake_silent":
            self.offtake.silent = True
        elif fault == "offtake_passing":
            self.offtake.passing_kg_s = max(0.0, prm["kg_s"])
        elif fault == "sensor_fault":
            self._sensor_fault.add(prm["tag"])

    def _undo(self, fault: str, prm: dict[str, Any]) -> None:
        if fault in ("leak", "leak_growing"):
            zone = Zone(prm["zone"])
            grows = fault == "leak_growing"
            self._leaks[zone] = [lk for lk in self._leaks.get(zone, []) if (lk.over_s > 0.0) != grows]
            self._update_leak_areas()
        elif fault == "fire":
            self.fire_zones.discard(Zone(prm["zone"]))
        elif fault.startswith("detector_"):
            d = self._detector(prm["tag"])
            if fault == "detector_stuck":
                d.stuck = None
            elif fault == "detector_drift":
                d.drift_rate = 0.0
                d.drift = 0.0
            else:
                d.open_loop = False
        elif fault.startswith("valve_"):
            v = self.valves[prm["valve"]]
            kind = {"valve_stuck": ValveFault.STUCK, "valve_slow": ValveFault.SLOW,
                    "valve_partial": ValveFault.PARTIAL, "valve_no_feedback": ValveFault.NO_FEEDBACK}.get(fault)
            if kind is None:
                v.passing = 0.0
            elif v.fault == kind:
                v.fault = ValveFault.NONE
                v.slow_factor = 1.0
        elif fault in ("regulator_failed_open", "regulator_failed_closed"):
            self.runs[prm["run"]].fault = _RegFault.NONE
        elif fault == "ssv_spurious_trip":
            pass  # the slam-shut stays latched: only the field reset (HS-213x) reopens it
        elif fault == "filter_plugging":
            run = self.runs[prm["run"]]
            run.plug_rate = 0.0
            run.plug_kpa = 0.0  # element replaced
            self._set_filter(run)
        elif fault == "ventilation_lost":
            which = _VentLoss(prm["which"])
            if which == _VentLoss.ALL:
                self._vent_loss = _VentLoss.NONE
            else:
                self._fan_failed[which.value] = False
        elif fault == "instrument_air_lost":
            for name in FAIL_CLOSED:
                self.valves[name].supply_ok = True
        elif fault == "gt_fails_to_trip":
            self.gt.ignores_trip = False
        elif fault == "offtake_slow":
            self.offtake.slow = None
        elif fault == "offtake_silent":
            self.offtake.silent = False
        elif fault == "offtake_passing":
            self.offtake.passing_kg_s = 0.0
        elif fault == "sensor_fault":
            self._sensor_fault.discard(prm["tag"])

    def _detector(self, tag: str) -> _Detector:
        for d in self.detectors:
            if d.tag == tag:
                return d
        raise UnknownTag(tag)


def load_station(seed: int = 0) -> GasStation:
    return GasStation(seed=seed)


__all__ = [
    "ANALOG_RANGES", "DETECTORS", "FAULTS", "VALVE_TAGS", "BadCommandValue", "GTState", "GasParams", "GasStation",
    "LoadCmd", "OfftakeState", "TripCause", "ValveTiming", "Zone", "load_station",
]  # fmt: skip

