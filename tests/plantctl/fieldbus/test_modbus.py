"""ModbusDriver against the real sim_plc Modbus server (and a misbehaving one of our own).

Both ends are real: the station models behind ``sim_plc.modbus_server`` on free
loopback ports, and the driver with pymodbus's client in front. The plant sits on
its own VirtualClock and moves only when a test advances it; the drivers run on a
RealClock, and every wait is a deadline wait on the driver's callbacks.
"""

from __future__ import annotations

import asyncio
import math
import ssl
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from plantctl.clock import RealClock, VirtualClock
from plantctl.errors import DriverError
from plantctl.fieldbus.modbus import (
    DEFAULT_CLASS,
    FAST_CLASS,
    MAX_BITS_PER_READ,
    MAX_REGISTERS_PER_READ,
    ModbusDriver,
    minimum_requests,
    plan_reads,
)
from plantctl.iolist import BadCountsAs, CommandType, IOList, Kind, ModbusTable, Signal
from plantctl.tags import Quality, Reason
from sim_plc.gas_station import GasStation
from sim_plc.modbus_server import StationModbusServer, server_ssl_context
from sim_plc.plant import Plant
from sim_plc.pump_station import PumpStation

if TYPE_CHECKING:  # tests/ is not a package: the helpers arrive as fixtures
    from conftest import Recorder

GAS = "gas_station"
PUMP = "pump_station"

pytestmark = pytest.mark.timeout(60)

PERIOD = 0.05
TIMEOUT = 0.3


@pytest.fixture
def plant() -> Plant:
    return Plant([GasStation(seed=0), PumpStation(seed=0)], VirtualClock())


@pytest.fixture
async def servers(plant: Plant, iolists: dict[str, IOList]) -> AsyncIterator[dict[str, StationModbusServer]]:
    srvs = {name: StationModbusServer(plant, iol) for name, iol in iolists.items()}
    for srv in srvs.values():
        await srv.start()
    try:
        yield srvs
    finally:
        for srv in srvs.values():
            await srv.stop()


def make_driver(iol: IOList, port: int, rec: Recorder, **kw: object) -> ModbusDriver:
    opts: dict[str, object] = dict(timeout=TIMEOUT, period=PERIOD, backoff_initial=0.05, backoff_max=0.2)
    opts.update(kw)
    return ModbusDriver(iol, "127.0.0.1", port, RealClock(), rec.on_readings, rec.on_link, **opts)  # type: ignore[arg-type]


def one_count(sig: Signal) -> float:
    """The engineering value of one raw count: the scaling tolerance of an analog signal."""
    assert sig.range is not None and sig.raw is not None
    return (sig.range[1] - sig.range[0]) / (sig.raw[1] - sig.raw[0])


def assert_matches_model(rec: Recorder, iol: IOList, model_tags: dict[str, float | int | bool]) -> None:
    for sig in iol.signals:
        got, want = rec.latest[sig.tag].value, model_tags[sig.tag]
        if sig.is_analog:
            assert sig.range is not None
            clamped = min(max(float(want), sig.from_raw(0)), sig.from_raw(65535))  # 16-bit register limits
            assert got == pytest.approx(clamped, abs=one_count(sig) / 2 + 1e-9), sig.tag
        elif sig.is_bit:
            assert got is bool(want), sig.tag
        else:
            assert got == int(want), sig.tag


# -- the read plan ---------------------------------------------------------------------------
def _sig(tag: str, table: ModbusTable, address: int) -> Signal:
    base = {ModbusTable.COIL: 1, ModbusTable.DISCRETE_INPUT: 10001, ModbusTable.INPUT_REGISTER: 30001,
            ModbusTable.HOLDING_REGISTER: 40001}[table]
    kind = {ModbusTable.COIL: Kind.COMMAND_OUT, ModbusTable.DISCRETE_INPUT: Kind.DIGITAL_IN,
            ModbusTable.INPUT_REGISTER: Kind.STATE_ENUM, ModbusTable.HOLDING_REGISTER: Kind.COMMAND_OUT}[table]
    return Signal(
        tag=tag, description="", kind=kind, type=None, units="", range=None, raw=None, fault_raw=None,
        table=table, address=address, offset=address - base, opcua_node=tag, states=["A"], alarms={}, normal=None,
        bad_counts_as=BadCountsAs.ALARM_ONLY, bad_means="", feedback=None, safe_value=None, true_means=None,
        alarm_on=None,
        source="plc", line=0,
    )


