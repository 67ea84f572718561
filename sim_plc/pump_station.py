"""Plant B: the circulating-water pump station, its PLC logic and its faults.

Theory of operation
-------------------
One ``step(dt)`` is one PLC scan followed by the physics (plant-reference.md 3.10-3.13):

1. Fault schedules (power flicker, late fuel reserve) and the PLC scan of the commands
   the clients wrote: pump breaker run commands (HS-701x/711x, start permissive = own
   MOV closed, bus live, residual voltage decayed, suction level, start limits; a
   refused or tripped start resets the coil to 0), MOV commands (HS-703x/713x/740),
   diesel mode (HS-801), manual crank (HS-809) and stop (HS-810), fuel transfer (HS-806).
2. Electrics: the 6 kV bus EI-601 is the grid less 8 % per motor starting; after a loss
   it shows the motors' residual voltage (tau_oc) until the breakers open. The UV
   relay 27-601 trips every pump breaker after 0.5 s below 70 %. XS-601 goes DEAD
   on loss, RESTORED_UNSTABLE on return and RESTORED_STABLE after 60 s >= 95 %.
   The emergency MCC EB-602 (EI-602) is UPS-backed: it stays up unless ``mcc_dead``.
3. Motors accelerate linearly over t_acc at 6 x FLA (DOL), then draw the load
   current; without supply they run down as n0 / (1 + t / tau_rd).
4. MOVs are ``sim_plc.valves.Valve`` (electric butterfly, frozen below 340 V).
5. The diesel controller (``DieselSet``): auto-start demand, START_DELAY during the
   10 s detection, 15 s cranks alternating batteries A/B with 15 s rests, six
   cycles then overcrank (XA-801, FAILED); engine, batteries, lube oil, coolant, fuel.
6. Hydraulics (``sim_plc.hydraulics``): pump branches, users and MOV-740 solved by an
   implicit step of the two header compliances, so any dt up to ~1 s is stable.
7. Consequence model 3.13: damage accumulators from the users' flows.

Speed: a step costs about ten microseconds (the header solve is skipped while its
inputs are unchanged and the heads are steady): 8 h of plant time at dt = 0.1 s take
about 3 s of plain ``step`` calls. ``step_many(n, dt)`` additionally
merges steps into ``quiet_dt_max`` (1 s) steps while nothing moves (no valve
travelling, no motor accelerating or running down, the diesel not cranking, the
heads steady), never stepping across a known timer deadline; so hours of steady
plant time cost milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Any, ClassVar

import numpy as np

from .errors import SimError, UnknownFault, UnknownTag
from .faults import FaultSpec, Param
from .hydraulics import HeaderNetwork, PumpBranch, PumpCurve, Users, m_to_mpa
from .plant import HEARTBEAT_TAG, heartbeat_count
from .valves import Characteristic, Valve, ValveCmd, ValveFault

STATION = "pump_station"


class BadWriteValue(SimError, ValueError):
    """A client wrote a value a command_out tag cannot take (enum index out of range, ...)."""


# ---------------------------------------------------------------------------------------------
# States (indices match the `states:` lists of io/pump_station.yaml)
# ---------------------------------------------------------------------------------------------
class BusState(IntEnum):
    LIVE = 0
    DEAD = 1
    RESTORED_UNSTABLE = 2
    RESTORED_STABLE = 3


class DieselMode(IntEnum):
    OFF = 0
    AUTO = 1
    MANUAL = 2
    TEST = 3


class DieselState(IntEnum):
    STANDBY = 0
    START_DELAY = 1
    CRANKING = 2
    RESTING = 3
    RUNNING = 4
    COOLDOWN = 5
    FAILED = 6


# The diesel controller's allowed moves, written out (DieselSet._go refuses any other).
# Mode OFF (the reset) may end any state in STANDBY; FAILED is left only by that reset or a manual crank.
DIESEL_TRANSITIONS: dict[DieselState, frozenset[DieselState]] = {
    DieselState.STANDBY: frozenset({DieselState.START_DELAY, DieselState.CRANKING}),
    DieselState.START_DELAY: frozenset({DieselState.STANDBY, DieselState.CRANKING}),
    DieselState.CRANKING: frozenset(
        {DieselState.RUNNING, DieselState.RESTING, DieselState.FAILED, DieselState.STANDBY}
    ),
    DieselState.RESTING: frozenset({DieselState.CRANKING, DieselState.STANDBY}),
    DieselState.RUNNING: frozenset({DieselState.COOLDOWN, DieselState.FAILED, DieselState.STANDBY}),
    DieselState.COOLDOWN: frozenset({DieselState.STANDBY}),
    DieselState.FAILED: frozenset({DieselState.STANDBY, DieselState.CRANKING}),
}


class CrankRequest(IntEnum):
    NONE = 0
    CRANK_A = 1
    CRANK_B = 2


class Header(Enum):
    BF = "BF"  # blast-furnace normal-pressure water, PT-720
    HBS = "HBS"  # hot-blast-stove cooling water, PT-730


class Battery(Enum):
    A = "A"
    B = "B"


class DieselTripReason(Enum):
    OVERSPEED = "overspeed"
    LOW_FUEL = "low_fuel"


# ---------------------------------------------------------------------------------------------
# Parameters: every (A) number of plant-reference.md 2.2, 2.3, 3.1, 3.10-3.13
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PumpParams:
    # -- 6 kV bus and protection (3.11)
    v_nominal_kv: float = 6.3
    uv_trip_frac: float = 0.70  # relay 27-601 pick-up
    uv_trip_delay_s: float = 0.5
    tau_oc_s: float = 1.0  # residual-voltage decay of the motors after a loss
    reclose_residual_frac: float = 0.25  # no reclosing while the motor's residual voltage exceeds this
    stable_frac: float = 0.95
    stable_s: float = 60.0
    start_dip_frac: float = 0.08  # bus dip per large motor accelerating
    # -- emergency MCC EB-602
    mcc_nominal_v: float = 400.0
    mov_min_v: float = 340.0
    # -- electric pumps (2.2, 3.10, 3.11)
    bf_h0_m: float = 75.0
    bf_q_m3h: float = 2000.0
    bf_h_m: float = 60.0
    bf_eta: float = 0.82
    bf_fla_a: float = 52.0
    bf_t_acc_s: float = 8.0
    bf_tau_rd_s: float = 6.0
    hbs_h0_m: float = 68.0
    hbs_q_m3h: float = 800.0
    hbs_h_m: float = 55.0
    hbs_eta: float = 0.80  # 150 kW shaft at 800 m3/h, 55 m
    hbs_fla_a: float = 22.0
    hbs_t_acc_s: float = 5.0
    hbs_tau_rd_s: float = 4.0
    shutoff_power_frac: float = 0.45  # shaft power at zero flow / design power
    no_load_current_frac: float = 0.30  # motor current at no load / FLA
    inrush_mult: float = 6.0  # DOL starting current / FLA
    running_current_frac: float = 0.10  # XS-701x: breaker closed and I > 10 % FLA
    stall_speed_frac: float = 0.25  # pump_fails_to_accelerate: the rotor hangs here
    rundown_stop_frac: float = 0.05  # the hyperbolic run-down is cut to 0 below this speed
    locked_rotor_trip_s: float = 20.0  # motor protection backstop; the procedure's check is at 15 s
    starts_cold: int = 3
    starts_hot: int = 2
    start_window_s: float = 3600.0  # starts counted in this window; the block lasts until one leaves it
    hot_run_s: float = 1800.0  # a motor loaded this long within the window is "hot"
    suction_level_m: float = 4.0
    low_level_trip_m: float = 1.5
    # -- diesel pump P-801
    dp_h0_m: float = 70.0
    dp_q_m3h: float = 1500.0
    dp_h_m: float = 50.0
    dp_eta: float = 0.78
    # -- valves (3.1): stroke, dead time, hand-wheel; Kv of MOVs and check valves (m3/h/sqrt(bar))
    mov_bf_stroke_s: float = 60.0
    mov_bf_manual_s: float = 900.0
    mov_hbs_stroke_s: float = 45.0
    mov_hbs_manual_s: float = 600.0
    mov_740_stroke_s: float = 60.0
    mov_740_manual_s: float = 900.0
    mov_dead_s: float = 1.0
    kv_mov_bf: float = 20000.0  # DN500 butterfly
    kv_mov_hbs: float = 9000.0  # DN350
    kv_mov_740: float = 12000.0  # DN400
    kv_cv_bf: float = 15000.0
    kv_cv_hbs: float = 7000.0
    kv_cv_diesel: float = 10000.0
    cv_failed_reverse_frac: float = 0.20  # a failed check valve passes 20 % of its Kv in reverse
    reverse_k_factor: float = 1.0  # stopped pump's reverse resistance = factor x H_design / Q_design^2
    # -- headers and users (3.10)
    bf_static_m: float = 20.0
    bf_r: float = 2.5e-6
    hbs_static_m: float = 15.0
    hbs_r: float = 6.25e-5
    bf_compliance_m3_per_m: float = 0.127  # tau ~2.5 s at the normal point
    hbs_compliance_m3_per_m: float = 0.028  # tau ~2.5 s at the normal point
    drain_tau_s: float = 30.0  # an unfed header drains through the users' outlets and vents
    lin_m: float = 0.01  # linear core of the square-root flow laws
    bf_q_design_m3h: float = 4000.0  # users' design flow (3.13 phi)
    hbs_q_design_m3h: float = 800.0
    bf_supply_temp_c: float = 30.0
    bf_design_rise_k: float = 10.0  # return 40 degC at the design flow
    return_temp_tau_s: float = 300.0
    # -- diesel controller and engine (3.12)
    t_detect_s: float = 10.0
    demand_pt720_mpa: float = 0.45
    crank_s: float = 15.0
    rest_s: float = 15.0
    max_crank_cycles: int = 6
    p_start_success: float = 0.9
    t_fire_min_s: float = 2.0
    t_fire_max_s: float = 6.0
    crank_rpm: float = 150.0
    disconnect_rpm: float = 400.0
    rated_rpm: float = 1500.0
    accel_400_to_rated_s: float = 5.0
    decel_rpm_s: float = 150.0  # coast-down after a stop
    overspeed_rpm: float = 1800.0
    droop_frac: float = 0.03
    idle_rpm: float = 900.0  # cool-down run
    cooldown_s: float = 300.0
    engine_rated_kw: float = 300.0
    eta_coupling: float = 0.97
    lube_bar_rated: float = 4.0
    coolant_run_c: float = 85.0
    coolant_hot_c: float = 100.0  # coolant_high fault target
    coolant_tau_s: float = 300.0
    coolant_standby_c: float = 40.0  # jacket-water heater
    coolant_standby_tau_s: float = 1800.0
    battery_float_v: float = 27.0
    battery_rest_v: float = 25.2  # open-circuit voltage when the chargers (EB-602) are dead
    battery_crank_v: float = 22.0
    battery_crank_tau_s: float = 2.0
    battery_recover_v_s: float = 0.5
    battery_min_crank_v: float = 16.0
    sfc_kg_kwh: float = 0.21
    sfc_low_load_kg_kwh: float = 0.23
    low_load_frac: float = 0.5
    fuel_density_kg_l: float = 0.84
    idle_fuel_l_h: float = 4.0  # floor while the engine turns unloaded
    tank_l: float = 2000.0
    tank_initial_pct: float = 95.0
    starve_pct: float = 5.0
    transfer_l_h: float = 600.0  # HS-806 transfer from the emergency reserve
    reserve_l: float = 6000.0
    # -- consequence model 3.13
    damage_phi: float = 0.6
    t_damage_tuyere_s: float = 600.0
    t_damage_stave_s: float = 3600.0
    t_damage_hbs_s: float = 300.0
    damage_cap: float = 2.0
    # -- simulation
    quiet_dt_max: float = 1.0  # step_many: longest merged step while nothing moves
    noise_frac: float = 0.0  # optional measurement noise (fraction of span, 1 sigma) in read_tags


# ---------------------------------------------------------------------------------------------
# Tag tables
# ---------------------------------------------------------------------------------------------
BF_SUFFIXES = ("A", "B", "C")
HBS_SUFFIXES = ("A", "B")
PUMPS = tuple(f"P-701{s}" for s in BF_SUFFIXES) + tuple(f"P-711{s}" for s in HBS_SUFFIXES)
MOVS = tuple(f"MOV-703{s}" for s in BF_SUFFIXES) + tuple(f"MOV-713{s}" for s in HBS_SUFFIXES) + ("MOV-740",)
CHECK_VALVE_PUMPS = PUMPS + ("P-801",)

# 4-20 mA transmitters (raw [4000, 20000] uA in the I/O list) and their ranges. A sensor
# fault reads as raw 0 (open loop), i.e. range_lo - 0.25 x span.
TRANSMITTERS: dict[str, tuple[float, float]] = {
    "EI-601": (0.0, 7.2),
    "EI-602": (0.0, 440.0),
    **{f"II-701{s}": (0.0, 600.0) for s in BF_SUFFIXES},
    **{f"II-711{s}": (0.0, 250.0) for s in HBS_SUFFIXES},
    **{f"PT-702{s}": (0.0, 1.0) for s in BF_SUFFIXES},
    **{f"PT-712{s}": (0.0, 1.0) for s in HBS_SUFFIXES},
    "PT-720": (0.0, 1.0),
    "FT-721": (0.0, 6000.0),
    "TT-722": (0.0, 80.0),
    "PT-730": (0.0, 1.0),
    "FT-731": (0.0, 1500.0),
    "LT-750": (0.0, 6.0),
    "ST-802": (0.0, 2000.0),
    "PT-803": (0.0, 10.0),
    "TT-804": (0.0, 120.0),
    "PT-805": (0.0, 1.0),
    "LT-806": (0.0, 100.0),
    "EI-807A": (0.0, 30.0),
    "EI-807B": (0.0, 30.0),
}
# Values the PLC calculates (raw [0, 65535], no live zero, so no sensor fault).
COMPUTED: dict[str, tuple[float, float]] = {
    "FQ-808": (0.0, 100.0),
    "UY-790": (0.0, 2.0),
    "UY-791": (0.0, 2.0),
    "UY-792": (0.0, 2.0),
}
RAW_LIVE_ZERO_FRAC = 4000.0 / 16000.0  # 0 mA lies 25 % of the span below 4 mA

# command_out tags: coil (bool) or holding-register enum (its IntEnum)
BOOL_COMMANDS = (
    tuple(f"HS-701{s}" for s in BF_SUFFIXES)
    + tuple(f"HS-711{s}" for s in HBS_SUFFIXES)
    + (
        "HS-810",
        "HS-806",
    )
)
ENUM_COMMANDS: dict[str, type[Enum]] = {
    **{f"HS-703{s}": ValveCmd for s in BF_SUFFIXES},  # values STOP 0, OPEN 1, CLOSE 2
    **{f"HS-713{s}": ValveCmd for s in HBS_SUFFIXES},
    "HS-740": ValveCmd,
    "HS-801": DieselMode,
    "HS-809": CrankRequest,
}


def sensor_fault_value(tag: str) -> float:
    """The engineering value an open 4-20 mA loop (raw 0) of ``tag`` reads as."""
    lo, hi = TRANSMITTERS[tag]
    return lo - RAW_LIVE_ZERO_FRAC * (hi - lo)


# ---------------------------------------------------------------------------------------------
# Faults
# ---------------------------------------------------------------------------------------------
def _spec(
    name: str,
    help: str,
    params: tuple[Param, ...] = (),
    scenarios: tuple[str, ...] = (),
    one_shot: bool = False,
) -> FaultSpec:
    return FaultSpec(
        name=name,
        help=help,
        params=params,
        scenarios=scenarios,
        station=STATION,
        extra={"one_shot": one_shot},
    )


_VALVE = Param("valve", str, "the motorised valve", choices=MOVS)
_PUMP = Param("pump", str, "the electric pump", choices=PUMPS)

FAULTS: tuple[FaultSpec, ...] = (
    _spec(
        "power_loss",
        "Loss of the 6 kV supply to EB-601: the UV relay trips every pump breaker, "
        "the diesel auto-starts after 10 s of dead bus (power returns with power_return or clear).",
        scenarios=(
            "F-P01",
            "F-P02",
            "F-P03",
            "F-P04",
            "F-P05",
            "F-P06",
            "F-P07",
            "F-P08",
            "F-P09",
            "F-P10",
            "F-P11",
            "F-P12",
            "F-P13",
            "F-P14",
            "F-P15",
            "F-P16",
        ),
    ),
    _spec(
        "power_return",
        "The 6 kV supply returns now (RESTORED_UNSTABLE, RESTORED_STABLE after 60 s "
        "at >= 95 %). One-shot: it ends power_loss and any power_flicker.",
        scenarios=("F-P12", "F-P13", "F-P14", "F-P15"),
        one_shot=True,
    ),
    _spec(
        "power_flicker",
        "Power returns for back_s, is lost again for lost_s, then returns for good.",
        params=(
            Param("back_s", float, "seconds the first return lasts", default=20.0),
            Param("lost_s", float, "seconds of the second loss", default=5.0),
        ),
        scenarios=("F-P13",),
    ),
    _spec(
        "diesel_fail_cranks",
        "The first n crank attempts (auto or manual) fail and attempt n+1 fires "
        "for sure; n >= 6 means the engine never starts.",
        params=(Param("n", int, "crank attempts that fail (>= 6: all)", default=6),),
        scenarios=("F-P01", "F-P02"),
    ),
    _spec(
        "battery_failed",
        "One starting battery is dead: held at `volts` (below 16 V it cannot crank).",
        params=(
            Param("battery", str, "battery set", default="A", choices=("A", "B")),
            Param("volts", float, "terminal voltage", default=12.0),
        ),
        scenarios=("F-P03",),
    ),
    _spec(
        "diesel_trip",
        "The running diesel shuts down after after_s seconds of running (overspeed "
        "lock-out or a low-fuel shutdown): YS-801 FAILED, a restart takes HS-809 or an OFF/AUTO reset.",
        params=(
            Param("after_s", float, "running seconds before the trip", default=300.0),
            Param("reason", str, "cause", default="overspeed", choices=("overspeed", "low_fuel")),
        ),
        scenarios=("F-P04",),
    ),
    _spec(
        "coolant_high",
        "Engine coolant TT-804 climbs towards 100 degC while the diesel runs "
        "(H alarm at 98; the engine keeps running).",
        scenarios=("F-P05",),
    ),
    _spec(
        "fuel_level",
        "Set the day-tank level LT-806 now (one-shot).",
        params=(Param("percent", float, "day-tank level, %"),),
        scenarios=("F-P06",),
        one_shot=True,
    ),
    _spec(
        "reserve_empty",
        "No emergency fuel in reserve: XS-806 false, HS-806 transfers nothing.",
        scenarios=("F-P06", "F-P07"),
    ),
    _spec(
        "refill_late",
        "The emergency fuel reserve becomes available only delay_s after injection.",
        params=(Param("delay_s", float, "seconds until fuel is available", default=10800.0),),
        scenarios=("F-P07",),
    ),
    _spec(
        "fuel_leak",
        "The day tank leaks at l_per_h.",
        params=(Param("l_per_h", float, "leak rate, L/h", default=20.0),),
        scenarios=("F-P06",),
    ),
    _spec(
        "mcc_dead",
        "Emergency MCC EB-602 dead (EI-602 = 0): every MOV freezes (hand-wheel only), "
        "battery chargers and the fuel transfer pump stop.",
        scenarios=("F-P11",),
    ),
    _spec(
        "valve_stuck",
        "The MOV's actuator is jammed: it does not move at all (not by hand-wheel either).",
        params=(_VALVE,),
        scenarios=("F-P08", "F-P09"),
    ),
    _spec(
        "valve_slow",
        "The MOV strokes `factor` times slower.",
        params=(_VALVE, Param("factor", float, "slow-down factor", default=3.0)),
    ),
    _spec("valve_no_feedback", "The MOV moves but its limit switches never make.", params=(_VALVE,)),
    _spec(
        "check_valve_failed",
        "The pump's check valve is stuck open: it passes 20 % of its Kv in "
        "reverse, so a stopped pump back-flows while its MOV is open.",
        params=(Param("pump", str, "pump whose check valve fails", choices=CHECK_VALVE_PUMPS),),
        scenarios=("F-P10", "F-P09"),
    ),
    _spec(
        "pump_fails_to_accelerate",
        "On its next start the pump hangs at low speed and keeps drawing "
        "6 x FLA (the motor protection trips it after locked_rotor_trip_s = 20 s).",
        params=(_PUMP,),
        scenarios=("F-P14",),
    ),
    _spec(
        "sensor_fault",
        "A 4-20 mA transmitter fails: it reads raw 0 (open loop), BAD quality.",
        params=(Param("tag", str, "analog input tag", choices=tuple(TRANSMITTERS)),),
        scenarios=("F-P16",),
    ),
    _spec(
        "suction_low",
        "Suction-well level LT-750 falls to level_m (below 1.5 m the PLC trips the "
        "electric pumps and refuses starts).",
        params=(Param("level_m", float, "suction-well level, m", default=1.2),),
    ),
)
_FAULTS_BY_NAME = {f.name: f for f in FAULTS}
# parameter that tells two injections of the same fault apart (else: one instance)
_INSTANCE_KEY = {
    "battery_failed": "battery",
    "valve_stuck": "valve",
    "valve_slow": "valve",
    "valve_no_feedback": "valve",
    "check_valve_failed": "pump",
    "pump_fails_to_accelerate": "pump",
    "sensor_fault": "tag",
}


@dataclass
class _FaultRecord:
    name: str
    params: dict[str, Any]
    t_injected: float
    state: dict[str, Any] = field(default_factory=dict)  # internal progress (counts, anchors)


# ---------------------------------------------------------------------------------------------
# Electric pump and its motor
# ---------------------------------------------------------------------------------------------
class ElectricPump:
    """One 6 kV motor + pump + check valve + outlet MOV, with its breaker and start record."""

    def __init__(
        self,
        tag: str,
        suffix: str,
        group: Header,
        curve: PumpCurve,
        fla: float,
        t_acc: float,
        tau_rd: float,
        branch: PumpBranch,
        mov: Valve,
    ) -> None:
        self.tag = tag  # "P-701A"
        self.suffix = suffix
        self.group = group
        self.curve = curve
        self.fla = fla
        self.t_acc = t_acc
        self.tau_rd = tau_rd
        self.branch = branch
        self.mov = mov
        self.cmd = False  # HS-70x as the PLC holds it
        self.breaker = False
        self.s = 0.0  # speed / rated
        self.driven = False  # breaker closed on a live bus
        self.accelerating = False
        self.t_accel = 0.0  # time spent accelerating in this start
        self.fails_to_accelerate = False
        self.rd_s0 = 0.0  # run-down start speed
        self.rd_t0 = 0.0  # run-down start time
        self.t_opened = -1e9  # breaker last opened (residual voltage)
        self.starts: list[float] = []
        self.loaded_run_s = 0.0
        self.last_loaded_t = -1e9
        self.current = 0.0
        self.shaft_kw = 0.0


# ---------------------------------------------------------------------------------------------
# Diesel set: controller, engine, batteries, fuel
# ---------------------------------------------------------------------------------------------
class DieselSet:
    """The diesel controller state machine and the engine it drives (3.12).

    Transitions (auto = mode AUTO with demand, or mode TEST):
      STANDBY     -> START_DELAY  on auto;  -> CRANKING on an accepted manual crank (HS-809)
      START_DELAY -> CRANKING after t_detect of continuous demand;  -> STANDBY if it goes
      CRANKING    -> RUNNING at crank disconnect (400 rpm);  -> RESTING after 15 s (auto)
                  -> FAILED with XA-801 after the 6th crank;  -> back where it came from (manual)
      RESTING     -> CRANKING on the other battery after 15 s
      RUNNING     -> COOLDOWN on a stop request (HS-810);  -> FAILED on a trip or fuel starvation
      COOLDOWN    -> STANDBY after 5 min at idle
      FAILED      -> STANDBY only by a mode write of OFF (reset);  -> CRANKING on a manual crank
    Mode OFF stops the engine at once and resets XA-801; MANUAL aborts an auto cycle.
    """

    def __init__(self, p: PumpParams, rng: np.random.Generator) -> None:
        self.p = p
        self.rng = rng
        self.mode = DieselMode.AUTO
        self.state = DieselState.STANDBY
        self.t_state = 0.0
        self.xa801 = False
        self.n = 0.0  # rpm
        self.cycle = 0
        self.battery = Battery.A
        self.manual = False
        self.manual_return = DieselState.STANDBY
        self.success = False
        self.t_fire = 0.0
        self.turning_s = 0.0
        self.fired = False
        self.attempts = 0
        self.volts = {Battery.A: p.battery_float_v, Battery.B: p.battery_float_v}
        self.failed_volts: dict[Battery, float] = {}
        self.tank_l = p.tank_l * p.tank_initial_pct / 100.0
        self.reserve_l = p.reserve_l
        self.coolant_c = p.coolant_standby_c
        self.engine_kw = 0.0
        self.fuel_l_h = 0.0
        self.running_s = 0.0  # seconds in RUNNING (for the diesel_trip fault)
        # fault hooks, set by the station
        self.fail_cranks: _FaultRecord | None = None
        self.trip: _FaultRecord | None = None
        self.coolant_high = False

    # -- helpers ------------------------------------------------------------------------
    @property
    def accel_rpm_s(self) -> float:
        return (self.p.rated_rpm - self.p.disconnect_rpm) / self.p.accel_400_to_rated_s

    @property
    def engine_on(self) -> bool:
        """Burning fuel (running, cooling down, or fired and running up to disconnect)."""
        return self.state in (DieselState.RUNNING, DieselState.COOLDOWN) or (
            self.state == DieselState.CRANKING and self.fired
        )

    def can_crank(self, b: Battery) -> bool:
        return self.volts[b] >= self.p.battery_min_crank_v

    def fuel_ok(self) -> bool:
        return self.tank_l > self.p.tank_l * self.p.starve_pct / 100.0

    def droop_rpm(self, pump_kw: float) -> float:
        """Governor speed at this pump load, 3 % droop from no load to rated load. Rounded to
        1e-4 rpm so that the speed/load loop lands on an exact fixed point (steady-state skip)."""
        p = self.p
        kw = min(pump_kw / p.eta_coupling, p.engine_rated_kw * 1.1)
        return round(p.rated_rpm * (1.0 + p.droop_frac * (1.0 - kw / p.engine_rated_kw)), 4)

    def _go(self, st: DieselState) -> None:
        if st not in DIESEL_TRANSITIONS[self.state]:
            raise SimError(f"diesel controller: no transition {self.state.name} -> {st.name}")
        self.state = st
        self.t_state = 0.0

    def _draw_attempt(self) -> bool:
        """One crank attempt's outcome: the RNG (p_s), unless diesel_fail_cranks decides it."""
        self.attempts += 1
        success = bool(self.rng.random() < self.p.p_start_success)
        self.t_fire = float(self.rng.uniform(self.p.t_fire_min_s, self.p.t_fire_max_s))
        rec = self.fail_cranks
        if rec is not None:
            n = int(rec.params["n"])
            used = int(rec.state.get("used", 0))
            rec.state["used"] = used + 1
            if n >= self.p.max_crank_cycles or used < n:
                return False
            if used == n:
                return True  # the sequence F x n, T of F-P02
        return success

    def begin_crank(self, battery: Battery, manual: bool) -> None:
        if manual:
            self.manual_return = (
                DieselState.FAILED if self.state == DieselState.FAILED else DieselState.STANDBY
            )
        self.manual = manual
        self.battery = battery
        self.success = self._draw_attempt()
        self.turning_s = 0.0
        self.fired = False
        self._go(DieselState.CRANKING)

    def set_mode(self, mode: DieselMode, demand: bool) -> None:
        old = self.mode
        self.mode = mode
        if mode == old:
            return
        if mode == DieselMode.OFF:
            self.xa801 = False  # OFF is the controller reset
            self.manual = False
            if self.state != DieselState.STANDBY:
                self._go(DieselState.STANDBY)
            return
        auto = mode == DieselMode.TEST or (mode == DieselMode.AUTO and demand)
        if not auto:
            if self.state in (DieselState.START_DELAY, DieselState.RESTING) or (
                self.state == DieselState.CRANKING and not self.manual
            ):
                self._go(DieselState.STANDBY)
            elif self.state == DieselState.RUNNING and old == DieselMode.TEST and mode == DieselMode.AUTO:
                self._go(DieselState.COOLDOWN)  # the end of a test run

    def stop_request(self) -> None:
        if self.state == DieselState.RUNNING:
            self._go(DieselState.COOLDOWN)
        elif self.state in (DieselState.START_DELAY, DieselState.CRANKING, DieselState.RESTING):
            self.manual = False
            self._go(DieselState.STANDBY)

    def manual_crank(self, req: CrankRequest) -> bool:
        """HS-809: accepted in STANDBY, START_DELAY or FAILED with the mode not OFF."""
        if self.mode == DieselMode.OFF or self.state not in (
            DieselState.STANDBY,
            DieselState.START_DELAY,
            DieselState.FAILED,
        ):
            return False
        self.begin_crank(Battery.A if req == CrankRequest.CRANK_A else Battery.B, manual=True)
        return True

    def _shutdown(self, failed: bool) -> None:
        self.manual = False
        self._go(DieselState.FAILED if failed else DieselState.STANDBY)

    # -- the scan ------------------------------------------------------------------------
    def step(self, dt: float, demand: bool, pump_kw: float, charger_ok: bool) -> None:
        p = self.p
        self.t_state += dt
        auto = self.mode == DieselMode.TEST or (self.mode == DieselMode.AUTO and demand)
        st = self.state
        cranking_on: Battery | None = None

        if st == DieselState.STANDBY:
            if auto:
                self._go(DieselState.START_DELAY)
                self.t_state = dt
        elif st == DieselState.START_DELAY:
            if not auto:
                self._go(DieselState.STANDBY)
            elif self.t_state >= p.t_detect_s - 1e-9:
                self.cycle = 1
                self.begin_crank(Battery.A, manual=False)
        elif st == DieselState.CRANKING:
            b = self.battery
            if self.can_crank(b):
                cranking_on = b  # the starter draws until crank disconnect
                self.turning_s += dt
                if (
                    not self.fired
                    and self.success
                    and self.fuel_ok()
                    and self.turning_s >= self.t_fire - 1e-9
                ):
                    self.fired = True
            if self.n >= p.disconnect_rpm:
                self.manual = False
                self.running_s = 0.0
                self._go(DieselState.RUNNING)
            elif self.t_state >= p.crank_s - 1e-9:
                if self.manual:
                    self.manual = False
                    self._go(self.manual_return)
                elif self.cycle >= p.max_crank_cycles:
                    self.xa801 = True
                    self._go(DieselState.FAILED)
                else:
                    self._go(DieselState.RESTING)
        elif st == DieselState.RESTING:
            if self.t_state >= p.rest_s - 1e-9:
                self.cycle += 1
                nxt = Battery.B if self.battery == Battery.A else Battery.A
                self.begin_crank(nxt, manual=False)
        elif st == DieselState.RUNNING:
            self.running_s += dt
            trip = self.trip
            if not self.fuel_ok():
                self._shutdown(failed=True)  # starved: the engine stops
            elif trip is not None and self.running_s >= float(trip.params["after_s"]) - 1e-9:
                if DieselTripReason(trip.params["reason"]) == DieselTripReason.OVERSPEED:
                    self.n = p.overspeed_rpm * 1.03  # the overspeed the trip saw
                self.trip = None  # spent: the station drops the fault record
                self._shutdown(failed=True)
        elif st == DieselState.COOLDOWN:
            if self.t_state >= p.cooldown_s - 1e-9 or not self.fuel_ok():
                self._shutdown(failed=False)

        self._engine(dt, pump_kw)
        self._batteries(dt, cranking_on, charger_ok)

    def _engine(self, dt: float, pump_kw: float) -> None:
        p = self.p
        st = self.state
        if st == DieselState.CRANKING:
            if self.fired:
                self.n = self.n + self.accel_rpm_s * dt
            elif self.can_crank(self.battery):
                self.n = p.crank_rpm
            else:
                self.n = max(0.0, self.n - p.decel_rpm_s * dt)
        elif st in (DieselState.RUNNING, DieselState.COOLDOWN):
            if st == DieselState.RUNNING:
                self.engine_kw = min(pump_kw / p.eta_coupling, p.engine_rated_kw * 1.1)
                target = self.droop_rpm(pump_kw)
            else:
                self.engine_kw = pump_kw / p.eta_coupling
                target = p.idle_rpm
            if self.n < target:
                self.n = min(target, self.n + self.accel_rpm_s * dt)
            else:
                self.n = max(target, self.n - p.decel_rpm_s * dt)
        else:
            self.n = max(0.0, self.n - p.decel_rpm_s * dt)
        if not self.engine_on:
            self.engine_kw = 0.0
        # fuel
        if self.engine_on:
            load = self.engine_kw / p.engine_rated_kw
            sfc = p.sfc_low_load_kg_kwh if load < p.low_load_frac else p.sfc_kg_kwh
            self.fuel_l_h = max(p.idle_fuel_l_h, sfc * self.engine_kw / p.fuel_density_kg_l)
        else:
            self.fuel_l_h = 0.0
        self.tank_l = max(0.0, self.tank_l - self.fuel_l_h * dt / 3600.0)
        # coolant: thermostat holds 85 degC while running; the jacket heater holds 40 in standby
        if self.engine_on:
            target_c = p.coolant_hot_c if self.coolant_high else p.coolant_run_c
            tau = p.coolant_tau_s
        else:
            target_c, tau = p.coolant_standby_c, p.coolant_standby_tau_s
        self.coolant_c += (target_c - self.coolant_c) * (1.0 - math.exp(-dt / tau))

    def _batteries(self, dt: float, cranking_on: Battery | None, charger_ok: bool) -> None:
        p = self.p
        rest_v = p.battery_float_v if charger_ok else p.battery_rest_v
        for b in (Battery.A, Battery.B):
            if b in self.failed_volts:
                self.volts[b] = self.failed_volts[b]
                continue
            v = self.volts[b]
            if b == cranking_on:
                v += (p.battery_crank_v - v) * (1.0 - math.exp(-dt / p.battery_crank_tau_s))
            elif v < rest_v:
                v = min(rest_v, v + p.battery_recover_v_s * dt)
            elif v > rest_v:
                v = max(rest_v, v - p.battery_recover_v_s * dt)
            self.volts[b] = v


