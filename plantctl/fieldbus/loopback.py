"""In-process loopback driver: the controller talks to a station model directly.

Theory of operation
-------------------
No sockets and no protocol: every ``period`` of the injected clock the driver
reads ``station_model.read_tags()`` (engineering units, the contract in
common.md / sim_plc) and reports each signal of the I/O list through
``reading_from_value``, the same quality rules the network drivers apply. In
particular a 4-20 mA detector whose loop is open reads as the engineering value
of 0 mA; ``reading_from_value`` turns it back into raw counts with the signal's
own scaling (``Signal.to_raw``) and checks them against ``fault_raw``, so it is
BAD/SENSOR_FAULT here exactly as it is after a Modbus read.

It exists so procedure and engine tests, and fast virtual-time runs, need no
network: ``poll(now)`` reads once synchronously (a virtual-time runner calls it
between clock steps without any event loop), ``start()`` runs the same poll as
an asyncio task on the clock. ``set_link(False)`` simulates a lost link: every
tag goes BAD/COMMS_LOST at once, ``on_link(False)`` is called, polls report
nothing and writes raise DriverError until ``set_link(True)``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from ..clock import Clock
from ..errors import DriverError
from ..iolist import IOList
from ..tags import Quality, Reading, Reason, Value
from .base import (
    Driver,
    LinkCallback,
    LinkStats,
    ReadingsCallback,
    cancel_and_wait,
    command_signal,
    readable_signals,
    reading_from_value,
)

log = logging.getLogger(__name__)


class StationModelLike(Protocol):
    """What the loopback needs of a station model (sim_plc's station classes have it)."""

    def read_tags(self) -> Mapping[str, Value]: ...

    def write(self, tag: str, value: Value) -> None: ...


class LoopbackDriver:
    """A driver with no wire: see the module docstring."""

    def __init__(
        self,
        iolist: IOList,
        station_model: StationModelLike,
        clock: Clock,
        on_readings: ReadingsCallback,
        on_link: LinkCallback,
        *,
        period: float = 0.1,
    ) -> None:
        if not period > 0:
            raise ValueError(f"period must be positive, got {period}")
        self.iolist = iolist
        self.station = iolist.station
        self.model = station_model
        self.period = period
        self.stats = LinkStats()
        self._clock = clock
        self._on_readings = on_readings
        self._on_link = on_link
        self._signals = readable_signals(iolist)
        self._last: dict[str, Value] = {s.tag: (False if s.is_bit else 0.0) for s in self._signals}
        self._judged: dict[str, Reading] = {}  # last value judged per tag, to skip re-judging unchanged values
        self._link_wanted = True  # set_link: the simulated cable
        self._link_up = False  # what was last reported through on_link
        self._ever_up = False
        self._down_reported = False
        self._task: asyncio.Task[None] | None = None

    @property
    def link_up(self) -> bool:
        return self._link_up

    # -- synchronous use (virtual-time runners) -------------------------------------
    def poll(self, now: float) -> None:
        """Read every tag once and report it, stamped ``now``; nothing while the link is down."""
        if not self._link_wanted:
            return
        self.stats.requests += 1
        try:
            values = dict(self.model.read_tags())
        except Exception as exc:  # the model is the "PLC": its failure is a comms failure here
            self._go_down(now, f"station model read failed: {exc!r}")
            return
        readings: list[tuple[str, Reading]] = []
        judged = self._judged
        for sig in self._signals:
            tag = sig.tag
            if tag not in values:
                # The model did not report a signal the I/O list declares: the "PLC" says nothing
                # about it, so it cannot be trusted.
                readings.append((tag, Reading(self._last[tag], Quality.BAD, now, Reason.DEVICE_STATUS)))
                continue
            v = values[tag]
            prev = judged.get(tag)
            if prev is not None and prev.value == v and type(prev.value) is type(v):
                # unchanged: same quality verdict, fresh sample time (long virtual runs poll a lot)
                r = Reading(v, prev.quality, now, prev.reason)
            else:
                r = reading_from_value(sig, v, now)
                judged[tag] = r
            self._last[tag] = r.value
            readings.append((tag, r))
        if not self._link_up:
            if self._ever_up:
                self.stats.reconnects += 1
            self._link_up = self._ever_up = True
            self._down_reported = False
            self._on_link(True, now, "loopback connected")
        self._on_readings(readings)

    def set_link(self, up: bool) -> None:
        """Simulate the link going down (every tag BAD/COMMS_LOST) or coming back."""
        now = self._clock.now()
        self._link_wanted = up
        if up:
            self.poll(now)  # reports fresh values and on_link(True)
        else:
            self._go_down(now, "loopback link dropped (simulated)")

    def write_nowait(self, tag: str, value: Value) -> None:
        """``write`` without an event loop."""
        command_signal(self.iolist, self.station, tag)
        if not self._link_wanted:
            raise DriverError(f"{self.station}: link down, {tag} not written")
        self.stats.requests += 1
        try:
            self.model.write(tag, value)
        except Exception as exc:  # translate the model's refusal at the edge
            self.stats.failures += 1
            raise DriverError(f"{self.station}: model refused {tag}={value!r}: {exc}") from exc

    # -- the Driver interface ---------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"loopback:{self.station}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def write(self, tag: str, value: Value) -> None:
        self.write_nowait(tag, value)

    async def _run(self) -> None:
        next_t = self._clock.now()
        while True:
            try:
                self.poll(self._clock.now())
            except Exception:  # a consumer's bug must not stop the polling (poll() itself lets it through)
                log.exception("%s: loopback poll failed", self.station)
            next_t += self.period
            now = self._clock.now()
            if next_t < now:
                next_t = now
            await self._clock.sleep_until(next_t)

    def _go_down(self, now: float, detail: str) -> None:
        self.stats.failures += 1
        self.stats.last_error = detail
        if self._down_reported:
            return  # the same outage: reported once
        self._link_up = False
        self._down_reported = True
        self._on_readings([(s.tag, Reading(self._last[s.tag], Quality.BAD, now, Reason.COMMS_LOST)) for s in self._signals])
        self._on_link(False, now, detail)


if TYPE_CHECKING:  # mypy proves the class satisfies the Driver protocol of base.py

    def _is_a_driver(d: LoopbackDriver) -> Driver:
        return d