def test_plan_splits_at_gaps_and_at_the_protocol_limits() -> None:
    regs = [_sig(f"R{i}", ModbusTable.INPUT_REGISTER, 30001 + i) for i in range(300)]  # 0..299 contiguous
    regs.append(_sig("R-gap", ModbusTable.INPUT_REGISTER, 30401))  # offset 400: after a gap
    bits = [_sig(f"B{i}", ModbusTable.DISCRETE_INPUT, 10001 + i) for i in range(2001)]
    blocks = plan_reads(list(reversed(regs)) + bits)  # input order does not matter
    shape = [(b.table, b.start, b.count) for b in blocks]
    assert shape == [
        (ModbusTable.DISCRETE_INPUT, 0, MAX_BITS_PER_READ),
        (ModbusTable.DISCRETE_INPUT, 2000, 1),
        (ModbusTable.INPUT_REGISTER, 0, MAX_REGISTERS_PER_READ),
        (ModbusTable.INPUT_REGISTER, 125, MAX_REGISTERS_PER_READ),
        (ModbusTable.INPUT_REGISTER, 250, 50),
        (ModbusTable.INPUT_REGISTER, 400, 1),
    ]
    for b in blocks:
        assert [s.offset for s in b.signals] == list(range(b.start, b.start + b.count))
    assert minimum_requests(regs + bits) == len(blocks)


def _runs(offsets: list[int]) -> list[int]:
    """Lengths of the runs of consecutive numbers (the test's own count, independent of the driver)."""
    lengths: list[int] = []
    prev = None
    for off in sorted(offsets):
        if prev is not None and off == prev + 1:
            lengths[-1] += 1
        else:
            lengths.append(1)
        prev = off
    return lengths


def test_gas_station_plan_is_the_minimum(iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]) -> None:
    iol = iolists[GAS]
    drv = make_driver(iol, 1, make_recorder())
    expected = 0
    for table in ModbusTable:
        limit = 2000 if table in (ModbusTable.COIL, ModbusTable.DISCRETE_INPUT) else 125
        expected += sum(math.ceil(n / limit) for n in _runs([s.offset for s in iol.signals if s.table is table]))
    assert drv.requests_per_cycle == expected
    # Every signal is read exactly once per cycle.
    planned = [s.tag for b in drv.plan for s in b.signals]
    assert sorted(planned) == sorted(s.tag for s in iol.signals)
    # The gas station's map is one contiguous block per table: four requests read all of it.
    assert expected == len({s.table for s in iol.signals})


async def test_one_cycle_costs_exactly_the_planned_requests(
    servers: dict[str, StationModbusServer], iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]
) -> None:
    iol = iolists[GAS]
    rec = make_recorder()
    drv = make_driver(iol, servers[GAS].port, rec, period=30.0)  # one read at link-up, the next far away
    await drv.start()
    try:
        await rec.until(lambda: rec.ups() == [True], what="link up")
        assert drv.stats.requests == drv.requests_per_cycle
        assert len(rec.batches) == 1 and len(rec.batches[0]) == len(iol.signals)
    finally:
        await drv.stop()


