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
The loops share one connection, one read on the wire at a time; when several
wait, the fastest class reads first (``_FastestFirst``), and a command write
waits for no queued read at all, only for the one on the wire.

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

Decoding. Each block carries a ``BlockDecoder``: the scaling, live-zero and range
checks of ``reading_from_raw`` as arrays, so a 125-register answer is decoded by
a handful of numpy operations. Given ``on_columns`` the driver hands the runtime
those arrays (the tag table stores them as they are, see plantctl.tags); without
it, it builds one ``Reading`` per signal with ``reading_from_raw`` as before.
Both give the same values and qualities (tests/plantctl/test_columns.py).

Time. Every reading is stamped with ``clock.now()`` when its answer arrived,
loops wait with ``clock.sleep_until``; the per-request timeout is an
``asyncio.wait_for`` because it bounds a socket wait, which only the event loop
can interrupt.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
import math
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pymodbus.client import AsyncModbusTcpClient, AsyncModbusTlsClient

from ..clock import Clock
from ..errors import DriverError, DriverTimeout
from ..iolist import CommandType, IOList, Kind, ModbusTable, Signal
from ..tags import BOOL, FLOAT, INT, REASON_CODE, CodeArray, FloatArray, Quality, Reading, Reason, Value
from .base import (
    Driver,
    LinkCallback,
    LinkStats,
    ReadingsCallback,
    cancel_and_wait,
    command_signal,
    readable_signals,
    reading_from_raw,
)

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


# A block of decoded readings: tags, values (float), value types, quality codes, reason
# codes (plantctl.tags column codes), and the sample time of the whole block.
ColumnsCallback = Callable[[tuple[str, ...], FloatArray, CodeArray, CodeArray, CodeArray, float], None]

_GOOD, _UNCERTAIN, _BAD = int(Quality.GOOD), int(Quality.UNCERTAIN), int(Quality.BAD)
_SENSOR_FAULT, _OUT_OF_RANGE = REASON_CODE[Reason.SENSOR_FAULT], REASON_CODE[Reason.OUT_OF_RANGE]


class BlockDecoder:
    """``reading_from_raw`` for every signal of one read block, on arrays.

    Same floating-point operations in the same order as ``Signal.from_raw``,
    ``Signal.to_raw`` and ``reading_from_value``, so each value and quality is the one
    the per-signal functions give."""

    def __init__(self, signals: Sequence[Signal]) -> None:
        self.tags: tuple[str, ...] = tuple(s.tag for s in signals)
        n = len(signals)
        nan = math.nan
        scaled = [not s.is_bit and not s.is_enum for s in signals]
        self.scaled = np.array(scaled, dtype=np.bool_)
        self.vtype = np.array([BOOL if s.is_bit else INT if s.is_enum else FLOAT for s in signals], dtype=np.int8)
        self.all_bits = bool(n) and all(s.is_bit for s in signals)
        self.e_lo = np.array([s.range[0] if sc and s.range else nan for s, sc in zip(signals, scaled, strict=True)])
        self.e_span = np.array([s.range[1] - s.range[0] if sc and s.range else nan
                                for s, sc in zip(signals, scaled, strict=True)])
        self.r_lo = np.array([float(s.raw[0]) if sc and s.raw else nan for s, sc in zip(signals, scaled, strict=True)])
        self.r_span = np.array([float(s.raw[1] - s.raw[0]) if sc and s.raw else nan
                                for s, sc in zip(signals, scaled, strict=True)])
        self.f_lo = np.array([float(s.fault_raw[0]) if s.fault_raw else -math.inf for s in signals])
        self.f_hi = np.array([float(s.fault_raw[1]) if s.fault_raw else math.inf for s in signals])
        # analog inputs: the range check, and the live-zero check of the value turned back to raw
        checked = [s.kind is Kind.ANALOG_IN and s.range is not None for s in signals]
        self.checked = np.array(checked, dtype=np.bool_)
        # reading_from_value turns the value back into raw counts and checks the live-zero band
        # again; where that round trip gives back every raw count of the band the check cannot
        # fire, and is skipped (decided once per scaling)
        self.refault = np.array([c and s.fault_raw is not None and s.raw is not None and s.range is not None
                                 and not _round_trip_exact(s.range, s.raw, s.fault_raw)
                                 for s, c in zip(signals, checked, strict=True)], dtype=np.bool_)
        self.any_refault = bool(self.refault.any())
        self.lo_lim = np.array([s.range[0] - 0.01 * (s.range[1] - s.range[0]) if c and s.range else -math.inf
                                for s, c in zip(signals, checked, strict=True)])
        self.hi_lim = np.array([s.range[1] + 0.01 * (s.range[1] - s.range[0]) if c and s.range else math.inf
                                for s, c in zip(signals, checked, strict=True)])
        self.any_scaled = bool(self.scaled.any())
        self.any_checked = bool(self.checked.any())
        self._good = np.full(n, _GOOD, dtype=np.int8)
        self._none = np.zeros(n, dtype=np.int8)

    def decode(self, raws: Sequence[int]) -> tuple[FloatArray, CodeArray, CodeArray]:
        """Values (floats; bools 0/1, enums their index), quality codes, reason codes."""
        raw = np.asarray(raws, dtype=np.float64)
        faulted = (raw < self.f_lo) | (raw > self.f_hi)
        if self.all_bits:
            value = (raw != 0).astype(np.float64)
        elif self.any_scaled:
            scaled = self.e_lo + (raw - self.r_lo) * self.e_span / self.r_span
            value = np.where(self.scaled, scaled, raw)
        else:
            value = raw
        if not self.any_checked and not faulted.any():
            return value, self._good, self._none
        quality = self._good.copy()
        reason = self._none.copy()
        if self.any_checked:
            with np.errstate(invalid="ignore"):
                out = self.checked & ((value < self.lo_lim) | (value > self.hi_lim))
            quality[out] = _UNCERTAIN
            reason[out] = _OUT_OF_RANGE
            if self.any_refault:
                with np.errstate(invalid="ignore"):
                    back = np.clip(np.round(self.r_lo + (value - self.e_lo) * self.r_span / self.e_span), 0, 65535)
                faulted |= self.refault & ((back < self.f_lo) | (back > self.f_hi))
        quality[faulted] = _BAD
        reason[faulted] = _SENSOR_FAULT
        return value, quality, reason


