"""InfluxDB through ``influxdb-client``, behind the spool: store and forward.

Theory of operation
-------------------
``record`` encodes the points as line protocol and appends them to the disk spool
(plantctl.historian.spool); it never touches the network, so a slow or dead
server cannot hold up the journal thread that calls it. A forwarder sends the
spool's oldest batches in one HTTP write of up to ``batch_points`` points and
deletes them once the server answered 2xx; on a failure it stops, keeps them
first in line, and tries again after a back-off (0.5 s doubling to 30 s). So a
server outage leaves every point in the spool, and its return back-fills them in
the order they were recorded. The forwarder runs in its own thread
(``start=True``), waking every ``flush_interval_s`` or as soon as a full batch is
waiting; tests and tools can drive it by hand with ``forward()``. This module is
the I/O edge: its thread waits on ``threading.Event`` with real time-outs, which
is back-off and flush pacing, not plant logic.

Line protocol, one line per point::

    plantctl,station=gas_station,signal=GD-401A value=12.5,quality=2i 1767225600000

measurement ``plantctl`` (configurable), tags ``station`` and ``signal``, the
value as a float field and the quality (0 BAD, 1 UNCERTAIN, 2 GOOD) as an integer
field, millisecond precision. A non-finite value is left out of the line (the
quality field still says what happened).

Queries go through Flux (``flux_query``, ``points_from_tables``), with the same
min/max decimation as the embedded store when ``max_points`` is given. The
HMI's trends read the embedded store, so this path is for tools that want the
fleet's shared history.

Servers: InfluxDB 2.x/3.x (Flux: 2.x) take this as it is. VictoriaMetrics takes
the writes on ``/api/v2/write`` (the integration tests use it), keeps
milliseconds and about 12 significant digits, names the series
``plantctl_value`` / ``plantctl_quality``, and has no Flux: read it through its
own ``/api/v1/export``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from ..errors import PlantctlError
from .base import Historian, HistorianStatus, Point
from .spool import Spool, SpoolOverflow

log = logging.getLogger("plantctl.historian")


class SendError(PlantctlError):
    """A write to the server failed. ``retryable`` False: the server refuses this data for good."""

    def __init__(self, message: str, retryable: bool = True, status: int | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status


class Sender(Protocol):
    def send(self, lines: str) -> None:
        """Write line protocol (ms precision); raise SendError on failure."""
        ...

    def close(self) -> None: ...


class QueryApi(Protocol):
    def query(self, query: str, org: str | None = ...) -> Any: ...


# ---------------------------------------------------------------------------------------------
# Line protocol


def _escape_key(s: str) -> str:
    """Tag keys, tag values and field keys: backslash-escape commas, equals signs and spaces."""
    return (s.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")
            .replace("\n", "\\ "))


def _escape_measurement(s: str) -> str:
    return s.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ").replace("\n", "\\ ")


class LineEncoder:
    """Points to line protocol, with each signal's line prefix built once."""

    def __init__(self, measurement: str = "plantctl") -> None:
        self.measurement = measurement
        self._m = _escape_measurement(measurement)
        self._prefix: dict[tuple[str, str], str] = {}

    def prefix(self, station: str, tag: str) -> str:
        key = (station, tag)
        p = self._prefix.get(key)
        if p is None:
            p = f"{self._m},signal={_escape_key(tag)},station={_escape_key(station)} "  # tags sorted by key
            self._prefix[key] = p
        return p

    def encode(self, points: Iterable[Point]) -> str:
        prefix = self._prefix
        lines: list[str] = []
        append = lines.append
        last_w, t = math.nan, 0
        for st, tag, w, v, q in points:
            p = prefix.get((st, tag)) or self.prefix(st, tag)
            if w != last_w:
                last_w, t = w, int(round(w * 1000.0))
            if v - v == 0.0:  # finite (NaN and +-inf give NaN)
                append(f"{p}value={v!r},quality={q}i {t}")
            else:
                append(f"{p}quality={q}i {t}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The influxdb-client sender


class InfluxSender:
    def __init__(self, url: str, *, token: str, org: str, bucket: str, timeout_s: float = 5.0) -> None:
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS

        self.url, self.org, self.bucket = url, org, bucket
        # retries=False (the library's default): the forwarder owns retrying, in order.
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=int(timeout_s * 1000))
        self._write = self._client.write_api(write_options=SYNCHRONOUS)

    def send(self, lines: str) -> None:
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        precision: Any = WritePrecision.MS
        try:
            self._write.write(bucket=self.bucket, org=self.org, record=lines, write_precision=precision)
        except ApiException as exc:
            status = int(exc.status) if exc.status else None
            # 400/422: the data itself is refused; 413: too large (the forwarder splits first).
            # Anything else (auth, missing bucket, 429, 5xx) is the server's state: keep and retry.
            retryable = status not in (400, 413, 422)
            raise SendError(f"{self.url}: HTTP {status}: {str(exc.body or exc.reason)[:300]}", retryable, status) from exc
        except Exception as exc:  # urllib3/socket errors: unreachable, reset, timeout  # noqa: BLE001
            raise SendError(f"{self.url}: {type(exc).__name__}: {exc}"[:400], True) from exc

    def query_api(self) -> QueryApi:
        api: QueryApi = self._client.query_api()
        return api

    def close(self) -> None:
        self._client.close()  # type: ignore[no-untyped-call]