# -- live values -----------------------------------------------------------------------------
async def test_live_values_match_the_model(
    plant: Plant, servers: dict[str, StationModbusServer], iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]
) -> None:
    plant.advance(5.0)  # leave the exact start values behind
    for name in (GAS, PUMP):
        iol = iolists[name]
        rec = make_recorder()
        drv = make_driver(iol, servers[name].port, rec)
        await drv.start()
        try:
            await rec.until(lambda rec=rec, iol=iol: rec.all_reported(iol), what=f"{name} values")
            assert_matches_model(rec, iol, plant.tags(name))
            assert drv.link_up
            t_rx = [r.t for r in rec.latest.values()]
            assert max(t_rx) <= RealClock().now()  # stamped on the driver's clock at receipt
        finally:
            await drv.stop()


# -- outage and recovery ------------------------------------------------------------------------
async def test_killed_server_marks_its_station_bad_and_recovers_by_itself(
    plant: Plant, servers: dict[str, StationModbusServer], iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]
) -> None:
    gas_iol, pump_iol = iolists[GAS], iolists[PUMP]
    gas, pump = make_recorder(), make_recorder()
    gas_drv = make_driver(gas_iol, servers[GAS].port, gas)
    pump_drv = make_driver(pump_iol, servers[PUMP].port, pump)
    await gas_drv.start()
    await pump_drv.start()
    restarted: StationModbusServer | None = None
    try:
        await gas.until(lambda: gas.all_reported(gas_iol), what="gas values")
        await pump.until(lambda: pump.all_reported(pump_iol), what="pump values")
        assert gas.ups() == [True] and pump.ups() == [True]

        port = servers[GAS].port
        t_kill = RealClock().now()
        await servers[GAS].stop()
        await gas.until(lambda: gas.all_bad(gas_iol, Reason.COMMS_LOST), what="gas BAD/COMMS_LOST")
        t_bad = max(gas.latest[s.tag].t for s in gas_iol.signals)
        assert t_bad - t_kill <= PERIOD + TIMEOUT
        # At once: one batch holds every tag of the station.
        outage_batch = next(b for b in gas.batches if b and b[0][1].reason is Reason.COMMS_LOST)
        assert {tag for tag, _ in outage_batch} == {s.tag for s in gas_iol.signals}
        assert gas.ups() == [True, False] and not gas_drv.link_up

        # The other station's link never noticed.
        pump_before = len(pump.batches)
        await pump.until(lambda: len(pump.batches) >= pump_before + 3, what="pump keeps polling")
        assert pump.ups() == [True] and pump_drv.link_up
        assert all(r.quality is not Quality.BAD for b in pump.batches[pump_before:] for _, r in b)

        # Back on the same port: the driver reconnects without help.
        restarted = StationModbusServer(plant, gas_iol, port=port)
        await restarted.start()
        await gas.until(lambda: gas.ups() == [True, False, True], what="gas link up again")
        await gas.until(lambda: all(gas.latest[s.tag].reason is not Reason.COMMS_LOST for s in gas_iol.signals))
        assert_matches_model(gas, gas_iol, plant.tags(GAS))
        assert gas_drv.stats.reconnects == 1
        assert gas.ups() == [True, False, True]  # exactly one down and one up for the outage
    finally:
        await gas_drv.stop()
        await pump_drv.stop()
        if restarted is not None:
            await restarted.stop()


async def test_link_drop_fault_from_the_simulator(
    plant: Plant, servers: dict[str, StationModbusServer], iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]
) -> None:
    """F-X01: the sim's link_drop closes the station's port; the driver rides it out."""
    iol = iolists[PUMP]
    rec = make_recorder()
    drv = make_driver(iol, servers[PUMP].port, rec)
    await drv.start()
    try:
        await rec.until(lambda: rec.ups() == [True], what="link up")
        plant.inject(PUMP, "link_drop", {"duration_s": 2.0})
        await rec.until(lambda: rec.all_bad(iol, Reason.COMMS_LOST), what="BAD/COMMS_LOST")
        plant.advance(2.0)  # the link returns with the plant's time
        await servers[PUMP].settled()
        await rec.until(lambda: rec.ups() == [True, False, True], what="link back")
        await rec.until(lambda: rec.all_reported(iol) and not any(r.bad for r in rec.latest.values()))
    finally:
        await drv.stop()


