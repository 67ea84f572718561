"""The historian interface: points in, points out, one contract for every back end.

Theory of operation
-------------------
A ``Point`` is one sample of one signal: station, tag, wall time (epoch seconds),
value as a float (booleans 0/1, enum states their index) and the quality as the
``Quality`` int (0 BAD, 1 UNCERTAIN, 2 GOOD). The runtime hands the historian the
whole scan at once (``record``, from its journal thread, after the events are
durable); a back end must make that call cheap, so each call is one batch and one
commit, never one round trip per point.

``query(station, tag, t0, t1, max_points)`` returns the samples of one signal in
time order. With ``max_points`` the answer is *downsampled* for long trend
windows: the window is cut into ``max_points // 2`` equal buckets and each bucket
keeps its lowest and its highest sample (min/max decimation), so a spike that
tripped the plant is never averaged away. Time resolution is the millisecond.

Back ends: ``SQLiteHistorian`` (embedded, the default, what the HMI's trends
read), ``InfluxHistorian`` (InfluxDB line protocol through ``influxdb-client``,
behind a disk spool: store and forward) and ``MirroredHistorian`` (both: every
point to the embedded store and to the server, queries from the embedded store).
``open_historian`` builds the one the site file asks for.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..alarms import AlarmBoard, Priority
from ..errors import ConfigError
from ..journal import Event
from ..tags import Reading


class Point(NamedTuple):
    station: str
    tag: str
    t_wall: float  # epoch seconds (kept to the millisecond)
    value: float
    quality: int  # plantctl.tags.Quality as int


@dataclass(frozen=True)
class HistorianStatus:
    """Health of a back end, for the HMI and for ``historian_alarms``."""

    backend: str
    connected: bool | None = None  # None: no server involved
    spool_points: int = 0
    spool_bytes: int = 0
    spool_max_points: int = 0
    overflow: bool = False  # the spool is at its bound: points are being dropped
    overflow_policy: str = ""
    dropped_points: int = 0  # ever lost to the overflow policy
    rejected_points: int = 0  # refused by the server as malformed (kept aside, not retried)
    sent_points: int = 0
    last_error: str = ""


class Historian(ABC):
    """Every back end implements record/query/close; status() says how it is doing."""

    @abstractmethod
    def record(self, points: Sequence[Point]) -> None:
        """Store one batch (one scan). Fast: batched, one commit per call."""

    @abstractmethod
    def query(self, station: str, tag: str, t0: float, t1: float, max_points: int | None = None) -> list[Point]:
        """Samples of one signal with t0 <= t <= t1 in time order (downsampled to max_points if given)."""

    @abstractmethod
    def close(self) -> None:
        """Flush what can be flushed and release files, threads and connections."""

    def status(self) -> HistorianStatus:
        return HistorianStatus(type(self).__name__)

    def __enter__(self) -> Historian:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def to_ms(t_wall: float) -> int:
    return int(round(t_wall * 1000.0))


def points_from_snapshot(station: str, snapshot: Mapping[str, Reading], wall: float) -> list[Point]:
    """One point per reading of a scan's snapshot, all stamped with the scan's wall time.

    Keys may be plain tags (of ``station``) or ``station:TAG`` (a multi-station
    snapshot; then ``station`` may be ""). Booleans become 0/1, enum indices
    their int, quality its ``Quality`` int."""
    out: list[Point] = []
    append = out.append
    for key, r in snapshot.items():
        st, sep, tag = key.partition(":")
        if not sep:
            st, tag = station, key
        v = r.value
        append(Point(st, tag, wall, 1.0 if v is True else 0.0 if v is False else float(v), int(r.quality)))
    return out


def downsample(points: Sequence[Point], t0: float, t1: float, max_points: int) -> list[Point]:
    """Min/max decimation of time-ordered points to at most ``max_points`` (see module doc)."""
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    if len(points) <= max_points:
        return list(points)
    n_buckets = max_points // 2
    a, b = to_ms(t0), to_ms(t1)
    span = b - a + 1
    buckets: dict[int, tuple[Point, Point]] = {}
    for p in points:
        k = (to_ms(p.t_wall) - a) * n_buckets // span
        cur = buckets.get(k)
        if cur is None:
            buckets[k] = (p, p)
            continue
        lo, hi = cur
        v = p.value
        if not math.isnan(v):
            if math.isnan(lo.value) or v < lo.value:
                lo = p
            if math.isnan(hi.value) or v > hi.value:
                hi = p
        buckets[k] = (lo, hi)
    out: list[Point] = []
    for k in sorted(buckets):
        lo, hi = buckets[k]
        pair = sorted({lo, hi}, key=lambda q: q.t_wall) if lo != hi else [lo]
        out.extend(pair)
    return out


def open_historian(config: Mapping[str, Any], *, base: Path | None = None, start: bool = True) -> Historian:
    """The back end a site's ``historian:`` section names.

    ``backend: sqlite`` (default): ``path``, optional ``retention_days``.
    ``backend: influxdb``: the embedded store at ``path`` *and* the server at ``url``
    (``org``, ``bucket``, token from the environment variable ``token_env``),
    through the spool at ``spool`` (default: next to ``path``)."""
    import os

    from .influx import InfluxHistorian, MirroredHistorian
    from .spool import SpoolOverflow
    from .sqlite import SQLiteHistorian

    def rel(p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() or base is None else base / q

    backend = str(config.get("backend", "sqlite"))
    path = rel(str(config.get("path") or "history.db"))
    retention_s = float(config.get("retention_days", 90)) * 86400.0
    local = SQLiteHistorian(path, retention_s=retention_s)
    if backend == "sqlite":
        return local
    if backend != "influxdb":
        local.close()
        raise ConfigError(f"historian.backend: unknown back end {backend!r} (sqlite or influxdb)")
    missing = [k for k in ("url", "org", "bucket") if not config.get(k)]
    if missing:
        local.close()
        raise ConfigError(f"historian: influxdb needs {', '.join(missing)}")
    token = os.environ.get(str(config.get("token_env") or ""), "") if config.get("token_env") else ""
    spool = rel(str(config.get("spool") or (str(path) + ".spool")))
    remote = InfluxHistorian(
        str(config["url"]),
        org=str(config["org"]),
        bucket=str(config["bucket"]),
        token=token,
        spool_path=spool,
        spool_max_points=int(config.get("spool_max_points", 20_000_000)),
        overflow=SpoolOverflow(str(config.get("spool_overflow", SpoolOverflow.DROP_OLDEST.value))),
        start=start,
    )
    return MirroredHistorian(local, remote)


def historian_alarms(board: AlarmBoard, status: HistorianStatus, now: float, wall: float) -> list[Event]:
    """Raise or clear the historian's alarms on the board from its status (call once per scan).

    ``historian:spool-overflow`` (HIGH) while the spool is at its bound and points
    are being lost, naming the policy and the count; ``historian:rejected`` (HIGH)
    once the server refused data; ``historian:unreachable`` (LOW) while the server
    cannot be reached (nothing is lost yet: the spool holds the points)."""
    out: list[Event] = []
    if status.overflow:
        out += board.raise_("historian:spool-overflow",
                            f"historian spool full ({status.spool_points} points): {status.overflow_policy}, "
                            f"{status.dropped_points} point(s) lost so far", Priority.HIGH, now, wall, "", "historian")
    else:
        out += board.clear("historian:spool-overflow", now, wall)
    if status.rejected_points:
        out += board.raise_("historian:rejected",
                            f"historian server refused {status.rejected_points} point(s) (kept in the spool's "
                            "rejected table)", Priority.HIGH, now, wall, "", "historian")
    if status.connected is False:
        out += board.raise_("historian:unreachable",
                            f"historian server unreachable, spooling ({status.last_error})", Priority.LOW, now, wall,
                            "", "historian")
    elif status.connected:
        out += board.clear("historian:unreachable", now, wall)
    return out