@functools.lru_cache(maxsize=256)
def _round_trip_exact(rng: tuple[float, float], raw: tuple[int, int], fault_raw: tuple[int, int]) -> bool:
    """Does ``to_raw(from_raw(r)) == r`` hold for every raw count r inside the live-zero band?
    (The arithmetic of ``Signal.from_raw``/``to_raw``, on the whole band at once.)"""
    (e_lo, e_hi), (r_lo, r_hi) = rng, raw
    r = np.arange(fault_raw[0], fault_raw[1] + 1, dtype=np.float64)
    v = e_lo + (r - r_lo) * (e_hi - e_lo) / (r_hi - r_lo)
    back = np.clip(np.round(r_lo + (v - e_lo) * (r_hi - r_lo) / (e_hi - e_lo)), 0, 65535)
    return bool((back == r).all())


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


class _FastestFirst:
    """One read on the wire at a time; of the reads waiting, the fastest scan class goes first.

    pymodbus serves concurrent requests first come, first served (its own lock), so a fast
    class's poll could wait behind the slow classes' blocks queued before it. Here the reads
    queue by (period, arrival): a detector poll waits at most for the one read on the wire.
    Command writes do not pass through this gate at all (they take pymodbus's lock directly,
    behind at most the read on the wire)."""

    def __init__(self) -> None:
        self._busy = False
        self._waiting: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    @contextlib.asynccontextmanager
    async def hold(self, period: float) -> AsyncIterator[None]:
        if self._busy or self._waiting:
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (period, next(self._seq), fut))
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._hand_on()  # the gate was handed to us as we were cancelled: pass it on
                raise
        else:
            self._busy = True
        try:
            yield
        finally:
            self._hand_on()

    def _hand_on(self) -> None:
        while self._waiting:
            _, _, fut = heapq.heappop(self._waiting)
            if not fut.done():  # a cancelled waiter is skipped
                fut.set_result(None)  # still busy: the gate goes straight to the next reader
                return
        self._busy = False


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
        on_columns: ColumnsCallback | None = None,
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
        self._on_columns = on_columns
        self._read_gate = _FastestFirst()
        self._decoders: dict[int, BlockDecoder] = {id(b): BlockDecoder(b.signals) for b in self.plan}
        self._block_last: dict[int, FloatArray] = {}  # columns mode: last values per block (for an outage)
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
        await cancel_and_wait(task)
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
        sig = command_signal(self.iolist, self.station, tag)
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
        """Read every block of one class; the readings, stamped at each block's receipt.
        With ``on_columns`` each block goes out as arrays at once and nothing is returned."""
        readings: list[tuple[str, Reading]] = []
        for block in sc.blocks:
            raws = await self._read_block(block, sc.period)
            t = self._clock.now()
            if self._on_columns is not None:
                dec = self._decoders[id(block)]
                value, quality, reason = dec.decode(raws)
                self._block_last[id(block)] = value
                try:
                    self._on_columns(dec.tags, value, dec.vtype, quality, reason, t)
                except Exception:  # a consumer's bug must not stop the polling of a safety signal
                    log.exception("%s: on_columns callback failed", self.station)
                continue
            for sig, raw in zip(block.signals, raws, strict=True):
                r = reading_from_raw(sig, raw, t)
                self._last[sig.tag] = r.value
                readings.append((sig.tag, r))
        return readings

    async def _read_block(self, block: ReadBlock, period: float = 0.0) -> list[int]:
        # One read at a time is handed to pymodbus, whose own lock serves requests first come,
        # first served: a command write then waits at most for the read on the wire, never
        # for the polls of every scan class queued behind it (the trip path first); and of
        # the reads waiting, the fastest class's goes first.
        async with self._read_gate.hold(period):
            return await self._read_block_now(block)

    async def _read_block_now(self, block: ReadBlock) -> list[int]:
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
        for block in self.plan:  # columns mode: the last values are in the blocks' arrays
            last = self._block_last.pop(id(block), None)
            if last is not None:
                dec = self._decoders[id(block)]
                for sig, v, ty in zip(block.signals, last.tolist(), dec.vtype.tolist(), strict=True):
                    self._last[sig.tag] = bool(v) if ty == BOOL else int(v) if ty == INT else v
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