# -- writes ---------------------------------------------------------------------------------
def _first_command(iol: IOList, ctype: CommandType) -> Signal:
    return next(s for s in iol.signals if s.kind is Kind.COMMAND_OUT and s.type is ctype)


@pytest.mark.parametrize("station", [PUMP, GAS])  # the pump's registers are enums, the gas station's analog
async def test_write_coil_and_holding_register_reach_the_model(
    plant: Plant,
    servers: dict[str, StationModbusServer],
    iolists: dict[str, IOList],
    make_recorder: Callable[[], Recorder],
    station: str,
) -> None:
    iol = iolists[station]
    rec = make_recorder()
    drv = make_driver(iol, servers[station].port, rec)
    await drv.start()
    try:
        await rec.until(lambda: rec.ups() == [True], what="link up")
        coil = _first_command(iol, CommandType.BOOL)
        new_bit = not bool(plant.tags(station)[coil.tag])
        await drv.write(coil.tag, new_bit)
        assert plant.tags(station)[coil.tag] is new_bit
        # The echo comes back through the poll.
        await rec.until(lambda: rec.latest[coil.tag].value is new_bit, what="coil echo")

        hr = next(s for s in iol.signals if s.table is ModbusTable.HOLDING_REGISTER)
        if hr.type is CommandType.ENUM:
            assert hr.states is not None
            new_val: float | int = (int(plant.tags(station)[hr.tag]) + 1) % len(hr.states)
            await drv.write(hr.tag, new_val)
            assert plant.tags(station)[hr.tag] == new_val
            with pytest.raises(DriverError, match="state index"):
                await drv.write(hr.tag, len(hr.states))
        else:
            assert hr.range is not None
            new_val = hr.range[0] + 0.37 * (hr.range[1] - hr.range[0])
            await drv.write(hr.tag, new_val)
            assert float(plant.tags(station)[hr.tag]) == pytest.approx(new_val, abs=one_count(hr))
            with pytest.raises(DriverError, match="outside the range"):
                await drv.write(hr.tag, hr.range[1] + 1.0)
        await rec.until(
            lambda: rec.latest[hr.tag].value == pytest.approx(new_val, abs=one_count(hr) if hr.is_analog else 0),
            what="register echo",
        )

        # Refused before anything goes on the wire (these raise before the driver's first await,
        # so no poll can run in between and move the request count).
        before = drv.stats.requests
        with pytest.raises(DriverError, match="not a command"):
            await drv.write(next(s.tag for s in iol.signals if s.kind is Kind.ANALOG_IN), 1.0)
        with pytest.raises(DriverError, match="unknown tag"):
            await drv.write("NO-SUCH-TAG", True)
        with pytest.raises(DriverError):
            await drv.write(coil.tag, 3)  # not a bool
        assert drv.stats.requests == before
    finally:
        await drv.stop()


async def test_write_while_the_link_is_down_raises(
    servers: dict[str, StationModbusServer], iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]
) -> None:
    iol = iolists[GAS]
    rec = make_recorder()
    drv = make_driver(iol, servers[GAS].port, rec)
    await drv.start()
    try:
        await rec.until(lambda: rec.ups() == [True], what="link up")
        await servers[GAS].stop()
        await rec.until(lambda: rec.ups() == [True, False], what="link down")
        with pytest.raises(DriverError, match="link down"):
            await drv.write(_first_command(iol, CommandType.BOOL).tag, False)
    finally:
        await drv.stop()


