"""Modbus TCP (and Modbus/TCP Security, TLS) driver for one station's PLC.

Theory of operation
-------------------
Read plan. At construction the I/O list's addresses are grouped per table
(discrete inputs, input registers, coils, holding registers) into runs of
*contiguous* wire offsets, and each run is cut into requests of at most 2000
bits or 125 registers (the protocol's limits for function codes 1-4). The plan
never bridges a gap: a PLC answers a read that touches an unmapped address with
exception 2 (illegal data address), so reading "through" a hole would fail the
whole block. The result is the fewest requests that can read every signal, and
it is exposed (``plan``, ``requests_per_cycle``) so a test can count them.

Scan classes. A signal belongs to a class by the first matching tag prefix in
``scan_rules`` (default: gas detectors, ESD/limit-switch feedback, states and
fire/flow switches are ``fast``); a class not named in ``scan_classes`` falls
back to ``default``, which polls at ``period``. Each class is planned
separately (a run split across two classes costs a request more) and polled by
its own loop on the injected clock, so thousands of slow diagnostics never
delay a detector. With ``scan_classes=None`` there is one class, ``default``.

Link supervision. One task owns the connection:

    connect -> read every block once -> on_link(True) -> poll loops
       ^                                                     | any failure
       +---- sleep backoff (doubling, capped) <-- outage <---+

Any failure (connect refused or timed out, a request that has no answer within
``timeout``, a dropped connection, an exception response or a short answer for
a mapped block, anything pymodbus raises) is an *outage*: every tag of the
station is reported BAD/COMMS_LOST at once (keeping its last value for
display), ``on_link(False, t, detail)`` is called once for the outage, the
client is closed (a confused transaction state is never reused) and a fresh
client is built after the backoff. pymodbus's own reconnect is disabled
(``reconnect_delay=0``): reconnecting is this driver's job, so there is one
place that decides. The backoff is reset only after a complete successful read,
so a PLC that accepts connections but answers every read with an exception does
not make the driver hammer it.

Time. Every reading is stamped with ``clock.now()`` when its answer arrived,
loops wait with ``clock.sleep_until``; the per-request timeout is an
``asyncio.wait_for`` because it bounds a socket wait, which only the event loop
can interrupt.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymodbus.client import AsyncModbusTcpClient, AsyncModbusTlsClient

from ..clock import Clock
from ..errors import DriverError, DriverTimeout
from ..iolist import CommandType, IOList, Kind, ModbusTable, Signal
from ..tags import Quality, Reading, Reason, Value
from .base import Driver, LinkCallback, LinkStats, ReadingsCallback, readable_signals, reading_from_raw

log = logging.getLogger(__name__)

MAX_REGISTERS_PER_READ = 125  # function codes 3 and 4
MAX_BITS_PER_READ = 2000  # function codes 1 and 2

# Read order within a cycle: inputs first (they carry the process state the
# engine decides on), then the command echoes.
TABLE_ORDER: tuple[ModbusTable, ...] = (
    ModbusTable.DISCRETE_INPUT,
    ModbusTable.INPUT_REGISTER,
    ModbusTable.COIL,
    ModbusTable.HOLDING_REGISTER,
)

DEFAULT_CLASS = "default"
FAST_CLASS = "fast"

# Tag prefix -> scan class. Gas detectors, valve limit switches (ESD feedback),
# equipment states, fire and ventilation switches are what a trip decision
# waits on. First match wins.
DEFAULT_SCAN_RULES: tuple[tuple[str, str], ...] = (
    ("GD-", FAST_CLASS),
    ("ZSO-", FAST_CLASS),
    ("ZSC-", FAST_CLASS),
    ("ZS-", FAST_CLASS),
    ("XS-", FAST_CLASS),
    ("TS-", FAST_CLASS),
    ("UV-", FAST_CLASS),
    ("FS-", FAST_CLASS),
)


@dataclass(frozen=True)
class ReadBlock:
    """One read request: ``count`` consecutive items of ``table`` from wire offset ``start``."""

    table: ModbusTable
    start: int
    count: int
    signals: tuple[Signal, ...]  # signals[i] sits at offset start + i

    @property
    def is_bits(self) -> bool:
        return self.table in (ModbusTable.COIL, ModbusTable.DISCRETE_INPUT)


@dataclass(frozen=True)
class ScanClass:
    name: str
    period: float
    blocks: tuple[ReadBlock, ...]

    @property
    def tags(self) -> list[str]:
        return [s.tag for b in self.blocks for s in b.signals]


def plan_reads(signals: Iterable[Signal]) -> list[ReadBlock]:
    """The fewest read requests that cover ``signals`` without touching an unmapped address."""
    by_table: dict[ModbusTable, list[Signal]] = {t: [] for t in TABLE_ORDER}
    for sig in signals:
        by_table[sig.table].append(sig)
    blocks: list[ReadBlock] = []
    for table in TABLE_ORDER:
        limit = MAX_BITS_PER_READ if table in (ModbusTable.COIL, ModbusTable.DISCRETE_INPUT) else MAX_REGISTERS_PER_READ
        sigs = sorted(by_table[table], key=lambda s: s.offset)
        run: list[Signal] = []
        for sig in sigs:
            if run and (sig.offset != run[-1].offset + 1 or len(run) == limit):
                blocks.append(ReadBlock(table, run[0].offset, len(run), tuple(run)))
                run = []
            run.append(sig)
        if run:
            blocks.append(ReadBlock(table, run[0].offset, len(run), tuple(run)))
    return blocks


def minimum_requests(signals: Iterable[Signal]) -> int:
    """The lower bound of read requests for ``signals``: each contiguous run per table,
    divided by the per-request limit, rounded up."""
    offsets: dict[ModbusTable, set[int]] = {}
    for sig in signals:
        offsets.setdefault(sig.table, set()).add(sig.offset)
    total = 0
    for table, offs in offsets.items():
        limit = MAX_BITS_PER_READ if table in (ModbusTable.COIL, ModbusTable.DISCRETE_INPUT) else MAX_REGISTERS_PER_READ
        run = 0
        for off in sorted(offs):
            if run and off - 1 not in offs:
                total += math.ceil(run / limit)
                run = 0
            run += 1
        if run:
            total += math.ceil(run / limit)
    return total


def scan_class_of(sig: Signal, rules: Sequence[tuple[str, str]], classes: Iterable[str]) -> str:
    known = set(classes)
    for prefix, name in rules:
        if sig.tag.startswith(prefix) and name in known:
            return name
    return DEFAULT_CLASS


class _LinkFailure(Exception):
    """Internal: the link failed; the message is the detail reported to on_link."""


def _raise_if_cancelled() -> None:
    """Re-raise a cancellation that was swallowed on its way in.

    Python 3.11's ``asyncio.wait_for`` drops a cancel that races with its inner result,
    and asyncua's own clean-up swallows a CancelledError that arrives while it awaits
    its tasks. Either would leave this driver's task running after ``stop()``. The task
    still counts the request (``Task.cancelling()``), so honour it at the next step.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class ModbusDriver:
    """Polls one station's PLC over Modbus TCP (optionally TLS); see the module docstring."""

    def __init__(
        self,
        iolist: IOList,
        host: str,
        port: int,
        clock: Clock,
        on_readings: ReadingsCallback,
        on_link: LinkCallback,
        *,
        unit_id: int | None = None,
        timeout: float = 0.5,
        period: float = 0.1,
        backoff_initial: float = 0.2,
        backoff_max: float = 5.0,
        tls: ssl.SSLContext | None = None,
        scan_classes: dict[str, float] | None = None,
        scan_rules: Sequence[tuple[str, str]] = DEFAULT_SCAN_RULES,
    ) -> None:
        if not timeout > 0 or not period > 0:
            raise ValueError("timeout and period must be positive")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        self.iolist = iolist
        self.station = iolist.station
        self.host = host
        self.port = port
        self.unit_id = iolist.unit_id if unit_id is None else unit_id
        self.timeout = timeout
        self.period = period
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stats = LinkStats()
        self._clock = clock
        self._on_readings = on_readings
        self._on_link = on_link
        self._tls = tls

        periods: dict[str, float] = {DEFAULT_CLASS: period}
        for name, p in (scan_classes or {}).items():
            if not p > 0:
                raise ValueError(f"scan class {name}: period must be positive, got {p}")
            periods[name] = p
        members: dict[str, list[Signal]] = {name: [] for name in periods}
        self._signals = readable_signals(iolist)
        for sig in self._signals:
            members[scan_class_of(sig, scan_rules, periods)].append(sig)
        self.classes: dict[str, ScanClass] = {
            name: ScanClass(name, periods[name], tuple(plan_reads(sigs)))
            for name, sigs in members.items()
            if sigs
        }
        self._last: dict[str, Value] = {s.tag: (False if s.is_bit else 0.0) for s in self._signals}
        self._client: AsyncModbusTcpClient | None = None
        self._task: asyncio.Task[None] | None = None
        self._link_up = False
        self._ever_up = False
        self._down_reported = False

    # -- plan ---------------------------------------------------------------
    @property
    def plan(self) -> list[ReadBlock]:
        """Every read request of one full cycle (all scan classes)."""
        return [b for sc in self.classes.values() for b in sc.blocks]

    @property
    def requests_per_cycle(self) -> int:
        return len(self.plan)

    @property
    def link_up(self) -> bool:
        return self._link_up

    # -- lifecycle ----------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"modbus:{self.station}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._close_client()
        self._link_up = False

    async def __aenter__(self) -> ModbusDriver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- writes -------------------------------------------------------------
    async def write(self, tag: str, value: Value) -> None:
        """Write one command_out (coil or holding register); returns once the PLC accepted it."""
        sig = self.iolist.by_tag.get(tag)
        if sig is None:
            raise DriverError(f"{self.station}: unknown tag {tag}")
        if sig.kind is not Kind.COMMAND_OUT:
            raise DriverError(f"{self.station}: {tag} is a {sig.kind.value}, not a command output")
        raw = _command_raw(sig, value)
        client = self._client
        if client is None or not self._link_up or not client.connected:
            raise DriverError(f"{self.station}: link down, {tag} not written")
        self.stats.requests += 1
        try:
            if sig.table is ModbusTable.COIL:
                coro = client.write_coil(sig.offset, bool(raw), device_id=self.unit_id)
            else:
                coro = client.write_register(sig.offset, raw, device_id=self.unit_id)
            resp = await asyncio.wait_for(coro, self.timeout)
            _raise_if_cancelled()
        except TimeoutError as exc:
            self.stats.failures += 1
            raise DriverTimeout(f"{self.station}: no answer writing {tag} within {self.timeout} s") from exc
        except Exception as exc:  # pymodbus raises ModbusException and OSError subclasses
            self.stats.failures += 1
            raise DriverError(f"{self.station}: writing {tag} failed: {exc}") from exc
        if resp.isError():
            self.stats.failures += 1
            code = getattr(resp, "exception_code", "?")
            raise DriverError(f"{self.station}: PLC refused {tag}={value!r} (exception code {code})")

    # -- the link task --------------------------------------------------------
    def _make_client(self) -> AsyncModbusTcpClient:
        # retries=0 and reconnect_delay=0: this driver decides on retries and reconnects.
        if self._tls is not None:
            return AsyncModbusTlsClient(
                self.host, port=self.port, sslctx=self._tls, timeout=self.timeout, retries=0, reconnect_delay=0
            )
        return AsyncModbusTcpClient(self.host, port=self.port, timeout=self.timeout, retries=0, reconnect_delay=0)

    def _close_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a broken transport must never stop the driver
                log.debug("%s: error closing the Modbus client", self.station, exc_info=True)

    async def _run(self) -> None:
        delay = self.backoff_initial
        while True:
            detail = ""
            try:
                await self._connect()
                first = await self._read_all_once()
                delay = self.backoff_initial  # a full good read: the link is healthy
                self._set_up()  # before the readings: nobody sees GOOD values on a link still "down"
                self._emit(first)
                await self._poll_classes()
            except _LinkFailure as exc:
                detail = str(exc)
            finally:
                self._close_client()
            _raise_if_cancelled()
            self._outage(detail)
            await self._clock.sleep_until(self._clock.now() + delay)
            delay = min(delay * 2, self.backoff_max)

    async def _connect(self) -> None:
        client = self._make_client()
        self._client = client
        try:
            ok = await asyncio.wait_for(client.connect(), self.timeout)
        except TimeoutError:
            raise _LinkFailure(f"connect to {self.host}:{self.port} timed out after {self.timeout} s") from None
        except Exception as exc:
            raise _LinkFailure(f"connect to {self.host}:{self.port} failed: {exc}") from None
        if not ok or not client.connected:
            raise _LinkFailure(f"cannot connect to {self.host}:{self.port}")

    async def _read_all_once(self) -> list[tuple[str, Reading]]:
        readings: list[tuple[str, Reading]] = []
        for sc in self.classes.values():
            readings += await self._scan(sc)
        return readings

    async def _poll_classes(self) -> None:
        tasks = [
            asyncio.get_running_loop().create_task(self._poll(sc), name=f"modbus:{self.station}:{sc.name}")
            for sc in self.classes.values()
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # re-raises the _LinkFailure that ended the loop
            raise _LinkFailure("poll loops ended")  # they never return normally
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _poll(self, sc: ScanClass) -> None:
        next_t = self._clock.now() + sc.period
        while True:
            await self._clock.sleep_until(next_t)
            self._emit(await self._scan(sc))
            next_t += sc.period
            now = self._clock.now()
            if next_t < now:
                # Overrun: poll again at once, but never burst to catch up. sleep_until
                # still yields when already due, so one slow class cannot starve another.
                next_t = now

    async def _scan(self, sc: ScanClass) -> list[tuple[str, Reading]]:
        """Read every block of one class; the readings, stamped at each block's receipt."""
        readings: list[tuple[str, Reading]] = []
        for block in sc.blocks:
            raws = await self._read_block(block)
            t = self._clock.now()
            for sig, raw in zip(block.signals, raws, strict=True):
                r = reading_from_raw(sig, raw, t)
                self._last[sig.tag] = r.value
                readings.append((sig.tag, r))
        return readings

    async def _read_block(self, block: ReadBlock) -> list[int]:
        client = self._client
        if client is None or not client.connected:
            raise _LinkFailure("connection lost")
        self.stats.requests += 1
        where = f"{block.table.value} {block.start}+{block.count}"
        try:
            if block.table is ModbusTable.DISCRETE_INPUT:
                coro = client.read_discrete_inputs(block.start, count=block.count, device_id=self.unit_id)
            elif block.table is ModbusTable.COIL:
                coro = client.read_coils(block.start, count=block.count, device_id=self.unit_id)
            elif block.table is ModbusTable.INPUT_REGISTER:
                coro = client.read_input_registers(block.start, count=block.count, device_id=self.unit_id)
            else:
                coro = client.read_holding_registers(block.start, count=block.count, device_id=self.unit_id)
            resp: Any = await asyncio.wait_for(coro, self.timeout)
        except TimeoutError:
            _raise_if_cancelled()
            raise _LinkFailure(f"no answer reading {where} within {self.timeout} s") from None
        except Exception as exc:  # ModbusIOException, ConnectionException, OSError, decoding errors
            raise _LinkFailure(f"reading {where} failed: {exc!r}") from None
        _raise_if_cancelled()
        if resp.isError():
            code = getattr(resp, "exception_code", "?")
            raise _LinkFailure(f"PLC answered {where} with exception code {code}")
        if block.is_bits:
            bits = list(resp.bits)
            if len(bits) < block.count:
                raise _LinkFailure(f"short answer for {where}: {len(bits)} bits")
            return [1 if b else 0 for b in bits[: block.count]]
        regs = list(resp.registers)
        if len(regs) != block.count:
            raise _LinkFailure(f"wrong answer length for {where}: {len(regs)} registers")
        return [int(r) for r in regs]

    # -- link state and callbacks ----------------------------------------------
    def _set_up(self) -> None:
        if self._link_up:
            return
        if self._ever_up:
            self.stats.reconnects += 1
        self._link_up = True
        self._ever_up = True
        self._down_reported = False
        log.info("%s: Modbus link up (%s:%s)", self.station, self.host, self.port)
        self._call_link(True, self._clock.now(), f"connected to {self.host}:{self.port}")

    def _outage(self, detail: str) -> None:
        self.stats.failures += 1
        self.stats.last_error = detail
        if not self._link_up and self._down_reported:
            return  # the same outage goes on: already reported once
        self._link_up = False
        self._down_reported = True
        t = self._clock.now()
        # A link that was never up leaves its tags NOT_CONNECTED; one that was up lost comms.
        reason = Reason.COMMS_LOST if self._ever_up else Reason.NOT_CONNECTED
        self._emit([(s.tag, Reading(self._last[s.tag], Quality.BAD, t, reason)) for s in self._signals])
        log.warning("%s: Modbus link down: %s", self.station, detail)
        self._call_link(False, t, detail)

    def _emit(self, readings: list[tuple[str, Reading]]) -> None:
        if not readings:
            return
        try:
            self._on_readings(readings)
        except Exception:  # a consumer's bug must not stop the polling of a safety signal
            log.exception("%s: on_readings callback failed", self.station)

    def _call_link(self, up: bool, t: float, detail: str) -> None:
        try:
            self._on_link(up, t, detail)
        except Exception:
            log.exception("%s: on_link callback failed", self.station)


def _command_raw(sig: Signal, value: Value) -> int:
    """The raw value for a command, refusing what the PLC would refuse anyway."""
    if sig.is_bit:
        if not isinstance(value, bool | int) or value not in (0, 1):
            raise DriverError(f"{sig.tag}: a bool command takes true/false, got {value!r}")
        return 1 if value else 0
    if sig.type is CommandType.ENUM:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DriverError(f"{sig.tag}: an enum command takes a state index, got {value!r}")
        n = len(sig.states or [])
        if not 0 <= value < n:
            raise DriverError(f"{sig.tag}: state index {value} outside 0..{n - 1}")
        return value
    v = float(value)
    if sig.range is None or not math.isfinite(v) or not sig.range[0] <= v <= sig.range[1]:
        raise DriverError(f"{sig.tag}: {value!r} outside the range {sig.range}")
    return sig.to_raw(v)


if TYPE_CHECKING:  # mypy proves the class satisfies the Driver protocol of base.py

    def _is_a_driver(d: ModbusDriver) -> Driver:
        return d
