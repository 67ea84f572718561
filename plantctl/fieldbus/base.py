"""The driver interface every fieldbus speaks.

A driver connects one station's PLC to the controller's tag table. It owns its
own I/O tasks (polling or subscriptions, reconnect with capped backoff) and
reports through two callbacks the runtime gives it:

- ``on_readings(list[(tag, Reading)])``: new samples, already scaled to
  engineering units and given a quality (a 4-20 mA loop outside its live-zero
  band is BAD/SENSOR_FAULT, and so is a NaN or infinite number; a value past its
  range is UNCERTAIN/OUT_OF_RANGE);
- ``on_link(up, t, detail)``: the link changed state. On a lost link the driver
  first reports every tag of the station BAD/COMMS_LOST, so nothing downstream
  keeps trusting the last value.

``write(tag, value)`` sends one command and returns when the PLC accepted it
(or raises DriverError / DriverTimeout). Verifying the command's effect (the
limit switch, the state) is the engine's job, from the feedback the I/O list
declares, not the driver's.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import DriverError
from ..iolist import IOList, Kind, Signal
from ..tags import Quality, Reading, Reason, Value

ReadingsCallback = Callable[[list[tuple[str, Reading]]], None]
LinkCallback = Callable[[bool, float, str], None]


@dataclass
class LinkStats:
    requests: int = 0
    failures: int = 0
    reconnects: int = 0
    last_error: str = ""


class Driver(Protocol):
    station: str
    iolist: IOList
    stats: LinkStats

    @property
    def link_up(self) -> bool: ...

    async def start(self) -> None:
        """Begin connecting and reading; returns at once (I/O runs in tasks)."""
        ...

    async def stop(self) -> None:
        """Stop every task and close the connection; leaves nothing running."""
        ...

    async def write(self, tag: str, value: Value) -> None: ...


def command_signal(iolist: IOList, station: str, tag: str) -> Signal:
    """The command output a write names; DriverError for an unknown tag or one that is not a
    command (an input is never written, whatever a caller asks)."""
    sig = iolist.by_tag.get(tag)
    if sig is None:
        raise DriverError(f"{station}: unknown tag {tag}")
    if sig.kind is not Kind.COMMAND_OUT:
        raise DriverError(f"{station}: {tag} is a {sig.kind.value}, not a command output")
    return sig


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel a driver's I/O task and wait until it has finished (its ``finally`` run)."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def readable_signals(iolist: IOList) -> list[Signal]:
    """Everything a driver reads back: inputs, states, and the command outputs'
    echo (so the HMI shows what the PLC really holds)."""
    return list(iolist.signals)


def reading_from_raw(sig: Signal, raw: int, t: float) -> Reading:
    """Scale a raw register/bit and give it a quality."""
    value = sig.from_raw(raw)
    if sig.raw_faulted(raw):
        return Reading(value, Quality.BAD, t, Reason.SENSOR_FAULT)
    return reading_from_value(sig, value, t)


def is_non_finite(value: object) -> bool:
    """A float that is NaN or infinite (never a bool or an int: those are always finite)."""
    return isinstance(value, float) and not math.isfinite(value)


def reading_from_value(sig: Signal, value: Value, t: float) -> Reading:
    """Quality for a value already in engineering units (OPC-UA, loopback)."""
    if is_non_finite(value):
        # NaN or +/-Inf is what a PLC or gateway sends for a failed channel or a failed
        # conversion; it is never a measurement. Judged before any scaling: Signal.to_raw
        # cannot turn it into counts, a range check lets NaN through (every comparison with
        # NaN is False), and int() of it raises. The value is kept as sent, under BAD.
        return Reading(value, Quality.BAD, t, Reason.SENSOR_FAULT)
    if sig.kind is Kind.ANALOG_IN and sig.range is not None and not isinstance(value, bool):
        lo, hi = sig.range
        span = hi - lo
        v = float(value)
        if sig.fault_raw is not None and sig.raw is not None:
            # live-zero loop: below the fault band means open loop / sensor fault
            raw = sig.to_raw(v)
            if sig.raw_faulted(raw):
                return Reading(v, Quality.BAD, t, Reason.SENSOR_FAULT)
        if v < lo - 0.01 * span or v > hi + 0.01 * span:
            return Reading(v, Quality.UNCERTAIN, t, Reason.OUT_OF_RANGE)
        return Reading(v, Quality.GOOD, t)
    return Reading(value, Quality.GOOD, t)