# -- sensor faults ------------------------------------------------------------------------------
async def test_open_loop_detector_reads_bad_sensor_fault(
    plant: Plant, servers: dict[str, StationModbusServer], iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]
) -> None:
    iol = iolists[GAS]
    rec = make_recorder()
    drv = make_driver(iol, servers[GAS].port, rec)
    await drv.start()
    try:
        await rec.until(lambda: rec.all_reported(iol), what="values")
        assert rec.latest["GD-401B"].quality is Quality.GOOD
        plant.inject(GAS, "detector_open_loop", {"tag": "GD-401B"})
        plant.advance(1.0)
        await rec.until(
            lambda: rec.latest["GD-401B"].reason is Reason.SENSOR_FAULT, what="GD-401B BAD/SENSOR_FAULT"
        )
        r = rec.latest["GD-401B"]
        assert r.quality is Quality.BAD and r.value == pytest.approx(-25.0, abs=0.01)
        assert rec.latest["GD-401A"].quality is Quality.GOOD and rec.latest["GD-401C"].quality is Quality.GOOD
        assert drv.link_up  # a sensor fault is not a comms fault
    finally:
        await drv.stop()


# -- misbehaving servers -------------------------------------------------------------------------
async def test_exception_responses_mark_bad_and_never_stop_the_driver(
    servers: dict[str, StationModbusServer], iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]
) -> None:
    """A unit id the PLC does not serve: every read of a mapped block gets an exception response."""
    iol = iolists[GAS]
    rec = make_recorder()
    drv = make_driver(iol, servers[GAS].port, rec, unit_id=iol.unit_id + 7)
    await drv.start()
    try:
        await rec.until(lambda: drv.stats.failures >= 3, what="three failed attempts")
        assert rec.ups() == [False]  # reported once, not once per attempt
        assert "exception code" in rec.links[0].detail
        assert rec.all_bad(iol, Reason.NOT_CONNECTED)
        assert not drv.link_up and drv._task is not None and not drv._task.done()
    finally:
        await drv.stop()


class EvilServer:
    """A Modbus TCP server that answers correctly, or with an exception, garbage, a short
    answer, or nothing, as the test says."""

    REGISTER = 12000  # inside every live-zero band

    def __init__(self) -> None:
        self.mode = "ok"
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in list(self.writers):
            w.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readexactly(7)
                tid, _pid, length, uid = struct.unpack(">HHHB", head)
                pdu = await reader.readexactly(length - 1)
                answer = self._answer(pdu)
                if answer is None:
                    continue
                writer.write(struct.pack(">HHHB", tid, 0, len(answer) + 1, uid) + answer)
                if self.mode == "garbage":
                    writer.write(b"\xde\xad\xbe\xef" * 8)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    def _answer(self, pdu: bytes) -> bytes | None:
        fc = pdu[0]
        _addr, count = struct.unpack(">HH", pdu[1:5])
        if self.mode == "silent":
            return None
        if self.mode == "exception":
            return bytes([fc | 0x80, 4])  # server device failure
        if self.mode == "garbage":
            return bytes([fc, 0xFF]) + b"\x00\x01"  # byte count far beyond what follows
        if fc in (1, 2):
            nbytes = (count + 7) // 8
            return bytes([fc, nbytes]) + bytes(nbytes)
        if fc in (3, 4):
            n = count - 1 if self.mode == "short" else count
            return bytes([fc, 2 * n]) + struct.pack(f">{n}H", *([self.REGISTER] * n))
        return pdu[:5]  # write echo


@pytest.fixture
async def evil() -> AsyncIterator[EvilServer]:
    srv = EvilServer()
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.mark.parametrize("mode", ["exception", "garbage", "short", "silent"])
async def test_bad_answers_mark_bad_then_the_link_recovers(
    evil: EvilServer, iolists: dict[str, IOList], mode: str, make_recorder: Callable[[], Recorder]
) -> None:
    iol = iolists[GAS]
    rec = make_recorder()
    drv = make_driver(iol, evil.port, rec)
    await drv.start()
    try:
        await rec.until(lambda: rec.ups() == [True], what="link up")
        assert rec.all_good(iol)
        evil.mode = mode
        await rec.until(lambda: rec.all_bad(iol, Reason.COMMS_LOST), what=f"BAD after {mode}")
        assert rec.ups() == [True, False]
        if mode == "exception":
            assert "exception code 4" in rec.links[-1].detail
        if mode == "silent":
            assert "no answer" in rec.links[-1].detail
        evil.mode = "ok"
        await rec.until(lambda: rec.ups() == [True, False, True], what="link back")
        await rec.until(lambda: rec.all_good(iol), what="GOOD again")
        assert drv._task is not None and not drv._task.done()
    finally:
        await drv.stop()


