"""LoopbackDriver against the real station models, on a VirtualClock (no sockets, no waiting)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

from plantctl.clock import VirtualClock
from plantctl.errors import DriverError
from plantctl.fieldbus.loopback import LoopbackDriver
from plantctl.iolist import CommandType, IOList, Kind
from plantctl.tags import Quality, Reason
from sim_plc.gas_station import GasStation
from sim_plc.pump_station import PumpStation

if TYPE_CHECKING:  # tests/ is not a package: the helpers arrive as fixtures
    from conftest import Recorder

GAS = "gas_station"
PUMP = "pump_station"

pytestmark = pytest.mark.timeout(30)


def test_poll_reports_every_tag_with_the_model_values(iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]) -> None:
    for name, model in ((GAS, GasStation(seed=0)), (PUMP, PumpStation(seed=0))):
        iol = iolists[name]
        clock = VirtualClock(start=12.5)
        rec = make_recorder()
        drv = LoopbackDriver(iol, model, clock, rec.on_readings, rec.on_link)
        model.step(0.1)
        drv.poll(clock.now())
        want = model.read_tags()
        assert set(rec.latest) == {s.tag for s in iol.signals}
        for sig in iol.signals:
            r = rec.latest[sig.tag]
            assert r.t == 12.5
            assert r.value == want[sig.tag], sig.tag
            assert r.quality is not Quality.BAD, (sig.tag, r)
        assert rec.ups() == [True] and drv.link_up
        drv.poll(clock.now())
        assert rec.ups() == [True]  # link-up is reported once


def test_open_loop_detector_is_bad_sensor_fault(iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]) -> None:
    iol = iolists[GAS]
    model = GasStation(seed=0)
    clock = VirtualClock()
    rec = make_recorder()
    drv = LoopbackDriver(iol, model, clock, rec.on_readings, rec.on_link)
    model.inject("detector_open_loop", tag="GD-401C")
    model.step(0.1)
    drv.poll(clock.now())
    r = rec.latest["GD-401C"]
    assert (r.quality, r.reason) == (Quality.BAD, Reason.SENSOR_FAULT)
    assert r.value == pytest.approx(-25.0)
    assert rec.latest["GD-401A"].quality is Quality.GOOD
    # The same value through the Modbus scaling would be raw 0: outside the live-zero band.
    sig = iol.by_tag["GD-401C"]
    assert sig.raw_faulted(sig.to_raw(float(r.value)))
    model.clear("detector_open_loop")
    model.step(0.1)
    drv.poll(clock.now())
    assert rec.latest["GD-401C"].quality is Quality.GOOD


def test_set_link_drops_every_tag_and_refuses_writes(iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]) -> None:
    iol = iolists[GAS]
    model = GasStation(seed=0)
    clock = VirtualClock()
    rec = make_recorder()
    drv = LoopbackDriver(iol, model, clock, rec.on_readings, rec.on_link)
    drv.poll(clock.now())
    clock.advance(1.0)
    drv.set_link(False)
    assert rec.all_bad(iol, Reason.COMMS_LOST)
    assert all(rec.latest[s.tag].t == 1.0 for s in iol.signals)
    assert rec.ups() == [True, False] and not drv.link_up
    batches = len(rec.batches)
    drv.poll(clock.now())  # nothing arrives over a cut link
    drv.set_link(False)  # the same outage is not reported twice
    assert len(rec.batches) == batches and rec.ups() == [True, False]
    coil = next(s for s in iol.signals if s.kind is Kind.COMMAND_OUT and s.type is CommandType.BOOL)
    with pytest.raises(DriverError, match="link down"):
        drv.write_nowait(coil.tag, False)
    clock.advance(1.0)
    drv.set_link(True)
    assert rec.ups() == [True, False, True] and drv.link_up
    assert not any(rec.latest[s.tag].reason is Reason.COMMS_LOST for s in iol.signals)
    assert drv.stats.reconnects == 1


async def test_writes_reach_the_model(iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]) -> None:
    iol = iolists[PUMP]
    model = PumpStation(seed=0)
    clock = VirtualClock()
    rec = make_recorder()
    drv = LoopbackDriver(iol, model, clock, rec.on_readings, rec.on_link)
    coil = next(s for s in iol.signals if s.kind is Kind.COMMAND_OUT and s.type is CommandType.BOOL)
    new = not bool(model.read_tags()[coil.tag])
    await drv.write(coil.tag, new)
    assert model.read_tags()[coil.tag] is new
    with pytest.raises(DriverError, match="not a command"):
        await drv.write(next(s.tag for s in iol.signals if s.kind is Kind.DIGITAL_IN), True)
    with pytest.raises(DriverError, match="unknown tag"):
        await drv.write("NOPE-1", True)


async def test_async_polling_follows_the_clock(iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]) -> None:
    iol = iolists[GAS]
    clock = VirtualClock()
    rec = make_recorder()
    drv = LoopbackDriver(iol, GasStation(seed=0), clock, rec.on_readings, rec.on_link, period=0.1)
    await drv.start()
    try:
        await rec.until(lambda: len(rec.batches) == 1, what="first poll")
        for _ in range(10):
            clock.advance(0.1)
            for _ in range(5):  # let the poll task run at each step
                await asyncio.sleep(0)
        assert len(rec.batches) == 11  # one poll at t=0 and one per period after it
        assert rec.latest["PT-101"].t == pytest.approx(1.0)
    finally:
        await drv.stop()


class _NaNModel:
    """A station model whose reading of some tags is NaN or infinite (a failed conversion
    in the PLC or a gateway), the rest from the real gas station model."""

    def __init__(self, overrides: dict[str, float]) -> None:
        self.inner = GasStation(seed=0)
        self.overrides = overrides

    def read_tags(self) -> dict[str, float | int | bool]:
        return {**self.inner.read_tags(), **self.overrides}

    def write(self, tag: str, value: float | int | bool) -> None:
        self.inner.write(tag, value)


def test_a_non_finite_value_is_bad_sensor_fault(iolists: dict[str, IOList], make_recorder: Callable[[], Recorder]) -> None:
    iol = iolists[GAS]
    model = _NaNModel({"GD-401A": math.nan, "PT-322": math.inf, "XS-400": math.nan})
    clock = VirtualClock()
    rec = make_recorder()
    drv = LoopbackDriver(iol, model, clock, rec.on_readings, rec.on_link)
    for _ in range(2):  # the second poll goes through the "unchanged" shortcut: NaN != NaN, judged again
        drv.poll(clock.now())
        for tag in model.overrides:
            r = rec.latest[tag]
            assert (r.quality, r.reason, r.t) == (Quality.BAD, Reason.SENSOR_FAULT, clock.now()), tag
        assert rec.latest["GD-401B"].quality is Quality.GOOD
        clock.advance(0.1)
    model.overrides = {}
    drv.poll(clock.now())
    assert all(rec.latest[t].quality is Quality.GOOD for t in ("GD-401A", "PT-322", "XS-400"))
