"""Pure-model tests of the pump station (Plant B): no servers, no wall clock.

Sanity values are plant-reference.md section 6 (within +-10 %); fault effects are section 5.
Fixtures live in this module on purpose (tests/sim_plc is shared with the gas-station tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim_plc.errors import BadFaultParameter, UnknownFault, UnknownTag
from sim_plc.plant import HEARTBEAT_TAG
from sim_plc.pump_station import (
    COMPUTED,
    TRANSMITTERS,
    BadWriteValue,
    Battery,
    BusState,
    DieselMode,
    DieselState,
    PumpParams,
    PumpStation,
    load_station,
    sensor_fault_value,
)
from sim_plc.valves import ValveCmd

IO_LIST = Path(__file__).resolve().parents[2] / "io" / "pump_station.yaml"
FLA_BF = 52.0
FLA_HBS = 22.0

Tags = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# helpers and fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def io_list() -> dict[str, Any]:
    with IO_LIST.open() as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


@pytest.fixture(scope="module")
def signals(io_list: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["tag"]: s for s in io_list["signals"]}


@pytest.fixture
def st() -> PumpStation:
    return PumpStation(seed=7)


def sure_start() -> PumpParams:
    """Every crank attempt that can fire does (p_s = 1): deterministic diesel timing."""
    return PumpParams(p_start_success=1.0)


def within(value: float, expected: float, rel: float = 0.10) -> bool:
    return abs(value - expected) <= rel * abs(expected)


def run_until(st: PumpStation, pred: Callable[[Tags], bool], timeout: float, dt: float = 0.1) -> float:
    """Step until ``pred(tags)`` holds; return the plant time it first held. Fails at the timeout."""
    t_end = st.time + timeout
    while st.time < t_end - 1e-9:
        st.step(dt)
        if pred(st.read_tags()):
            return st.time
    raise AssertionError(f"condition not reached within {timeout} s (t = {st.time:.1f})")


def diesel_running_after_loss(params: PumpParams | None = None, seed: int = 7) -> PumpStation:
    """Power lost at t = 0, the diesel started on its first attempt and at its operating point."""
    st = PumpStation(params or sure_start(), seed=seed)
    st.inject("power_loss")
    st.run_for(60.0)
    assert st.read_tags()["YS-801"] == DieselState.RUNNING
    return st


def cranking_battery(st: PumpStation) -> Battery:
    return st.diesel.battery


def close_dead_pump_movs(st: PumpStation) -> None:
    for tag in ("HS-703A", "HS-703B", "HS-713A"):
        st.write(tag, ValveCmd.CLOSE.value)
    st.run_for(95.0)


# ---------------------------------------------------------------------------------------------
# the I/O list and the tag interface
# ---------------------------------------------------------------------------------------------
def test_every_io_list_tag_is_read_and_nothing_else(
    st: PumpStation, signals: dict[str, dict[str, Any]]
) -> None:
    tags = st.read_tags()
    assert set(tags) == set(signals)


def test_tag_values_have_the_type_of_their_kind(st: PumpStation, signals: dict[str, dict[str, Any]]) -> None:
    tags = st.read_tags()
    for tag, sig in signals.items():
        v = tags[tag]
        kind = sig["kind"]
        if kind == "analog_in":
            assert isinstance(v, float), tag
        elif kind == "digital_in":
            assert isinstance(v, bool), tag
        elif kind == "state_enum":
            assert isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(sig["states"]), tag
        else:
            assert kind == "command_out", tag
            if sig["type"] == "bool":
                assert isinstance(v, bool), tag
            else:
                assert isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(sig["states"]), tag


def test_initial_state_matches_the_io_list_normal_values(
    st: PumpStation, signals: dict[str, dict[str, Any]]
) -> None:
    tags = st.read_tags()
    for tag, sig in signals.items():
        normal = sig["normal"]
        if sig["kind"] == "analog_in":
            lo, hi = sig["range"]
            assert abs(tags[tag] - normal) <= 0.02 * (hi - lo), (tag, tags[tag], normal)
        elif sig["kind"] == "state_enum" or sig.get("type") == "enum":
            assert tags[tag] == sig["states"].index(normal), tag
        else:
            assert tags[tag] == normal, tag


def test_enum_state_lists_match_the_model(signals: dict[str, dict[str, Any]]) -> None:
    assert signals["XS-601"]["states"] == [s.name for s in BusState]
    assert signals["XS-801"]["states"] == [s.name for s in DieselMode]
    assert signals["HS-801"]["states"] == [s.name for s in DieselMode]
    assert signals["YS-801"]["states"] == [s.name for s in DieselState]
    assert signals["HS-809"]["states"] == ["NONE", "CRANK_A", "CRANK_B"]
    for tag in ("HS-703A", "HS-703B", "HS-703C", "HS-713A", "HS-713B", "HS-740"):
        assert signals[tag]["states"] == [c.name for c in ValveCmd]


def test_io_list_addresses_and_blocks(io_list: dict[str, Any]) -> None:
    assert io_list["station"] == "pump_station"
    assert io_list["modbus"]["unit_id"] == 2
    blocks = {
        "coil": (1, 9999),
        "discrete_input": (10001, 19999),
        "input_register": (30001, 39999),
        "holding_register": (40001, 49999),
    }
    seen: set[int] = set()
    for sig in io_list["signals"]:
        table, addr = sig["modbus"]["table"], sig["modbus"]["address"]
        lo, hi = blocks[table]
        assert lo <= addr <= hi, sig["tag"]
        assert addr not in seen, sig["tag"]
        seen.add(addr)
        kind = sig["kind"]
        expected = {
            "analog_in": "input_register",
            "state_enum": "input_register",
            "digital_in": "discrete_input",
        }
        if kind in expected:
            assert table == expected[kind], sig["tag"]
        else:
            assert table == ("coil" if sig["type"] == "bool" else "holding_register"), sig["tag"]
    # each table numbered from its first address with no gaps
    for table, (lo, _) in blocks.items():
        addrs = sorted(s["modbus"]["address"] for s in io_list["signals"] if s["modbus"]["table"] == table)
        assert addrs == list(range(lo, lo + len(addrs))), table


def test_mov_feedback_deadlines(signals: dict[str, dict[str, Any]]) -> None:
    for tag, within_s in (("HS-703A", 91.0), ("HS-703C", 91.0), ("HS-713B", 68.5), ("HS-740", 91.0)):
        fb = signals[tag]["feedback"]
        assert fb["within_s"] == within_s
        assert fb["OPEN"] == {"tag": "ZSO-" + tag[3:], "value": True}
        assert fb["CLOSE"] == {"tag": "ZSC-" + tag[3:], "value": True}


def test_analog_scaling_and_sensor_fault_value_match_the_io_list(signals: dict[str, dict[str, Any]]) -> None:
    # the heartbeat is the PLC's own counter, neither a transmitter nor a plant computation (sim_plc.plant)
    analogs = {t for t, s in signals.items() if s["kind"] == "analog_in" and t != HEARTBEAT_TAG}
    assert analogs == set(TRANSMITTERS) | set(COMPUTED)
    for tag, (lo, hi) in TRANSMITTERS.items():
        sig = signals[tag]
        assert sig["range"] == [lo, hi], tag
        assert sig["raw"] == [4000, 20000] and sig["fault_raw"] == [3600, 21000], tag
        r0, r1 = sig["raw"]
        at_raw_zero = lo + (0 - r0) * (hi - lo) / (r1 - r0)
        assert sensor_fault_value(tag) == pytest.approx(at_raw_zero), tag
    for tag, (lo, hi) in COMPUTED.items():
        assert signals[tag]["range"] == [lo, hi] and signals[tag]["raw"] == [0, 65535], tag
        assert "fault_raw" not in signals[tag], tag


def test_write_accepts_every_command_out_and_nothing_else(
    st: PumpStation, signals: dict[str, dict[str, Any]]
) -> None:
    for tag, sig in signals.items():
        if sig["kind"] == "command_out":
            value = sig["normal"] if sig["type"] == "bool" else sig["states"].index(sig["normal"])
            st.write(tag, value)
        else:
            with pytest.raises(UnknownTag):
                st.write(tag, 0)
    with pytest.raises(UnknownTag):
        st.write("HS-999", True)
    with pytest.raises(BadWriteValue):
        st.write("HS-740", 3)
    with pytest.raises(BadWriteValue):
        st.write("HS-701C", 2)
    st.step(0.1)
    assert st.read_tags()["XS-701A"] is True  # writing the normal values changed nothing


# ---------------------------------------------------------------------------------------------
# section 6 sanity values
# ---------------------------------------------------------------------------------------------
def test_normal_operating_point_is_settled_at_t0(st: PumpStation) -> None:
    for _ in range(2):
        tags = st.read_tags()
        assert within(tags["PT-720"], 0.59)
        assert within(tags["PT-730"], 0.54)
        assert within(tags["FT-721"], 4000.0)
        assert within(tags["FT-731"], 800.0)
        assert within(tags["II-701A"], FLA_BF) and within(tags["II-711A"], FLA_HBS)
        assert tags["XS-701A"] and tags["XS-701B"] and not tags["XS-701C"]
        assert tags["XS-711A"] and not tags["XS-711B"]
        assert tags["YS-801"] == DieselState.STANDBY and tags["XS-801"] == DieselMode.AUTO
        assert tags["ZSC-740"] and not tags["ZSO-740"]
        st.run_for(120.0)
    assert abs(st.read_tags()["PT-720"] - tags["PT-720"]) < 1e-6  # nothing drifts: it was settled


def test_uv_relay_trips_every_pump_breaker_within_0_5_to_1_s(st: PumpStation) -> None:
    st.inject("power_loss")
    running = ("701A", "701B", "711A")
    st.step(0.01)
    assert not any(st.read_tags()[f"XS-{p}"] for p in running)  # no current: not "running" at once
    # the breakers trip later (the PLC then resets the run commands to 0)
    t_trip = run_until(st, lambda t: not any(t[f"HS-{p}"] for p in running), 2.0, dt=0.01)
    assert 0.5 <= t_trip <= 1.0
    assert not any(pp.breaker for pp in st.pumps.values())
    st.step(0.01)
    tags = st.read_tags()
    assert tags["EI-601"] == 0.0 and tags["XS-601"] == BusState.DEAD
    assert tags["EI-602"] == 400.0  # the UPS-backed MCC stays up


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_first_attempt_diesel_start_gives_water_at_pressure_in_20_to_33_s(seed: int) -> None:
    st = PumpStation(sure_start(), seed=seed)
    st.inject("power_loss")
    # "water at pressure": PT-720 back within 10 % of the diesel-only point (0.30 MPa)
    t_water = run_until(st, lambda t: t["PT-720"] >= 0.27 and t["YS-801"] == DieselState.RUNNING, 60.0)
    assert 20.0 <= t_water <= 33.0  # 3.12: detection 10 s + crank <= 15 s + 5 s acceleration
    assert st.diesel.attempts == 1
    st.run_for(45.0 - st.time)
    tags = st.read_tags()
    assert tags["YS-801"] == DieselState.RUNNING and tags["ST-802"] >= 1400.0  # P1 confirm at 45 s


def test_diesel_only_then_both_headers_through_mov_740() -> None:
    st = diesel_running_after_loss()
    close_dead_pump_movs(st)
    tags = st.read_tags()
    assert tags["ZSC-703A"] and tags["ZSC-703B"] and tags["ZSC-713A"]
    assert within(tags["PT-720"], 0.30)
    assert 0.28 <= tags["PT-805"] <= 0.33  # P2
    assert 1450.0 <= tags["ST-802"] <= 1550.0
    assert tags["PT-730"] < 0.05  # the HBS header has no water until MOV-740 opens
    st.write("HS-740", ValveCmd.OPEN.value)
    st.run_for(91.0)
    tags = st.read_tags()
    assert tags["ZSO-740"] and not tags["ZSC-740"]
    assert within(tags["PT-720"], 0.27) and within(tags["PT-730"], 0.27)
    assert tags["PT-730"] >= 0.22  # P4 confirm


def test_fuel_burn_at_the_diesel_only_point_is_about_60_l_per_h() -> None:
    st = diesel_running_after_loss()
    close_dead_pump_movs(st)
    fq = st.read_tags()["FQ-808"]
    assert within(fq, 60.0, rel=0.15)
    level0 = st.read_tags()["LT-806"]
    st.run_for(3600.0)
    burnt_l = (level0 - st.read_tags()["LT-806"]) / 100.0 * 2000.0
    assert within(burnt_l, fq, rel=0.02)


def test_overcrank_at_about_3_min_when_every_crank_fails() -> None:
    st = PumpStation(sure_start(), seed=7)
    st.inject("diesel_fail_cranks", n=6)
    st.inject("power_loss")
    batteries: list[Battery] = []
    last = DieselState.STANDBY

    def watch(t: Tags) -> bool:
        nonlocal last
        if t["YS-801"] == DieselState.CRANKING and last != DieselState.CRANKING:
            batteries.append(st.diesel.battery)
        last = DieselState(t["YS-801"])
        return bool(t["XA-801"])

    t_xa = run_until(st, watch, 240.0)
    assert within(t_xa, 180.0)
    assert batteries == [Battery.A, Battery.B] * 3
    st.run_for(2.0)
    tags = st.read_tags()
    assert tags["YS-801"] == DieselState.FAILED and tags["ST-802"] == 0.0
    assert tags["PT-720"] < 0.1  # header pressure stays ~0 (F-P01)
    assert tags["UY-790"] > 0.2  # the damage accumulators rise
    # P1 on_fail: manual cranks fail too
    st.write("HS-809", 1)
    st.step(0.1)
    assert st.read_tags()["HS-809"] == 0 and st.read_tags()["YS-801"] == DieselState.CRANKING
    st.run_for(20.0)
    assert st.read_tags()["YS-801"] == DieselState.FAILED and st.read_tags()["XA-801"]


# ---------------------------------------------------------------------------------------------
# electric pumps: permissive, inrush, start limits, bus
# ---------------------------------------------------------------------------------------------
def test_pump_start_with_its_mov_open_is_refused(st: PumpStation) -> None:
    st.write("HS-703C", ValveCmd.OPEN.value)
    st.run_for(91.0)
    assert st.read_tags()["ZSO-703C"]
    st.write("HS-701C", True)
    st.step(0.1)
    tags = st.read_tags()
    assert tags["HS-701C"] is False and tags["XS-701C"] is False and tags["II-701C"] == 0.0
    assert st.pumps["P-701C"].starts == []  # a refused start is not a start


def test_started_pump_draws_6_fla_then_load_current(st: PumpStation) -> None:
    st.write("HS-701C", True)
    st.step(0.1)
    tags = st.read_tags()
    assert tags["XS-701C"] and tags["II-701C"] == pytest.approx(6 * FLA_BF)
    assert tags["EI-601"] == pytest.approx(6.3 * 0.92)  # 8 % dip per starting motor
    st.run_for(7.5)
    assert st.read_tags()["II-701C"] == pytest.approx(6 * FLA_BF)  # t_acc = 8 s
    st.run_for(1.0)
    tags = st.read_tags()
    assert tags["II-701C"] <= 1.2 * FLA_BF  # R1 (c): dead-headed against the closed MOV
    assert tags["PT-702C"] >= 0.65  # near the shut-off head
    assert tags["EI-601"] == pytest.approx(6.3)
    st.write("HS-703C", ValveCmd.OPEN.value)
    st.run_for(91.0)
    tags = st.read_tags()
    assert within(tags["PT-720"], 0.66)  # three BF pumps (3.10)
    assert tags["II-701C"] > 0.7 * FLA_BF


def test_two_motors_started_together_dip_the_bus_below_the_l_alarm(st: PumpStation) -> None:
    st.write("HS-701C", True)
    st.write("HS-711B", True)
    st.step(0.1)
    assert st.read_tags()["EI-601"] <= 5.4  # 16 % dip: the UV alarm of F-P15 (L 85 %)
    assert st.read_tags()["XS-601"] == BusState.LIVE  # a dip, not a loss


def test_start_count_limit_blocks_the_fourth_cold_start_for_an_hour(st: PumpStation) -> None:
    for _ in range(3):
        st.write("HS-701C", True)
        st.run_for(10.0)
        assert st.read_tags()["XS-701C"]
        st.write("HS-701C", False)
        st.run_for(60.0)
    assert st.start_blocked("P-701C")
    st.write("HS-701C", True)
    st.step(0.1)
    assert st.read_tags()["HS-701C"] is False and st.read_tags()["XS-701C"] is False
    st.run_for(3600.0)
    st.write("HS-701C", True)
    st.step(0.1)
    assert st.read_tags()["XS-701C"]


def test_hot_motor_gets_two_starts() -> None:
    st = PumpStation(seed=7)
    st.inject("power_loss")
    st.run_for(5.0)
    st.inject("power_return")
    st.run_for(60.0)
    for k in range(2):
        st.write("HS-703A", ValveCmd.CLOSE.value)
        st.run_for(70.0)
        st.write("HS-701A", True)
        st.run_for(10.0)
        assert st.read_tags()["XS-701A"], k
        st.write("HS-701A", False)
        st.run_for(30.0)
    st.write("HS-701A", True)
    st.step(0.1)
    assert st.read_tags()["XS-701A"] is False  # P-701A was hot (running for hours before the loss)


def test_pumps_run_down_after_the_trip(st: PumpStation) -> None:
    st.inject("power_loss")
    st.run_for(6.0)
    # n = n0 / (1 + t / 6 s): about half speed 6 s after the loss
    assert 0.45 <= st.pumps["P-701A"].s <= 0.55
    st.run_for(400.0)
    assert st.pumps["P-701A"].s == 0.0


def test_restored_stable_60_s_after_power_return(st: PumpStation) -> None:
    st.inject("power_loss")
    st.run_for(30.0)
    st.inject("power_return")
    assert st.active_faults() == []  # power_return is one-shot and ends power_loss
    st.step(0.1)
    assert st.read_tags()["XS-601"] == BusState.RESTORED_UNSTABLE
    t0 = st.time - 0.1
    t_stable = run_until(st, lambda t: t["XS-601"] == BusState.RESTORED_STABLE, 70.0)
    assert 59.9 <= t_stable - t0 <= 60.2


# ---------------------------------------------------------------------------------------------
# one test per fault: the effect section 5 states
# ---------------------------------------------------------------------------------------------
def test_f_p02_diesel_starts_on_the_third_attempt() -> None:
    st = PumpStation(PumpParams(), seed=11)  # default p_s: attempt 3 is forced to succeed
    st.inject("diesel_fail_cranks", n=2)
    st.inject("power_loss")
    t_water = run_until(st, lambda t: t["PT-720"] >= 0.27 and t["YS-801"] == DieselState.RUNNING, 150.0)
    assert within(t_water, 80.0, rel=0.15)  # 10 + 2 x 30 + t_fire + 5 (F-P02)
    assert st.diesel.attempts == 3 and not st.read_tags()["XA-801"]


def test_f_p03_battery_a_failed_then_b_starts_it() -> None:
    st = PumpStation(sure_start(), seed=7)
    st.inject("battery_failed", battery="A", volts=12.0)
    assert st.read_tags()["EI-807A"] == 12.0  # below the 16 V alarm
    st.inject("power_loss")
    run_until(st, lambda t: t["YS-801"] == DieselState.CRANKING, 15.0)
    assert cranking_battery(st) == Battery.A
    st.run_for(10.0)
    assert st.read_tags()["ST-802"] == 0.0  # battery A cannot turn the engine
    run_until(st, lambda t: t["YS-801"] == DieselState.RUNNING, 60.0)
    assert cranking_battery(st) == Battery.B and st.diesel.attempts == 2
    assert st.read_tags()["EI-807B"] < 27.0  # B did the cranking
    st.clear("battery_failed")
    assert st.read_tags()["EI-807A"] == 27.0
    st.inject("battery_failed", battery="B", volts=15.0)
    assert st.read_tags()["EI-807B"] == 15.0
    st.clear()
    assert st.read_tags()["EI-807B"] == 27.0


@pytest.mark.parametrize("reason", ["overspeed", "low_fuel"])
def test_f_p04_diesel_starts_then_trips(reason: str) -> None:
    st = PumpStation(sure_start(), seed=7)
    st.inject("diesel_trip", after_s=300.0, reason=reason)
    st.inject("power_loss")
    t_run = run_until(st, lambda t: t["YS-801"] == DieselState.RUNNING, 60.0)
    st.run_for(299.0 - (st.time - t_run))
    assert st.read_tags()["YS-801"] == DieselState.RUNNING
    peak = 0.0

    def tripped(t: Tags) -> bool:
        nonlocal peak
        peak = max(peak, t["ST-802"])
        return bool(t["YS-801"] == DieselState.FAILED)

    t_trip = run_until(st, tripped, 5.0)
    assert within(t_trip - t_run, 300.0, rel=0.01)
    assert (peak > 1800.0) == (reason == "overspeed")
    assert st.active_faults() == [{"fault": "power_loss"}]  # the trip fired once and is spent
    st.run_for(30.0)
    assert st.read_tags()["ST-802"] == 0.0 and st.read_tags()["PT-720"] < 0.25  # P2 alarms
    # P1 again: a manual crank restarts it
    st.write("HS-809", 2)
    run_until(st, lambda t: t["YS-801"] == DieselState.RUNNING, 20.0)
    assert st.diesel.battery == Battery.B


def test_f_p05_coolant_high_alarms_but_the_diesel_keeps_running() -> None:
    st = diesel_running_after_loss()
    st.run_for(1800.0)
    assert 80.0 <= st.read_tags()["TT-804"] <= 86.0
    st.inject("coolant_high")
    st.run_for(1200.0)
    tags = st.read_tags()
    assert 98.0 < tags["TT-804"] <= 100.0
    assert tags["YS-801"] == DieselState.RUNNING


def test_f_p06_fuel_runs_low_then_the_engine_starves() -> None:
    st = PumpStation(sure_start(), seed=7)
    st.inject("reserve_empty")
    st.inject("fuel_level", percent=40.0)
    assert st.read_tags()["LT-806"] == pytest.approx(40.0)  # the L alarm (66.7 %) is already active
    assert st.read_tags()["XS-806"] is False
    st.inject("power_loss")
    st.run_for(60.0)
    close_dead_pump_movs(st)
    st.write("HS-806", True)  # no emergency fuel: nothing to transfer
    t_ll = 0.0
    while st.read_tags()["LT-806"] > 33.0:
        st.run_for(60.0)
        t_ll = st.time
    assert within(t_ll / 3600.0, 2.3, rel=0.15)  # LL at 33 % after about 2.3 h
    st.run_for(12 * 3600.0)
    tags = st.read_tags()
    assert 4.0 <= tags["LT-806"] <= 5.0
    assert tags["YS-801"] == DieselState.FAILED and tags["ST-802"] == 0.0
    assert tags["PT-720"] < 0.05  # the header pressure collapses


def test_f_p07_refill_arrives_late() -> None:
    st = diesel_running_after_loss()
    st.inject("refill_late", delay_s=3600.0)
    assert st.read_tags()["XS-806"] is False
    st.write("HS-806", True)
    level0 = st.read_tags()["LT-806"]
    st.run_for(3500.0)
    assert st.read_tags()["LT-806"] < level0  # only burning
    st.run_for(200.0)
    assert st.read_tags()["XS-806"] is True and st.active_faults() == [{"fault": "power_loss"}]
    level1 = st.read_tags()["LT-806"]
    st.run_for(600.0)
    gain_l = (st.read_tags()["LT-806"] - level1) / 100.0 * 2000.0
    assert within(gain_l, (600.0 - 60.0) * 600.0 / 3600.0, rel=0.1)  # transfer 600 L/h less the burn


def test_fuel_leak_empties_the_tank_at_its_rate(st: PumpStation) -> None:
    st.inject("fuel_leak", l_per_h=100.0)
    st.run_for(3600.0)
    assert st.read_tags()["LT-806"] == pytest.approx(95.0 - 5.0, abs=0.05)


def test_transfer_fills_the_day_tank_and_clears_hs806(st: PumpStation) -> None:
    st.inject("fuel_level", percent=90.0)
    st.write("HS-806", True)
    st.run_for(3600.0)
    tags = st.read_tags()
    assert tags["LT-806"] == pytest.approx(100.0) and tags["HS-806"] is False


def test_f_p08_mov_740_stuck_keeps_the_hbs_header_dry() -> None:
    st = diesel_running_after_loss()
    st.inject("valve_stuck", valve="MOV-740")
    close_dead_pump_movs(st)
    st.write("HS-740", ValveCmd.OPEN.value)
    st.run_for(91.0)
    tags = st.read_tags()
    assert tags["ZSC-740"] and not tags["ZSO-740"]
    assert tags["PT-730"] < 0.22
    st.run_for(300.0)
    assert st.read_tags()["UY-792"] >= 1.0  # HBS damage with its 5 min constant
    st.hand_wheel("MOV-740", ValveCmd.OPEN)
    st.run_for(300.0)
    assert st.valves["MOV-740"].x == 0.0  # a jammed actuator does not move by hand either


def test_f_p09_mov_703b_stuck_open_with_a_failed_check_valve_backflows() -> None:
    st = diesel_running_after_loss()
    st.inject("valve_stuck", valve="MOV-703B")
    st.inject("check_valve_failed", pump="P-701B")
    close_dead_pump_movs(st)
    tags = st.read_tags()
    assert tags["ZSC-703A"] and tags["ZSO-703B"] and not tags["ZSC-703B"]
    assert 0.05 <= 0.30 - tags["PT-720"] <= 0.10
    # power back: P-701B cannot be restarted (its MOV is not closed)
    st.inject("power_return")
    st.run_for(61.0)
    st.write("HS-701B", True)
    st.step(0.1)
    assert st.read_tags()["XS-701B"] is False


def test_f_p10_failed_check_valve_lowers_pt720_until_its_mov_closes() -> None:
    healthy = diesel_running_after_loss()
    st = diesel_running_after_loss()
    st.inject("check_valve_failed", pump="P-701A")
    healthy.run_for(60.0)
    st.run_for(60.0)
    drop = healthy.read_tags()["PT-720"] - st.read_tags()["PT-720"]
    assert 0.05 <= drop <= 0.10
    st.write("HS-703A", ValveCmd.CLOSE.value)
    st.run_for(91.0)
    assert st.read_tags()["PT-720"] == pytest.approx(healthy.read_tags()["PT-720"], abs=0.002)


def test_f_p11_mcc_dead_freezes_the_movs() -> None:
    st = diesel_running_after_loss()
    st.inject("mcc_dead")
    assert st.read_tags()["EI-602"] == 0.0
    st.write("HS-703A", ValveCmd.CLOSE.value)
    st.write("HS-740", ValveCmd.OPEN.value)
    st.run_for(300.0)
    tags = st.read_tags()
    assert tags["ZSO-703A"] and tags["ZSC-740"]
    assert st.valves["MOV-703A"].x == 1.0 and st.valves["MOV-740"].x == 0.0
    st.hand_wheel("MOV-703A", ValveCmd.CLOSE)  # the field crew: 15 min
    st.run_for(600.0)
    assert 0.0 < st.valves["MOV-703A"].x < 0.5
    st.run_for(320.0)
    assert st.read_tags()["ZSC-703A"]
    st.clear("mcc_dead")
    st.run_for(92.0)
    assert st.read_tags()["ZSO-740"]  # the pending OPEN runs once the MCC is back


def test_f_p13_power_flicker_returns_loses_and_returns(st: PumpStation) -> None:
    st.inject("power_loss")
    st.run_for(30.0)
    st.inject("power_flicker", back_s=20.0, lost_s=5.0)
    st.run_for(10.0)
    assert st.read_tags()["XS-601"] == BusState.RESTORED_UNSTABLE
    st.run_for(12.0)
    assert st.read_tags()["XS-601"] == BusState.DEAD
    st.run_for(5.0)
    assert st.read_tags()["XS-601"] == BusState.RESTORED_UNSTABLE
    assert st.active_faults() == []
    st.run_for(55.0)
    assert st.read_tags()["XS-601"] == BusState.RESTORED_UNSTABLE  # 60 s count from the last return
    st.run_for(5.0)
    assert st.read_tags()["XS-601"] == BusState.RESTORED_STABLE


def test_f_p14_pump_fails_to_accelerate(st: PumpStation) -> None:
    st.inject("pump_fails_to_accelerate", pump="P-701C")
    st.write("HS-701C", True)
    st.run_for(15.0)
    tags = st.read_tags()
    assert tags["XS-701C"] and tags["II-701C"] == pytest.approx(6 * FLA_BF)  # still 6 x FLA at 15 s
    assert tags["PT-702C"] < 0.65
    st.run_for(6.0)  # the motor protection backstop (20 s)
    tags = st.read_tags()
    assert not tags["XS-701C"] and tags["HS-701C"] is False
    assert len(st.pumps["P-701C"].starts) == 1


def test_f_p16_sensor_fault_reads_raw_zero(st: PumpStation) -> None:
    st.inject("sensor_fault", tag="PT-720")
    assert st.read_tags()["PT-720"] == pytest.approx(-0.25)  # raw 0 on a 4-20 mA loop: BAD quality
    assert st.read_tags()["PT-730"] == pytest.approx(0.54, rel=0.1)
    # the PLC's auto-start takes a dead PT-720 as low pressure (fail-safe demand)
    st.run_for(12.0)
    assert st.read_tags()["YS-801"] == DieselState.CRANKING
    st.clear("sensor_fault")
    assert st.read_tags()["PT-720"] == pytest.approx(0.59, rel=0.1)


def test_valve_slow_strokes_factor_times_slower(st: PumpStation) -> None:
    st.inject("valve_slow", valve="MOV-703C", factor=3.0)
    st.write("HS-703C", ValveCmd.OPEN.value)
    st.run_for(91.0)
    assert not st.read_tags()["ZSO-703C"]  # P6/P4 deadline missed
    st.run_for(100.0)
    assert st.read_tags()["ZSO-703C"]


def test_valve_no_feedback_moves_without_limit_switches(st: PumpStation) -> None:
    st.inject("valve_no_feedback", valve="MOV-703A")
    st.write("HS-703A", ValveCmd.CLOSE.value)
    st.run_for(91.0)
    tags = st.read_tags()
    assert st.valves["MOV-703A"].x == 0.0
    assert not tags["ZSC-703A"] and not tags["ZSO-703A"]


def test_suction_low_trips_the_electric_pumps(st: PumpStation) -> None:
    st.inject("suction_low", level_m=1.2)
    st.step(0.1)
    tags = st.read_tags()
    assert tags["LT-750"] == 1.2
    assert not (tags["XS-701A"] or tags["XS-701B"] or tags["XS-711A"])
    st.write("HS-701C", True)
    st.step(0.1)
    assert st.read_tags()["XS-701C"] is False
    st.clear("suction_low")
    assert st.read_tags()["LT-750"] == 4.0


def test_consequence_accumulators_follow_the_lost_flow() -> None:
    st = PumpStation(seed=7)
    st.inject("diesel_fail_cranks", n=6)
    st.inject("power_loss")
    st.run_for(320.0)
    tags = st.read_tags()
    assert tags["UY-792"] >= 1.0 and tags["UY-791"] < 1.0  # HBS valves 5 min, BF tuyeres 10 min
    st.run_for(320.0)
    tags = st.read_tags()
    assert tags["UY-791"] >= 1.0 and tags["UY-790"] == max(tags["UY-791"], tags["UY-792"])


# ---------------------------------------------------------------------------------------------
# diesel controller details
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", [DieselMode.AUTO, DieselMode.MANUAL])
def test_stop_request_cools_down_then_standby(mode: DieselMode) -> None:
    st = diesel_running_after_loss()
    st.inject("power_return")
    st.write("HS-801", mode.value)
    st.write("HS-810", True)
    st.step(0.1)
    tags = st.read_tags()
    assert tags["HS-810"] is False and tags["YS-801"] == DieselState.COOLDOWN
    assert 800.0 <= tags["ST-802"] < 1500.0  # running down to idle
    st.run_for(290.0)
    assert st.read_tags()["YS-801"] == DieselState.COOLDOWN
    st.run_for(10.1)
    if mode == DieselMode.MANUAL:
        assert st.read_tags()["YS-801"] == DieselState.STANDBY
    else:
        # no electric pump restarted: PT-720 < 0.45 is still a demand, so AUTO starts over at once
        assert st.read_tags()["YS-801"] == DieselState.START_DELAY


def test_manual_mode_has_no_auto_start_and_off_resets_failed() -> None:
    st = PumpStation(sure_start(), seed=7)
    st.write("HS-801", DieselMode.MANUAL.value)
    st.inject("power_loss")
    st.run_for(60.0)
    assert st.read_tags()["YS-801"] == DieselState.STANDBY and st.read_tags()["XS-801"] == DieselMode.MANUAL
    st.write("HS-809", "CRANK_A")
    run_until(st, lambda t: t["YS-801"] == DieselState.RUNNING, 15.0)
    st.write("HS-801", "OFF")
    st.step(0.1)
    assert st.read_tags()["YS-801"] == DieselState.STANDBY
    st.run_for(20.0)
    assert st.read_tags()["ST-802"] == 0.0


def test_off_is_the_overcrank_reset() -> None:
    st = PumpStation(seed=7)
    st.inject("diesel_fail_cranks", n=6)
    st.inject("power_loss")
    st.run_for(200.0)
    assert st.read_tags()["XA-801"]
    st.write("HS-801", "OFF")
    st.step(0.1)
    tags = st.read_tags()
    assert not tags["XA-801"] and tags["YS-801"] == DieselState.STANDBY


# ---------------------------------------------------------------------------------------------
# faults API
# ---------------------------------------------------------------------------------------------
def test_fault_catalogue() -> None:
    names = {f.name for f in PumpStation.FAULTS}
    assert names == {
        "power_loss",
        "power_return",
        "power_flicker",
        "diesel_fail_cranks",
        "battery_failed",
        "diesel_trip",
        "coolant_high",
        "fuel_level",
        "reserve_empty",
        "refill_late",
        "fuel_leak",
        "mcc_dead",
        "valve_stuck",
        "valve_slow",
        "valve_no_feedback",
        "check_valve_failed",
        "pump_fails_to_accelerate",
        "sensor_fault",
        "suction_low",
    }
    for f in PumpStation.FAULTS:
        assert f.station == "pump_station" and f.help
    by_name = {f.name: f for f in PumpStation.FAULTS}
    assert "F-P01" in by_name["diesel_fail_cranks"].scenarios
    assert "F-P13" in by_name["power_flicker"].scenarios


def test_inject_clear_and_active_faults(st: PumpStation) -> None:
    st.inject("valve_stuck", valve="MOV-740")
    st.inject("valve_stuck", valve="MOV-703A")
    st.inject("mcc_dead")
    assert {"fault": "valve_stuck", "valve": "MOV-740"} in st.active_faults()
    assert len(st.active_faults()) == 3
    st.clear("valve_stuck")
    assert st.active_faults() == [{"fault": "mcc_dead"}]
    st.clear()
    assert st.active_faults() == [] and st.read_tags()["EI-602"] == 400.0
    with pytest.raises(UnknownFault):
        st.inject("meteor_strike")
    with pytest.raises(UnknownFault):
        st.clear("meteor_strike")
    with pytest.raises(BadFaultParameter):
        st.inject("valve_stuck", valve="XV-201")
    with pytest.raises(BadFaultParameter):
        st.inject("sensor_fault", tag="XS-601")


def test_optional_measurement_noise_is_seeded() -> None:
    quiet = PumpStation(seed=1).read_tags()["PT-720"]
    a = PumpStation(PumpParams(noise_frac=0.002), seed=1)
    b = PumpStation(PumpParams(noise_frac=0.002), seed=1)
    ra, rb = a.read_tags()["PT-720"], b.read_tags()["PT-720"]
    assert ra == rb != quiet and abs(ra - quiet) < 0.02


def test_same_seed_same_run_and_seeds_differ() -> None:
    def t_running(seed: int) -> float:
        st = PumpStation(sure_start(), seed=seed)
        st.inject("power_loss")
        return run_until(st, lambda t: t["YS-801"] == DieselState.RUNNING, 60.0)

    assert t_running(3) == t_running(3)
    assert len({t_running(s) for s in range(5)}) > 1
    assert load_station(seed=3).name == "pump_station"


# ---------------------------------------------------------------------------------------------
# speed and step-size robustness
# ---------------------------------------------------------------------------------------------
def test_quiet_merged_steps_agree_with_plain_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = diesel_running_after_loss()
    merged = diesel_running_after_loss()
    for st in (plain, merged):
        close_dead_pump_movs(st)
        st.run_for(600.0)  # the dead HBS header drains, the pumps have run down
    for _ in range(18000):
        plain.step(0.1)
    calls = 0
    step = merged.step

    def counting_step(dt: float = 0.1) -> None:
        nonlocal calls
        calls += 1
        step(dt)

    monkeypatch.setattr(merged, "step", counting_step)
    merged.step_many(18000, 0.1)
    assert calls < 18000 / 5  # the quiet stretches really were merged
    assert merged.time == pytest.approx(plain.time)
    a, b = plain.read_tags(), merged.read_tags()
    for tag in ("PT-720", "PT-730", "FT-721", "ST-802", "TT-804", "LT-806", "TT-722", "UY-790"):
        assert b[tag] == pytest.approx(a[tag], rel=1e-3, abs=1e-6), tag


def test_one_second_steps_reach_the_same_operating_point() -> None:
    st = diesel_running_after_loss()
    close_dead_pump_movs(st)
    ref = st.read_tags()["PT-720"]
    st2 = diesel_running_after_loss()
    close_dead_pump_movs(st2)
    for _ in range(300):
        st2.step(1.0)
    assert st2.read_tags()["PT-720"] == pytest.approx(ref, abs=1e-4)
    assert st2.net.unconverged == 0


def test_eight_hours_of_plant_time_run_fast() -> None:
    st = diesel_running_after_loss()
    close_dead_pump_movs(st)
    started = time.perf_counter()
    st.step_many(8 * 36000, 0.1)
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0, elapsed
    tags = st.read_tags()
    assert tags["YS-801"] == DieselState.RUNNING and within(tags["PT-720"], 0.30)
    assert within((95.0 - tags["LT-806"]) / 100.0 * 2000.0, 8 * 60.0, rel=0.15)