# -- TLS ------------------------------------------------------------------------------------------
async def test_tls_read(plant: Plant, iolists: dict[str, IOList], tmp_path: Path, make_recorder: Callable[[], Recorder], tls_cert: tuple[Path, Path]) -> None:
    iol = iolists[GAS]
    cert, key = tls_cert
    srv = StationModbusServer(plant, iol, ssl_context=server_ssl_context(cert, key))
    await srv.start()
    good, wrong = make_recorder(), make_recorder()
    client_ctx = ssl.create_default_context(cafile=str(cert))
    untrusting_ctx = ssl.create_default_context()  # system CAs only: must refuse our self-signed server
    drv = make_driver(iol, srv.port, good, tls=client_ctx)
    bad_drv = make_driver(iol, srv.port, wrong, tls=untrusting_ctx)
    plain = make_recorder()
    plain_drv = make_driver(iol, srv.port, plain)  # plain Modbus TCP to a TLS port gets nowhere
    try:
        await drv.start()
        await bad_drv.start()
        await plain_drv.start()
        await good.until(lambda: good.all_reported(iol), what="values over TLS")
        assert_matches_model(good, iol, plant.tags(GAS))
        await wrong.until(lambda: bad_drv.stats.failures >= 2, what="untrusted attempts")
        await plain.until(lambda: plain_drv.stats.failures >= 2, what="plain attempts")
        assert wrong.ups() == [False] and plain.ups() == [False]
    finally:
        await drv.stop()
        await bad_drv.stop()
        await plain_drv.stop()
        await srv.stop()


# -- scan classes -------------------------------------------------------------------------------
async def test_scan_classes_poll_detectors_faster(
    servers: dict[str, StationModbusServer], iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]
) -> None:
    iol = iolists[GAS]
    rec = make_recorder()
    drv = make_driver(iol, servers[GAS].port, rec, period=2.0, scan_classes={FAST_CLASS: 0.02})
    fast_tags = set(drv.classes[FAST_CLASS].tags)
    assert {"GD-401A", "GD-401B", "GD-401C"} <= fast_tags
    assert all(t.startswith(("GD-", "ZSO-", "ZSC-", "ZS-", "XS-", "TS-", "UV-", "FS-")) for t in fast_tags)
    slow_tag = next(s.tag for s in iol.signals if s.tag.startswith("PT-"))
    assert slow_tag in drv.classes[DEFAULT_CLASS].tags
    await drv.start()
    try:
        await rec.until(lambda: rec.counts.get("GD-401A", 0) >= 15, what="15 detector reads")
        # 15 fast reads take about 0.3 s: the slow class (2 s) had its link-up read and at most one more.
        assert rec.counts[slow_tag] <= 2
        assert rec.ups() == [True]
    finally:
        await drv.stop()


def test_constructor_refuses_nonsense(iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]) -> None:
    iol = iolists[GAS]
    rec = make_recorder()
    with pytest.raises(ValueError):
        make_driver(iol, 1, rec, period=0.0)
    with pytest.raises(ValueError):
        make_driver(iol, 1, rec, backoff_initial=1.0, backoff_max=0.5)
    with pytest.raises(ValueError):
        make_driver(iol, 1, rec, scan_classes={FAST_CLASS: -1.0})
    # The unit id defaults to the I/O list's.
    assert make_driver(iol, 1, rec).unit_id == iol.unit_id
    assert make_driver(replace(iol, unit_id=9), 1, rec).unit_id == 9
