"""Readings with quality: nothing downstream ever sees a bare number.

Every value the controller holds is a ``Reading``: the value, its quality
(GOOD, UNCERTAIN, BAD) with the reason when it is not GOOD, and the plant time
of the sample. Quality is ordered worst-first, so ``min()`` over qualities is the
quality of anything derived from them.

``TagTable`` holds the latest reading of every tag. Drivers write into it; the
engine takes an immutable snapshot once per scan and marks readings that have
not been refreshed within ``stale_after`` seconds as BAD/STALE (no silent
staleness: a value that stopped arriving does not keep looking good). Rows the
runtime *holds* BAD (``hold_bad``: a PLC whose heartbeat froze) are reported BAD
with the hold's reason in every snapshot until released, whatever the driver
keeps writing; the table keeps the real readings, so a release shows them again.

Storage (why columns)
---------------------
A site of ten thousand tags refreshes every one of them ten times a second, and
every scan checks every alarm limit. One Python object per reading and one
Python loop per check cost milliseconds a scan; the same work on arrays costs
microseconds. So the table keeps its readings as *columns* (numpy arrays over a
fixed key order: value, value type, quality, reason, sample time) next to a
cache of ``Reading`` objects:

- ``update`` (loopback, OPC-UA) keeps the caller's ``Reading`` and marks the row
  dirty; the columns catch up once, at the next snapshot (a tag refreshed ten
  times between two scans costs one conversion);
- ``update_columns`` (the Modbus driver decodes whole blocks with numpy) writes
  the columns directly and drops the cached objects; a ``Reading`` is built only
  when someone asks for that tag;
- ``snapshot`` copies the columns (microseconds), applies staleness on the arrays
  and returns a ``TableSnapshot``: an immutable ``Mapping[str, Reading]`` that
  builds each ``Reading`` on first access, and whose ``columns`` feed the
  vectorised limit and alarm checks of the engine.

A ``Reading`` read back is equal to the one written: values keep their type
(float, int, bool), qualities and reasons their enum members.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from enum import IntEnum, StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

Value = float | int | bool


class Quality(IntEnum):
    BAD = 0
    UNCERTAIN = 1
    GOOD = 2


class Reason(StrEnum):
    NONE = ""
    NOT_CONNECTED = "not connected"  # never read since start
    COMMS_LOST = "comms lost"
    OUT_OF_RANGE = "out of range"
    SENSOR_FAULT = "sensor fault"
    STALE = "stale"
    DEVICE_STATUS = "device status"  # the server said so (OPC-UA status code)
    BYPASSED = "bypassed"
    # The link answers but the PLC's I/O heartbeat stopped changing (plantctl.heartbeat): the
    # values are served, look fresh, and cannot be trusted. Not STALE: a stale value stopped
    # arriving (link side), a frozen one keeps arriving unchanged (PLC side); the operator's
    # first check differs (the network vs the PLC CPU). Added last: codes are positions.
    PLC_FROZEN = "PLC frozen"


@dataclass(frozen=True, slots=True)
class Reading:
    value: Value
    quality: Quality
    t: float  # plant time of the sample (controller clock)
    reason: Reason = Reason.NONE

    @property
    def good(self) -> bool:
        return self.quality is Quality.GOOD

    @property
    def bad(self) -> bool:
        return self.quality is Quality.BAD

    def age(self, now: float) -> float:
        return now - self.t


def bad(reason: Reason, t: float, value: Value = 0.0) -> Reading:
    return Reading(value, Quality.BAD, t, reason)


Snapshot = Mapping[str, Reading]

# -- columns ---------------------------------------------------------------------------------
# Value type codes of the ``vtype`` column. OBJECT: a value that is none of the three (kept
# as given in the object cache; the value column holds NaN). MISSING: no reading at all
# (only in columns built from a mapping that lacks the key).
FLOAT, INT, BOOL, OBJECT, MISSING = 0, 1, 2, 3, 4
NO_QUALITY = -1  # quality column where the reading is missing

QUALITIES: tuple[Quality, ...] = tuple(Quality)  # indexed by the quality code
REASONS: tuple[Reason, ...] = tuple(Reason)  # indexed by the reason code
REASON_CODE: dict[Reason, int] = {r: i for i, r in enumerate(REASONS)}
_CAST: tuple[Any, ...] = (float, int, bool)
_VTYPE: dict[type, int] = {float: FLOAT, int: INT, bool: BOOL}

FloatArray = npt.NDArray[np.float64]
CodeArray = npt.NDArray[np.int8]
IndexArray = npt.NDArray[np.intp]


@dataclass(frozen=True, slots=True)
class Columns:
    """A snapshot as arrays over a fixed key order, for vectorised checks.

    ``value`` is the reading's value as a float (bools 0/1; NaN where missing or not a
    number), ``vtype`` says what it was (FLOAT, INT, BOOL, OBJECT, MISSING), ``quality``
    and ``reason`` are the enum codes (quality -1 where missing)."""

    keys: tuple[str, ...]
    value: FloatArray
    vtype: CodeArray
    quality: CodeArray
    reason: CodeArray

    @property
    def present(self) -> npt.NDArray[np.bool_]:
        return np.not_equal(self.vtype, MISSING)

    @property
    def number(self) -> npt.NDArray[np.bool_]:
        """A numeric, non-bool value is present (what analog checks need)."""
        return self.vtype <= INT


def _encode(v: Any) -> tuple[float, int]:
    """A value as (float, type code)."""
    cls = v.__class__
    if cls is float:
        return v, FLOAT
    if cls is bool:
        return (1.0 if v else 0.0), BOOL
    if cls is int:
        return (float(v), INT) if -(2**53) <= v <= 2**53 else (math.nan, OBJECT)
    if isinstance(v, bool):
        return (1.0 if v else 0.0), BOOL
    if isinstance(v, float):
        return float(v), FLOAT
    if isinstance(v, int):
        return float(v), INT
    return math.nan, OBJECT


def columns_of(snapshot: Mapping[str, Reading], keys: tuple[str, ...]) -> Columns:
    """Columns of ``snapshot`` in the order of ``keys`` (taken from the arrays of a
    ``TableSnapshot`` when it has them; built reading by reading otherwise)."""
    if isinstance(snapshot, TableSnapshot):
        return snapshot.columns_for(keys)
    return _columns_from(snapshot, keys)


def _columns_from(snapshot: Mapping[str, Reading], keys: tuple[str, ...]) -> Columns:
    n = len(keys)
    value = np.full(n, math.nan)
    vtype = np.full(n, MISSING, np.int8)
    quality = np.full(n, NO_QUALITY, np.int8)
    reason = np.zeros(n, np.int8)
    get = snapshot.get
    for i, k in enumerate(keys):
        r = get(k)
        if r is None:
            continue
        value[i], vtype[i] = _encode(r.value)
        quality[i] = int(r.quality)
        reason[i] = REASON_CODE.get(r.reason, 0)
    return Columns(keys, value, vtype, quality, reason)


class TableSnapshot(Mapping[str, Reading]):
    """An immutable view of the table at one scan (see the module docstring). A table whose
    columns are not kept (``TagTable.columns_live``) gives snapshots of objects only: the
    arrays are None and ``columns_for`` builds columns from the readings."""

    __slots__ = ("_keys", "_index", "_value", "_vtype", "_quality", "_reason", "_t", "_obj", "_gather")

    def __init__(
        self,
        keys: tuple[str, ...],
        index: dict[str, int],
        value: FloatArray | None,
        vtype: CodeArray | None,
        quality: CodeArray | None,
        reason: CodeArray | None,
        t: FloatArray | None,
        obj: list[Reading | None],
        gather: dict[int, tuple[tuple[str, ...], IndexArray | None]],
    ) -> None:
        self._keys = keys
        self._index = index
        self._value = value
        self._vtype = vtype
        self._quality = quality
        self._reason = reason
        self._t = t
        self._obj = obj
        self._gather = gather  # shared with the table: key order -> rows (None: same order)

    def _make(self, i: int) -> Reading:
        r = self._obj[i]
        if r is None:
            assert self._value is not None and self._vtype is not None and self._quality is not None
            assert self._t is not None and self._reason is not None
            r = Reading(
                _CAST[self._vtype.item(i)](self._value.item(i)),
                QUALITIES[self._quality.item(i)],
                self._t.item(i),
                REASONS[self._reason.item(i)],
            )
            self._obj[i] = r
        return r

    def __getitem__(self, key: str) -> Reading:
        i = self._index[key]
        r = self._obj[i]
        return r if r is not None else self._make(i)

    def get(self, key: str, default: Any = None) -> Any:
        i = self._index.get(key)
        if i is None:
            return default
        r = self._obj[i]
        return r if r is not None else self._make(i)

    def prefetch(self, keys: tuple[str, ...]) -> None:
        """Build the readings of ``keys`` now, in one pass over the arrays (cheaper than one
        by one on first access); keys this table lacks are ignored."""
        if self._value is None or self._vtype is None or self._quality is None or self._t is None:
            return
        assert self._reason is not None
        rows = self._rows(keys)
        obj = self._obj
        need = [i for i in (range(len(obj)) if rows is None else rows.tolist()) if i >= 0 and obj[i] is None]
        if not need:
            return
        idx = np.array(need, dtype=np.intp)
        for i, v, ty, q, t, rs in zip(need, self._value[idx].tolist(), self._vtype[idx].tolist(),
                                       self._quality[idx].tolist(), self._t[idx].tolist(),
                                       self._reason[idx].tolist(), strict=True):
            obj[i] = Reading(_CAST[ty](v), QUALITIES[q], t, REASONS[rs])

    def as_dict(self) -> dict[str, Reading]:
        """Every reading, built now (cheaper than ``dict(snapshot)``)."""
        obj = self._obj
        if None in obj:
            for i, r in enumerate(obj):
                if r is None:
                    self._make(i)
        return dict(zip(self._keys, obj, strict=True))  # type: ignore[arg-type]

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"TableSnapshot({len(self._keys)} tags)"

    @property
    def keys_tuple(self) -> tuple[str, ...]:
        return self._keys

    @property
    def has_columns(self) -> bool:
        """The arrays came with the snapshot (a table that keeps its columns)."""
        return self._value is not None

    def _rows(self, keys: tuple[str, ...]) -> IndexArray | None:
        """The table row of each key (-1: not in the table); None when ``keys`` is the table's
        own order. Cached with the table, per key tuple (held, so its id stays its own)."""
        hit = self._gather.get(id(keys))
        if hit is None or hit[0] is not keys:
            rows = None if keys == self._keys else np.array([self._index.get(k, -1) for k in keys], dtype=np.intp)
            hit = (keys, rows)
            self._gather[id(keys)] = hit
        return hit[1]

    def columns_for(self, keys: tuple[str, ...]) -> Columns:
        """The columns in the order of ``keys``; rows of keys this table lacks are MISSING."""
        if self._value is None or self._vtype is None or self._quality is None or self._reason is None:
            return _columns_from(self, keys)
        rows = self._rows(keys)
        if rows is None:
            return Columns(keys, self._value, self._vtype, self._quality, self._reason)
        missing = rows < 0
        take = np.where(missing, 0, rows)
        value = self._value[take]
        vtype = self._vtype[take]
        quality = self._quality[take]
        reason = self._reason[take]
        if missing.any():
            value[missing] = math.nan
            vtype[missing] = MISSING
            quality[missing] = NO_QUALITY
        return Columns(keys, value, vtype, quality, reason)


class TagTable:
    """Latest reading of every known tag. Unknown tags are refused, so a typo in
    a driver or a site file cannot create a signal nobody declared."""

    def __init__(self, tags: Iterable[str], stale_after: float = 3.0, t0: float = 0.0) -> None:
        self.stale_after = stale_after
        self._keys: tuple[str, ...] = tuple(dict.fromkeys(tags))
        self._index: dict[str, int] = {k: i for i, k in enumerate(self._keys)}
        n = len(self._keys)
        self._value: FloatArray = np.zeros(n)
        self._vtype: CodeArray = np.full(n, FLOAT, np.int8)
        self._quality: CodeArray = np.full(n, int(Quality.BAD), np.int8)
        self._reason: CodeArray = np.full(n, REASON_CODE[Reason.NOT_CONNECTED], np.int8)
        self._t: FloatArray = np.full(n, float(t0))
        self._obj: list[Reading | None] = [Reading(0.0, Quality.BAD, t0, Reason.NOT_CONNECTED)] * n
        self._dirty: list[int] = []  # rows whose object is newer than the columns
        self._gather: dict[int, tuple[tuple[str, ...], IndexArray | None]] = {}
        # A small table fed reading by reading (loopback, OPC-UA) never needs arrays: it keeps
        # objects only, as a dict would, until something asks for columns (update_columns, changed).
        self._live = n >= self.columns_min
        # hold_bad: per row, the reason code it is held BAD with (0, Reason.NONE: not held)
        self._hold: CodeArray = np.zeros(n, np.int8)
        self._held_rows: IndexArray = np.zeros(0, np.intp)

    columns_min = 1000  # tags from which a table keeps its columns from the start

    @property
    def columns_live(self) -> bool:
        """The columns are kept (and snapshots carry them)."""
        return self._live

    def _go_live(self) -> None:
        if not self._live:
            self._live = True
            self._dirty = list(range(len(self._keys)))  # every object is newer than the columns

    def __contains__(self, tag: object) -> bool:
        return tag in self._index

    def __getitem__(self, tag: str) -> Reading:
        i = self._index[tag]
        r = self._obj[i]
        if r is None:  # written by update_columns: the columns hold it
            r = Reading(
                _CAST[self._vtype[i]](self._value[i]),
                QUALITIES[self._quality[i]],
                float(self._t[i]),
                REASONS[self._reason[i]],
            )
            self._obj[i] = r
        return r

    def tags(self) -> list[str]:
        return list(self._keys)

    @property
    def keys_tuple(self) -> tuple[str, ...]:
        return self._keys

    def index(self, tags: Iterable[str]) -> IndexArray:
        """Row numbers of ``tags`` (KeyError for an unknown one), for ``update_columns``."""
        idx = self._index
        out = []
        for tag in tags:
            i = idx.get(tag)
            if i is None:
                raise KeyError(f"unknown tag {tag}")
            out.append(i)
        return np.array(out, dtype=np.intp)

    def update(self, tag: str, reading: Reading) -> None:
        i = self._index.get(tag)
        if i is None:
            raise KeyError(f"unknown tag {tag}")
        self._obj[i] = reading
        if self._live:
            self._dirty.append(i)

    def update_many(self, items: Iterable[tuple[str, Reading]]) -> None:
        for tag, reading in items:
            self.update(tag, reading)

    def update_columns(
        self,
        rows: IndexArray,
        value: FloatArray,
        vtype: CodeArray,
        quality: CodeArray,
        reason: CodeArray,
        t: float,
    ) -> None:
        """Write a block of readings at once (``rows`` from ``index``), all sampled at ``t``."""
        self._go_live()
        if self._dirty:
            self._flush()  # an older object must not overwrite these later values at the next flush
        self._value[rows] = value
        self._vtype[rows] = vtype
        self._quality[rows] = quality
        self._reason[rows] = reason
        self._t[rows] = t
        obj = self._obj
        for i in rows.tolist():
            obj[i] = None

    def changed(self, rows: IndexArray, value: FloatArray, quality: CodeArray) -> bool:
        """Would writing ``value``/``quality`` at ``rows`` change any value or quality?"""
        self._go_live()
        if self._dirty:
            self._flush()
        old_v = self._value[rows]
        same = (old_v == value) | (np.isnan(old_v) & np.isnan(value))
        return bool((~same).any() or (self._quality[rows] != quality).any())

    def _flush(self) -> None:
        """Bring the columns up to date with the objects written by ``update``."""
        dirty, self._dirty = self._dirty, []
        if not dirty:
            return
        obj = self._obj
        readings = [obj[i] for i in dirty]
        values = [r.value for r in readings]  # type: ignore[union-attr]
        vtypes = [_VTYPE.get(v.__class__, OBJECT) for v in values]
        if OBJECT in vtypes:  # not a plain float, int or bool: one by one
            encoded = [_encode(v) for v in values]
            values = [e[0] for e in encoded]
            vtypes = [e[1] for e in encoded]
        rows = np.array(dirty, dtype=np.intp)
        # later writes of the same row come later in ``dirty``: fancy assignment keeps the last
        self._value[rows] = values
        vt = np.array(vtypes, dtype=np.int8)
        if INT in vtypes:
            big = (vt == INT) & (np.abs(self._value[rows]) > 2.0**53)  # not exact as a float
            if big.any():
                vt[big] = OBJECT
                self._value[rows[big]] = math.nan
        self._vtype[rows] = vt
        self._quality[rows] = [r.quality for r in readings]  # type: ignore[union-attr]
        code = REASON_CODE.get
        self._reason[rows] = [code(r.reason, 0) for r in readings]  # type: ignore[union-attr]
        self._t[rows] = [r.t for r in readings]  # type: ignore[union-attr]

    def mark_bad(self, tags: Iterable[str], reason: Reason, t: float) -> None:
        """Keep the last value for display, but say it cannot be trusted."""
        for tag in tags:
            old = self[tag]
            if old.quality is not Quality.BAD or old.reason is not reason:
                self.update(tag, Reading(old.value, Quality.BAD, t, reason))

    def hold_bad(self, tags: Iterable[str], reason: Reason) -> None:
        """Report ``tags`` BAD with ``reason`` in every snapshot until ``release``. A reading
        that is BAD already keeps its own reason (it says more: a sensor fault, a lost link)."""
        if reason is Reason.NONE:
            raise ValueError("a hold needs a reason")
        rows = self.index(tags)
        self._hold[rows] = REASON_CODE[reason]
        self._held_rows = np.flatnonzero(self._hold)

    def release(self, tags: Iterable[str]) -> None:
        """End a ``hold_bad``: the next snapshot shows the real readings again."""
        self._hold[self.index(tags)] = 0
        self._held_rows = np.flatnonzero(self._hold)

    def held(self, tag: str) -> Reason | None:
        """The reason ``tag`` is held BAD with, or None."""
        code = int(self._hold[self._index[tag]])
        return REASONS[code] if code else None

    def snapshot(self, now: float) -> TableSnapshot:
        """An immutable view for one scan, with staleness and holds applied."""
        limit = now - self.stale_after
        if not self._live:
            objs = list(self._obj)
            for i, r in enumerate(objs):
                if r is not None and r.quality is not Quality.BAD and r.t < limit:
                    objs[i] = replace(r, quality=Quality.BAD, reason=Reason.STALE)
            for i in self._held_rows.tolist():
                r = objs[i]
                if r is not None and r.quality is not Quality.BAD:
                    objs[i] = replace(r, quality=Quality.BAD, reason=REASONS[self._hold.item(i)])
            return TableSnapshot(self._keys, self._index, None, None, None, None, None, objs, self._gather)
        self._flush()
        quality = self._quality.copy()
        reason = self._reason.copy()
        obj = list(self._obj)
        stale = np.flatnonzero((quality != int(Quality.BAD)) & (self._t < limit))
        snap = TableSnapshot(self._keys, self._index, self._value.copy(), self._vtype.copy(), quality, reason,
                             self._t.copy(), obj, self._gather)
        if stale.size:
            for i in stale.tolist():
                obj[i] = replace(snap._make(i), quality=Quality.BAD, reason=Reason.STALE)
            quality[stale] = int(Quality.BAD)
            reason[stale] = REASON_CODE[Reason.STALE]
        if self._held_rows.size:
            rows = self._held_rows[quality[self._held_rows] != int(Quality.BAD)]
            for i in rows.tolist():
                obj[i] = replace(snap._make(i), quality=Quality.BAD, reason=REASONS[self._hold.item(i)])
            quality[rows] = int(Quality.BAD)
            reason[rows] = self._hold[rows]
        return snap