# ---------------------------------------------------------------------------------------------
# The station
# ---------------------------------------------------------------------------------------------
class PumpStation:
    """Plant B model implementing the sim_plc station interface."""

    name = STATION
    FAULTS: ClassVar[tuple[FaultSpec, ...]] = FAULTS

    def __init__(self, params: PumpParams | None = None, seed: int = 0) -> None:
        p = self.params = params or PumpParams()
        self.time = 0.0
        seq = np.random.SeedSequence(seed)
        diesel_seq, noise_seq = seq.spawn(2)
        self._noise_rng = np.random.default_rng(noise_seq)
        self._faults: dict[tuple[str, str], _FaultRecord] = {}

        # -- valves: the outlet MOVs of the running pumps open, the rest closed (normal operation)
        running = ("P-701A", "P-701B", "P-711A")
        self.valves: dict[str, Valve] = {}
        for s in BF_SUFFIXES:
            self.valves[f"MOV-703{s}"] = self._mov(
                f"MOV-703{s}", p.mov_bf_stroke_s, p.mov_bf_manual_s, f"P-701{s}" in running
            )
        for s in HBS_SUFFIXES:
            self.valves[f"MOV-713{s}"] = self._mov(
                f"MOV-713{s}", p.mov_hbs_stroke_s, p.mov_hbs_manual_s, f"P-711{s}" in running
            )
        self.valves["MOV-740"] = self._mov("MOV-740", p.mov_740_stroke_s, p.mov_740_manual_s, False)
        self.mov_cmd: dict[str, ValveCmd] = {name: v.cmd for name, v in self.valves.items()}

        # -- pumps and the network
        bf_curve = PumpCurve(p.bf_h0_m, p.bf_q_m3h, p.bf_h_m, p.bf_eta, p.shutoff_power_frac)
        hbs_curve = PumpCurve(p.hbs_h0_m, p.hbs_q_m3h, p.hbs_h_m, p.hbs_eta, p.shutoff_power_frac)
        self.diesel_curve = PumpCurve(p.dp_h0_m, p.dp_q_m3h, p.dp_h_m, p.dp_eta, p.shutoff_power_frac)

        def branch(c: PumpCurve, kv_cv: float, kv_mov: float | None) -> PumpBranch:
            k_rev = p.reverse_k_factor * c.h_design / (c.q_design * c.q_design)
            return PumpBranch(c, kv_cv, kv_mov, p.cv_failed_reverse_frac, k_rev, p.lin_m)

        self.pumps: dict[str, ElectricPump] = {}
        for s in BF_SUFFIXES:
            self.pumps[f"P-701{s}"] = ElectricPump(
                f"P-701{s}",
                s,
                Header.BF,
                bf_curve,
                p.bf_fla_a,
                p.bf_t_acc_s,
                p.bf_tau_rd_s,
                branch(bf_curve, p.kv_cv_bf, p.kv_mov_bf),
                self.valves[f"MOV-703{s}"],
            )
        for s in HBS_SUFFIXES:
            self.pumps[f"P-711{s}"] = ElectricPump(
                f"P-711{s}",
                s,
                Header.HBS,
                hbs_curve,
                p.hbs_fla_a,
                p.hbs_t_acc_s,
                p.hbs_tau_rd_s,
                branch(hbs_curve, p.kv_cv_hbs, p.kv_mov_hbs),
                self.valves[f"MOV-713{s}"],
            )
        self.diesel_branch = branch(self.diesel_curve, p.kv_cv_diesel, None)
        self._pump_list = list(self.pumps.values())
        self.net = HeaderNetwork(
            [pp.branch for pp in self._pump_list if pp.group == Header.BF] + [self.diesel_branch],
            [pp.branch for pp in self._pump_list if pp.group == Header.HBS],
            Users(p.bf_static_m, p.bf_r),
            Users(p.hbs_static_m, p.hbs_r),
            p.bf_compliance_m3_per_m,
            p.hbs_compliance_m3_per_m,
            p.kv_mov_740,
            p.drain_tau_s,
            p.lin_m,
        )
        self.diesel = DieselSet(p, np.random.default_rng(diesel_seq))

        # -- electrics and station state
        self.grid_on = True
        self.t_grid_lost = -1e9
        self.ei601 = p.v_nominal_kv
        self.ei602 = p.mcc_nominal_v
        self.bus = BusState.LIVE
        self.uv_timer = 0.0
        self.stable_timer = 0.0
        self.suction_m = p.suction_level_m
        self.return_temp_c = p.bf_supply_temp_c + p.bf_design_rise_k
        self.damage_tuyere = 0.0
        self.damage_stave = 0.0
        self.damage_hbs = 0.0
        self.transfer = False  # HS-806
        self.stop_req = False  # HS-810
        self.crank_req = CrankRequest.NONE  # HS-809
        self.mode_cmd = DieselMode.AUTO  # HS-801
        # fault-derived
        self._mcc_dead = False
        self._reserve_empty = False
        self._fuel_leak_l_h = 0.0
        self._sensor_faults: set[str] = set()
        self._scheduled = False  # a fault with a timeline is active
        self._openings: dict[str, tuple[tuple[float, float], float]] = {}
        self._refill_late = False

        # -- normal operation: P-701A/B and P-711A running, C and 711B standby, MOV-740 closed
        for tag in running:
            pp = self.pumps[tag]
            pp.cmd = pp.breaker = pp.driven = True
            pp.s = 1.0
            pp.loaded_run_s = 1e9  # running for a long time: hot
            pp.last_loaded_t = 0.0
        self._update_branch_inputs()
        self.net.h_bf = 60.0
        self.net.h_hbs = 55.0
        self.net.settle()  # start at the steady normal operating point (PT-720 0.59, PT-730 0.54)
        self._post_hydraulics(0.0)

    def _mov(self, name: str, stroke: float, manual: float, is_open: bool) -> Valve:
        return Valve(
            name=name,
            t_open=stroke,
            t_close=stroke,
            t_dead=self.params.mov_dead_s,
            t_manual=manual,
            electric=True,
            characteristic=Characteristic.BUTTERFLY,
            x=1.0 if is_open else 0.0,
            cmd=ValveCmd.OPEN if is_open else ValveCmd.CLOSE,
        )

    # =========================================================================================
    # Interface
    # =========================================================================================
    def step(self, dt: float = 0.1) -> None:
        if dt <= 0.0:
            raise ValueError(f"dt must be positive, got {dt}")
        p = self.params
        self.time += dt
        t = self.time
        self._fault_schedules()
        self._scan_commands()

        # -- electrics -------------------------------------------------------------------
        n_starting = 0
        any_closed = False
        for pp in self._pump_list:
            if pp.breaker:
                any_closed = True
                if pp.accelerating:
                    n_starting += 1
        vn = p.v_nominal_kv
        if self.grid_on:
            volts = vn * max(0.0, 1.0 - p.start_dip_frac * n_starting)
        elif any_closed:
            volts = vn * math.exp(-(t - self.t_grid_lost) / p.tau_oc_s)  # the motors' residual voltage
        else:
            volts = 0.0
        self.ei601 = volts
        if volts < p.uv_trip_frac * vn and any_closed:
            self.uv_timer += dt
            if self.uv_timer >= p.uv_trip_delay_s - 1e-9:
                for pp in self._pump_list:
                    if pp.breaker:
                        self._trip(pp)
        else:
            self.uv_timer = 0.0
        self._bus_state(dt)
        self.ei602 = 0.0 if self._mcc_dead else p.mcc_nominal_v
        mcc_ok = self.ei602 >= p.mov_min_v

        # -- motors and valves -----------------------------------------------------------
        if self.suction_m < p.low_level_trip_m:
            for pp in self._pump_list:
                if pp.breaker:
                    self._trip(pp)
        for pp in self._pump_list:
            self._motor(pp, dt)
        for v in self.valves.values():
            v.supply_ok = mcc_ok
            if not _valve_at_rest(v):  # stepping a valve at rest changes nothing: save the time
                v.step(dt)

        # -- diesel ----------------------------------------------------------------------
        d = self.diesel
        d.step(dt, self._demand_now(), self._diesel_pump_kw(), mcc_ok)
        if self._scheduled and d.trip is None and self._records("diesel_trip"):
            self._drop("diesel_trip")  # it fired: a trip is a one-time event
            self._apply_faults()
        self._fuel(dt, mcc_ok)

        # -- hydraulics and what follows from the flows ------------------------------------
        self._update_branch_inputs()
        self.net.step(dt)
        self._post_hydraulics(dt)

    def step_many(self, n: int, dt: float = 0.1) -> None:
        """Advance ``n * dt`` seconds. While the plant is quiet the steps are merged into steps of
        up to ``quiet_dt_max``, never across a known timer deadline; otherwise ``dt`` steps."""
        t_end = self.time + n * dt
        while self.time < t_end - 1e-9:
            h = min(dt, t_end - self.time)
            if self._quiet():
                h = max(h, min(self.params.quiet_dt_max, t_end - self.time, self._next_deadline()))
            self.step(h)

    def run_for(self, seconds: float, dt: float = 0.1) -> None:
        """Convenience: ``step_many`` for a duration."""
        self.step_many(max(1, round(seconds / dt)), dt)

    def read_tags(self) -> dict[str, float | int | bool]:
        p = self.params
        d = self.diesel
        net = self.net
        tags: dict[str, float | int | bool] = {}
        tags["EI-601"] = self.ei601
        tags["XS-601"] = int(self.bus)
        tags["EI-602"] = self.ei602
        for pp in self._pump_list:
            num = "70" if pp.group == Header.BF else "71"
            tags[f"XS-{num}1{pp.suffix}"] = pp.breaker and pp.current > p.running_current_frac * pp.fla
            tags[f"II-{num}1{pp.suffix}"] = pp.current
            tags[f"PT-{num}2{pp.suffix}"] = m_to_mpa(pp.branch.h_discharge)
            tags[f"ZSO-{num}3{pp.suffix}"] = pp.mov.zso
            tags[f"ZSC-{num}3{pp.suffix}"] = pp.mov.zsc
            tags[f"HS-{num}1{pp.suffix}"] = pp.cmd
            tags[f"HS-{num}3{pp.suffix}"] = self.mov_cmd[pp.mov.name].value
        tags["PT-720"] = m_to_mpa(net.h_bf)
        tags["FT-721"] = net.q_bf_users
        tags["TT-722"] = self.return_temp_c
        tags["PT-730"] = m_to_mpa(net.h_hbs)
        tags["FT-731"] = net.q_hbs_users
        v740 = self.valves["MOV-740"]
        tags["ZSO-740"] = v740.zso
        tags["ZSC-740"] = v740.zsc
        tags["HS-740"] = self.mov_cmd["MOV-740"].value
        tags["LT-750"] = self.suction_m
        tags["XS-801"] = int(d.mode)
        tags["HS-801"] = int(self.mode_cmd)
        tags["YS-801"] = int(d.state)
        tags["XA-801"] = d.xa801
        tags["ST-802"] = d.n
        tags["PT-803"] = p.lube_bar_rated * (d.n / p.rated_rpm) ** 2
        tags["TT-804"] = d.coolant_c
        tags["PT-805"] = m_to_mpa(self.diesel_branch.h_discharge)
        tags["LT-806"] = 100.0 * d.tank_l / p.tank_l
        tags["XS-806"] = self._reserve_available()
        tags["HS-806"] = self.transfer
        tags["EI-807A"] = d.volts[Battery.A]
        tags["EI-807B"] = d.volts[Battery.B]
        tags["FQ-808"] = d.fuel_l_h
        tags["HS-809"] = int(self.crank_req)
        tags["HS-810"] = self.stop_req
        tags["UY-791"] = max(self.damage_tuyere, self.damage_stave)
        tags["UY-792"] = self.damage_hbs
        tags["UY-790"] = max(self.damage_tuyere, self.damage_stave, self.damage_hbs)
        for tag in self._sensor_faults:
            tags[tag] = sensor_fault_value(tag)
        tags[HEARTBEAT_TAG] = heartbeat_count(self.time)  # the PLC's I/O heartbeat (io list: heartbeat)
        if p.noise_frac > 0.0:
            for tag, (lo, hi) in TRANSMITTERS.items():
                if tag not in self._sensor_faults:
                    tags[tag] = float(tags[tag]) + float(
                        self._noise_rng.normal(0.0, p.noise_frac * (hi - lo))
                    )
        return tags

    def write(self, tag: str, value: float | int | bool | str) -> None:
        """A client writes a command_out tag: coils take bool (or 0/1), enum registers their index
        (or, for convenience, the state name). Takes effect at the next scan (``step``)."""
        if tag in BOOL_COMMANDS:
            if isinstance(value, bool):
                b = value
            elif isinstance(value, int | float) and value in (0, 1):
                b = bool(value)
            else:
                raise BadWriteValue(f"{tag}: {value!r} is not a bool")
            if tag == "HS-810":
                self.stop_req = b
            elif tag == "HS-806":
                self.transfer = b
            else:
                self._pump_for_hs(tag).cmd = b
            return
        enum = ENUM_COMMANDS.get(tag)
        if enum is None:
            raise UnknownTag(f"{tag} is not a command_out of {STATION}")
        state: Enum
        try:
            if isinstance(value, str):
                state = enum[value]
            elif isinstance(value, bool) or not float(value).is_integer():
                raise ValueError(value)
            else:
                state = enum(int(value))
        except (KeyError, ValueError) as exc:
            raise BadWriteValue(f"{tag}: {value!r} is not one of {[s.name for s in enum]}") from exc
        if tag == "HS-801":
            self.mode_cmd = DieselMode(state.value)
        elif tag == "HS-809":
            self.crank_req = CrankRequest(state.value)
        else:
            self.mov_cmd[self._valve_for_hs(tag)] = ValveCmd(state.value)

    def inject(self, fault: str, **params: Any) -> None:
        spec = _FAULTS_BY_NAME.get(fault)
        if spec is None:
            raise UnknownFault(f"{STATION} has no fault {fault!r} (known: {', '.join(_FAULTS_BY_NAME)})")
        """Inject a fault (params are checked and defaulted by its FaultSpec). ``power_return`` and
        ``fuel_level`` act once and are not listed; power_flicker, refill_late and diesel_trip end
        themselves when their timeline is over; the others stay until ``clear``. Injecting a fault
        again replaces it (per valve / pump / tag / battery where the fault names one)."""
        params = spec.coerce(params)
        if fault == "power_return":
            self._drop("power_loss")
            self._drop("power_flicker")
        elif fault == "fuel_level":
            self.diesel.tank_l = self.params.tank_l * min(100.0, max(0.0, float(params["percent"]))) / 100.0
        else:
            if fault == "power_loss":
                self._drop("power_flicker")
            elif fault == "power_flicker":
                self._drop("power_loss")
            key = str(params.get(_INSTANCE_KEY.get(fault, ""), ""))
            self._faults[(fault, key)] = _FaultRecord(fault, params, self.time)
        self._apply_faults()

    def clear(self, fault: str | None = None) -> None:
        """Remove every instance of one fault kind (or all faults) and return to healthy behaviour:
        power back, MCC back, valves and check valves healthy, a failed battery replaced by a charged one."""
        if fault is None:
            self._faults.clear()
        else:
            if fault not in _FAULTS_BY_NAME:
                raise UnknownFault(f"{STATION} has no fault {fault!r}")
            self._drop(fault)
        self._apply_faults()

    def active_faults(self) -> list[dict[str, Any]]:
        return [{"fault": r.name, **r.params} for r in self._faults.values()]

    def hand_wheel(self, valve: str, cmd: ValveCmd) -> None:
        """A field crew winds ``valve`` by hand (two persons, T_manual full stroke); STOP ends it.

        Not a fault and not a PLC signal: the scenario runner or a test plays the field team
        of the procedures' manual fallbacks (P4, P6 on_fail). A jammed actuator (valve_stuck)
        does not move by hand either."""
        if valve not in self.valves:
            raise UnknownTag(f"{valve} is not a valve of {STATION}")
        self.valves[valve].manual_cmd = cmd

    # =========================================================================================
    # Faults
    # =========================================================================================
    def _drop(self, fault: str) -> None:
        for key in [k for k in self._faults if k[0] == fault]:
            del self._faults[key]

    def _records(self, fault: str) -> list[_FaultRecord]:
        return [r for (name, _), r in self._faults.items() if name == fault]

    def _apply_faults(self) -> None:
        """Reset every fault hook to healthy, then apply the active records."""
        p = self.params
        for v in self.valves.values():
            v.fault = ValveFault.NONE
            v.slow_factor = 1.0
        for rec in self._records("valve_stuck"):
            self.valves[rec.params["valve"]].fault = ValveFault.STUCK
        for rec in self._records("valve_slow"):
            v = self.valves[rec.params["valve"]]
            v.fault = ValveFault.SLOW
            v.slow_factor = max(1.0, float(rec.params["factor"]))
        for rec in self._records("valve_no_feedback"):
            self.valves[rec.params["valve"]].fault = ValveFault.NO_FEEDBACK
        failed_cv = {r.params["pump"] for r in self._records("check_valve_failed")}
        for pp in self._pump_list:
            pp.branch.cv_failed = pp.tag in failed_cv
            pp.fails_to_accelerate = False
        self.diesel_branch.cv_failed = "P-801" in failed_cv
        for rec in self._records("pump_fails_to_accelerate"):
            self.pumps[rec.params["pump"]].fails_to_accelerate = True
        self._sensor_faults = {r.params["tag"] for r in self._records("sensor_fault")}
        d = self.diesel
        for b in list(d.failed_volts):  # a battery back in service is a fresh, charged one
            d.volts[b] = p.battery_float_v
        d.failed_volts = {
            Battery(r.params["battery"]): float(r.params["volts"]) for r in self._records("battery_failed")
        }
        for b, held in d.failed_volts.items():
            d.volts[b] = held
        recs = self._records("diesel_fail_cranks")
        d.fail_cranks = recs[0] if recs else None
        recs = self._records("diesel_trip")
        d.trip = recs[0] if recs else None
        if d.trip is not None and "anchor" not in d.trip.state:
            d.trip.state["anchor"] = True
            d.running_s = 0.0  # running seconds count from the injection
        d.coolant_high = bool(self._records("coolant_high"))
        self._mcc_dead = bool(self._records("mcc_dead"))
        self.ei602 = 0.0 if self._mcc_dead else p.mcc_nominal_v
        self._reserve_empty = bool(self._records("reserve_empty"))
        self._fuel_leak_l_h = sum(float(r.params["l_per_h"]) for r in self._records("fuel_leak"))
        recs = self._records("suction_low")
        self.suction_m = float(recs[0].params["level_m"]) if recs else p.suction_level_m
        self._scheduled = any(
            name in ("power_flicker", "refill_late", "diesel_trip") for name, _ in self._faults
        )
        self._refill_late = bool(self._records("refill_late"))
        self._update_grid()

    def _update_grid(self) -> None:
        on = not self._records("power_loss")
        for rec in self._records("power_flicker"):
            el = self.time - rec.t_injected
            back, lost = float(rec.params["back_s"]), float(rec.params["lost_s"])
            on = el < back - 1e-9 or el >= back + lost - 1e-9
        if self.grid_on and not on:
            self.t_grid_lost = self.time
        self.grid_on = on

    def _fault_schedules(self) -> None:
        """Self-ending faults: the flicker's timeline, the late reserve, a diesel trip that fired."""
        if not self._scheduled:
            return
        changed = False
        for rec in self._records("power_flicker"):
            if self.time - rec.t_injected >= float(rec.params["back_s"]) + float(rec.params["lost_s"]) - 1e-9:
                self._drop("power_flicker")
                changed = True
        for rec in self._records("refill_late"):
            if self.time - rec.t_injected >= float(rec.params["delay_s"]) - 1e-9:
                self._drop("refill_late")
                changed = True
        if changed:
            self._apply_faults()
        elif self._records("power_flicker"):
            self._update_grid()

    def _measured(self, tag: str, value: float) -> float:
        return sensor_fault_value(tag) if tag in self._sensor_faults else value

    def _reserve_available(self) -> bool:
        return self.diesel.reserve_l > 0.0 and not self._reserve_empty and not self._refill_late

    # =========================================================================================
    # PLC scan
    # =========================================================================================
    def _pump_for_hs(self, tag: str) -> ElectricPump:
        # HS-701A -> P-701A, HS-711B -> P-711B
        return self.pumps["P-" + tag[3:]]

    @staticmethod
    def _valve_for_hs(tag: str) -> str:
        return "MOV-" + tag[3:]  # HS-703A -> MOV-703A, HS-740 -> MOV-740

    def _scan_commands(self) -> None:
        t = self.time
        for pp in self._pump_list:
            if pp.cmd and not pp.breaker:
                if self._start_permitted(pp):
                    pp.breaker = True
                    pp.accelerating = True
                    pp.t_accel = 0.0
                    pp.starts.append(t)
                else:
                    pp.cmd = False  # the PLC refuses the start: the coil reads back 0
            elif not pp.cmd and pp.breaker:
                self._open_breaker(pp)
        for name, cmd in self.mov_cmd.items():
            v = self.valves[name]
            if v.cmd != cmd:  # only on a change: Valve.command restarts the dead time
                v.command(cmd)
        d = self.diesel
        if self.mode_cmd != d.mode:
            d.set_mode(self.mode_cmd, self._demand_now())
        if self.stop_req:
            d.stop_request()
            self.stop_req = False  # accepted: the PLC clears the request
        if self.crank_req != CrankRequest.NONE:
            d.manual_crank(self.crank_req)
            self.crank_req = CrankRequest.NONE  # one crank per write, whether accepted or refused

    def _demand_now(self) -> bool:
        """The auto-start condition as the PLC sees it: bus dead, or PT-720 (as measured: a failed
        transmitter reads low, which the PLC takes as demand, failing safe) below 0.45 MPa."""
        return (
            self.bus == BusState.DEAD
            or self._measured("PT-720", m_to_mpa(self.net.h_bf)) < self.params.demand_pt720_mpa
        )

    def _start_permitted(self, pp: ElectricPump) -> bool:
        p = self.params
        t = self.time
        if not self.grid_on or self.ei601 < p.uv_trip_frac * p.v_nominal_kv:
            return False
        if not pp.mov.zsc:  # start against a closed valve only
            return False
        if self.suction_m < p.low_level_trip_m:
            return False
        if math.exp(-(t - pp.t_opened) / p.tau_oc_s) > p.reclose_residual_frac:
            return False  # residual voltage still up: out-of-phase reclosing
        recent = [s for s in pp.starts if t - s < p.start_window_s]
        pp.starts = recent
        if t - pp.last_loaded_t >= p.start_window_s:
            pp.loaded_run_s = 0.0
        hot = pp.loaded_run_s >= p.hot_run_s
        limit = p.starts_hot if hot else p.starts_cold
        return len(recent) < limit

    def start_blocked(self, pump: str) -> bool:
        """True while the start-count limit blocks ``pump`` (for HMI/diagnostics and tests)."""
        pp = self.pumps[pump]
        p = self.params
        recent = [s for s in pp.starts if self.time - s < p.start_window_s]
        hot = pp.loaded_run_s >= p.hot_run_s and self.time - pp.last_loaded_t < p.start_window_s
        return len(recent) >= (p.starts_hot if hot else p.starts_cold)

    def _open_breaker(self, pp: ElectricPump) -> None:
        pp.breaker = False
        pp.t_opened = self.time
        self._lose_drive(pp, self.time)

    def _trip(self, pp: ElectricPump) -> None:
        self._open_breaker(pp)
        pp.cmd = False  # the PLC resets the run command when the breaker trips

    def _bus_state(self, dt: float) -> None:
        p = self.params
        vn = p.v_nominal_kv
        if not self.grid_on:
            if self.ei601 < p.uv_trip_frac * vn:
                self.bus = BusState.DEAD
            self.stable_timer = 0.0
            return
        if self.bus == BusState.DEAD:
            self.bus = BusState.RESTORED_UNSTABLE
            self.stable_timer = 0.0
        if self.bus == BusState.RESTORED_UNSTABLE:
            if self.ei601 >= p.stable_frac * vn:
                self.stable_timer += dt
                if self.stable_timer >= p.stable_s - 1e-9:
                    self.bus = BusState.RESTORED_STABLE
            else:
                self.stable_timer = 0.0

    # =========================================================================================
    # Physics
    # =========================================================================================
    def _motor(self, pp: ElectricPump, dt: float) -> None:
        p = self.params
        t = self.time
        if pp.breaker and self.grid_on:
            if not pp.driven:  # just started, or re-energised while running down
                pp.driven = True
                pp.accelerating = True
                pp.t_accel = 0.0
            top = p.stall_speed_frac if pp.fails_to_accelerate else 1.0
            if pp.s < top:
                pp.s = min(top, pp.s + dt / pp.t_acc)
            if pp.accelerating:
                pp.t_accel += dt
                if pp.s >= 1.0:
                    pp.accelerating = False
                elif pp.t_accel >= p.locked_rotor_trip_s - 1e-9:
                    self._trip(pp)  # motor protection: stalled start
            else:
                pp.loaded_run_s += dt
                pp.last_loaded_t = t
            return
        if pp.driven:  # supply lost with the breaker still closed
            self._lose_drive(pp, t - dt)
        if pp.s > 0.0:
            pp.s = pp.rd_s0 / (1.0 + (t - pp.rd_t0) / pp.tau_rd)
            if pp.s < p.rundown_stop_frac:  # n0/(1 + t/tau) never reaches 0; a real pump stops
                pp.s = 0.0

    def _lose_drive(self, pp: ElectricPump, t0: float) -> None:
        """Anchor the run-down n = n0 / (1 + (t - t0) / tau_rd)."""
        if pp.driven:
            pp.driven = False
            pp.rd_s0 = pp.s
            pp.rd_t0 = t0
        pp.accelerating = False

    def _update_branch_inputs(self) -> None:
        for pp in self._pump_list:
            pp.branch.s = pp.s
            pp.branch.opening = self._opening(pp.mov)
        self.diesel_branch.s = self.diesel.n / self.params.rated_rpm
        self.net.x_opening = self._opening(self.valves["MOV-740"])

    def _opening(self, v: Valve) -> float:
        """``v.opening``, recomputed only when the valve moved (it costs a cosine)."""
        key = (v.x, v.passing)
        hit = self._openings.get(v.name)
        if hit is not None and hit[0] == key:
            return hit[1]
        g = v.opening
        self._openings[v.name] = (key, g)
        return g

    def _diesel_pump_kw(self) -> float:
        b = self.diesel_branch
        return self.diesel_curve.shaft_kw(b.q, b.h_discharge, b.s)

    def _post_hydraulics(self, dt: float) -> None:
        p = self.params
        for pp in self._pump_list:
            b = pp.branch
            pp.shaft_kw = pp.curve.shaft_kw(b.q, b.h_discharge, pp.s) if pp.breaker else 0.0
            if pp.breaker and self.grid_on:
                if pp.accelerating:
                    pp.current = p.inrush_mult * pp.fla
                else:
                    frac = pp.shaft_kw / pp.curve.design_kw
                    pp.current = pp.fla * (p.no_load_current_frac + (1.0 - p.no_load_current_frac) * frac)
            else:
                pp.current = 0.0
        if dt <= 0.0:
            return
        net = self.net
        # BF return temperature: fixed heat load, so the rise grows as the flow falls
        q = max(net.q_bf_users, 1.0)
        target = min(80.0, p.bf_supply_temp_c + p.bf_design_rise_k * p.bf_q_design_m3h / q)
        self.return_temp_c += (target - self.return_temp_c) * (1.0 - math.exp(-dt / p.return_temp_tau_s))
        # consequence model 3.13
        phi_bf = net.q_bf_users / p.bf_q_design_m3h
        phi_hbs = net.q_hbs_users / p.hbs_q_design_m3h
        if phi_bf < p.damage_phi:
            x = (p.damage_phi - phi_bf) / p.damage_phi * dt
            self.damage_tuyere = min(p.damage_cap, self.damage_tuyere + x / p.t_damage_tuyere_s)
            self.damage_stave = min(p.damage_cap, self.damage_stave + x / p.t_damage_stave_s)
        if phi_hbs < p.damage_phi:
            x = (p.damage_phi - phi_hbs) / p.damage_phi * dt
            self.damage_hbs = min(p.damage_cap, self.damage_hbs + x / p.t_damage_hbs_s)

    def _fuel(self, dt: float, mcc_ok: bool) -> None:
        p = self.params
        d = self.diesel
        d.tank_l = max(0.0, d.tank_l - self._fuel_leak_l_h * dt / 3600.0)
        if self.transfer:
            if d.tank_l >= p.tank_l - 1e-6:
                self.transfer = False  # high level: the transfer stops and the PLC clears HS-806
            elif mcc_ok and self._reserve_available():
                moved = min(p.transfer_l_h * dt / 3600.0, p.tank_l - d.tank_l, d.reserve_l)
                d.tank_l += moved
                d.reserve_l -= moved

    # =========================================================================================
    # Quiet stepping
    # =========================================================================================
    def _quiet(self) -> bool:
        if self.uv_timer > 0.0:
            return False
        for pp in self._pump_list:
            if pp.breaker:
                if pp.accelerating or pp.s != 1.0 or not self.grid_on:
                    return False
            elif pp.s != 0.0:
                return False
        for v in self.valves.values():
            if not (
                _valve_at_rest(v)
                or v.fault == ValveFault.STUCK
                or (v.electric and not v.supply_ok and v.manual_cmd == ValveCmd.STOP)
            ):
                return False
        if not self.net.steady:
            return False
        d = self.diesel
        st = d.state
        if st in (DieselState.CRANKING, DieselState.RESTING):
            return False
        for b, volts in d.volts.items():
            if b not in d.failed_volts and volts not in (
                self.params.battery_float_v,
                self.params.battery_rest_v,
            ):
                return False
        if st == DieselState.RUNNING:
            return abs(d.n - d.droop_rpm(self._diesel_pump_kw())) < 1e-6
        if st == DieselState.COOLDOWN:
            return d.n == self.params.idle_rpm
        return d.n == 0.0

    def _next_deadline(self) -> float:
        """Seconds to the nearest known timer deadline (inf when none)."""
        p = self.params
        gaps = [math.inf]
        if self.bus == BusState.RESTORED_UNSTABLE:
            gaps.append(p.stable_s - self.stable_timer)
        d = self.diesel
        if d.state == DieselState.START_DELAY:
            gaps.append(p.t_detect_s - d.t_state)
        elif d.state == DieselState.COOLDOWN:
            gaps.append(p.cooldown_s - d.t_state)
        elif d.state == DieselState.RUNNING and d.trip is not None:
            gaps.append(float(d.trip.params["after_s"]) - d.running_s)
        for rec in self._records("power_flicker"):
            el = self.time - rec.t_injected
            back, lost = float(rec.params["back_s"]), float(rec.params["lost_s"])
            gaps.extend(g for g in (back - el, back + lost - el) if g > 0.0)
        for rec in self._records("refill_late"):
            gaps.append(float(rec.params["delay_s"]) - (self.time - rec.t_injected))
        return max(1e-3, min(gaps))


def _valve_at_rest(v: Valve) -> bool:
    """The valve sits at the end its (latest) command drives it to and no hand-wheel turns it.

    ``Valve.command`` sets ``cmd`` at once (the dead time only delays the motion), so a valve
    whose position already matches ``cmd`` cannot move, whatever is still pending. STOP never
    counts as at rest: after a STOP the valve may still travel for its dead time."""
    if v.manual_cmd != ValveCmd.STOP:
        return False
    return (v.cmd == ValveCmd.OPEN and v.x >= 1.0) or (v.cmd == ValveCmd.CLOSE and v.x <= 0.0)


def load_station(seed: int = 0) -> PumpStation:
    return PumpStation(seed=seed)