# ---------------------------------------------------------------------------------------------
# Flux (InfluxDB 2.x reads)


def _flux_string(s: str) -> str:
    """A Flux string literal: backslashes, quotes and interpolation escaped (no injection)."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${") + '"'


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def flux_query(
    bucket: str, measurement: str, station: str, tag: str, t0: float, t1: float, max_points: int | None = None
) -> str:
    """The Flux query for ``Historian.query``: pivoted to value/quality columns, time ordered;
    with ``max_points`` the min and max row of each of ``max_points // 2`` windows."""
    base = (
        f"from(bucket: {_flux_string(bucket)})\n"
        f"  |> range(start: {_rfc3339(t0)}, stop: {_rfc3339(t1 + 0.001)})\n"
        f"  |> filter(fn: (r) => r._measurement == {_flux_string(measurement)} and "
        f"r.station == {_flux_string(station)} and r.signal == {_flux_string(tag)})\n"
        '  |> filter(fn: (r) => r._field == "value" or r._field == "quality")\n'
        '  |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")\n'
        '  |> keep(columns: ["_time", "value", "quality"])\n'
    )
    if max_points is None:
        return base + '  |> sort(columns: ["_time"])\n'
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    every_ms = max(1, math.ceil((t1 - t0) * 1000.0 / (max_points // 2)))
    return (
        f"data = {base.strip()}\n"
        f'lows = data |> window(every: {every_ms}ms) |> min(column: "value")\n'
        f'highs = data |> window(every: {every_ms}ms) |> max(column: "value")\n'
        "union(tables: [lows, highs])\n"
        "  |> group()\n"
        '  |> unique(column: "_time")\n'
        '  |> sort(columns: ["_time"])\n'
    )


def points_from_tables(tables: Iterable[Any], station: str, tag: str) -> list[Point]:
    """Flux result tables (each with ``.records``; a record has ``get_time()`` and ``values``) to points."""
    by_time: dict[float, Point] = {}
    for table in tables:
        for rec in table.records:
            t = rec.get_time()
            if t is None:
                continue
            ts = t.timestamp() if isinstance(t, datetime) else float(t)
            vals = rec.values
            v = vals.get("value")
            q = vals.get("quality")
            by_time[ts] = Point(station, tag, ts, math.nan if v is None else float(v), 0 if q is None else int(q))
    return [by_time[k] for k in sorted(by_time)]


# ---------------------------------------------------------------------------------------------
# The historian


class InfluxHistorian(Historian):
    def __init__(
        self,
        url: str,
        *,
        org: str,
        bucket: str,
        token: str = "",
        spool_path: str | Path,
        measurement: str = "plantctl",
        spool_max_points: int = 20_000_000,
        spool_max_bytes: int = 1 << 30,
        overflow: SpoolOverflow = SpoolOverflow.DROP_OLDEST,
        batch_points: int = 10_000,
        flush_interval_s: float = 1.0,
        retry_min_s: float = 0.5,
        retry_max_s: float = 30.0,
        timeout_s: float = 5.0,
        sender: Sender | None = None,
        start: bool = True,
    ) -> None:
        if spool_max_points < batch_points:
            raise ValueError("spool_max_points must hold at least one batch")
        self.url, self.org, self.bucket, self.measurement = url, org, bucket, measurement
        self.batch_points = batch_points
        self.flush_interval_s = flush_interval_s
        self.retry_min_s, self.retry_max_s = retry_min_s, retry_max_s
        self.spool = Spool(spool_path, max_points=spool_max_points, max_bytes=spool_max_bytes, overflow=overflow)
        self.encoder = LineEncoder(measurement)
        self.sender: Sender = sender or InfluxSender(url, token=token, org=org, bucket=bucket, timeout_s=timeout_s)
        self.connected: bool | None = None
        self.last_error = ""
        self.sent_points = 0
        self._send_lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start:
            self.start()

    # -- writing -------------------------------------------------------------------------
    def record(self, points: Sequence[Point]) -> None:
        for i in range(0, len(points), self.batch_points):
            chunk = points[i:i + self.batch_points]
            t_first = min(p.t_wall for p in chunk)
            t_last = max(p.t_wall for p in chunk)
            dropped = self.spool.push(self.encoder.encode(chunk), len(chunk), int(round(t_first * 1000)),
                                      int(round(t_last * 1000)))
            if dropped:
                log.error("historian spool full (%s): %d point(s) dropped", self.spool.policy.value, dropped)
        if self.spool.points >= self.batch_points:
            self._wake.set()

    def forward(self, max_points: int | None = None) -> int:
        """Send spooled batches, oldest first, until the spool is empty (or ``max_points``
        were sent) or the server fails; returns the points delivered by this call."""
        sent = 0
        with self._send_lock:
            while max_points is None or sent < max_points:
                batches = self.spool.peek(self.batch_points)
                if not batches:
                    break
                try:
                    self.sender.send("\n".join(b.lines for b in batches))
                except SendError as exc:
                    self.spool.release()
                    if not exc.retryable:
                        if len(batches) > 1:
                            # One of them is refused: find it by sending them one at a time.
                            sent += self._send_singly(batches)
                            continue
                        self.spool.reject(batches[0], str(exc))
                        log.error("historian: server refused a batch of %d point(s): %s", batches[0].n, exc)
                        continue
                    if self.connected is not False:
                        log.warning("historian: server unreachable, spooling: %s", exc)
                    self.connected, self.last_error = False, str(exc)
                    break
                self.spool.ack(batches[-1].seq)
                n = sum(b.n for b in batches)
                sent += n
                self.sent_points += n
                if self.connected is False:
                    log.info("historian: server back, back-filling from the spool")
                self.connected, self.last_error = True, ""
        return sent

    def _send_singly(self, batches: list[Any]) -> int:
        sent = 0
        for b in batches:
            try:
                self.sender.send(b.lines)
            except SendError as exc:
                self.spool.release()
                if exc.retryable:
                    self.connected, self.last_error = False, str(exc)
                    return sent
                self.spool.reject(b, str(exc))
                continue
            self.spool.ack(b.seq)
            sent += b.n
            self.sent_points += b.n
        return sent

    # -- the forwarder thread ------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="historian-forwarder", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        delay = self.retry_min_s
        while not self._stop.is_set():
            try:
                self.forward()
            except PlantctlError as exc:  # spool I/O: keep the thread alive, say so
                self.last_error = str(exc)
                log.error("historian forwarder: %s", exc)
            if self.connected is False:
                self._stop.wait(delay)
                delay = min(delay * 2.0, self.retry_max_s)
            else:
                delay = self.retry_min_s
                self._wake.wait(self.flush_interval_s)
                self._wake.clear()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # -- reading -------------------------------------------------------------------------
    def query(self, station: str, tag: str, t0: float, t1: float, max_points: int | None = None) -> list[Point]:
        api_of = getattr(self.sender, "query_api", None)
        if api_of is None:
            raise PlantctlError("this sender cannot query (use the embedded store)")
        flux = flux_query(self.bucket, self.measurement, station, tag, t0, t1, max_points)
        tables = api_of().query(flux, org=self.org)
        return points_from_tables(tables, station, tag)

    def status(self) -> HistorianStatus:
        sp = self.spool
        return HistorianStatus(
            backend="influxdb",
            connected=self.connected,
            spool_points=sp.points,
            spool_bytes=sp.bytes,
            spool_max_points=sp.max_points,
            overflow=sp.overflow,
            overflow_policy=sp.policy.value,
            dropped_points=sp.dropped_points,
            rejected_points=sp.rejected_points,
            sent_points=self.sent_points,
            last_error=self.last_error,
        )

    def close(self) -> None:
        """Stop the forwarder after one last attempt; what is left stays in the spool for next time."""
        self.stop()
        if self.connected is not False:
            try:
                self.forward()
            except PlantctlError as exc:
                log.error("historian: final flush failed: %s", exc)
        self.sender.close()
        self.spool.close()


class MirroredHistorian(Historian):
    """The embedded store and a server: every point to both, reads from the embedded store."""

    def __init__(self, local: Historian, remote: InfluxHistorian) -> None:
        self.local = local
        self.remote = remote

    def record(self, points: Sequence[Point]) -> None:
        self.local.record(points)
        self.remote.record(points)

    def query(self, station: str, tag: str, t0: float, t1: float, max_points: int | None = None) -> list[Point]:
        return self.local.query(station, tag, t0, t1, max_points)

    def status(self) -> HistorianStatus:
        return self.remote.status()

    def close(self) -> None:
        try:
            self.remote.close()
        finally:
            self.local.close()
