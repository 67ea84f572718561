"""The embedded historian: one SQLite file, zero set-up, what the HMI's trends read.

Theory of operation
-------------------
Three tables. ``series`` names each signal once (id, station, tag);
``samples`` holds (series, t, value, quality), t in integer milliseconds, as a
``WITHOUT ROWID`` table keyed by (series, t): the samples of one signal lie
together in time order, so a trend read is one range scan of the key. Writing a
scan straight into it would touch one page per signal on every commit (200
signals: 800 kB of WAL per scan, megabytes a second of wear on a controller's
SSD), so small batches land in ``recent``, keyed by (t, series): a scan appends
to the last page or two. When ``recent`` holds ``compact_rows`` rows, the
record() that crosses the mark moves them into ``samples`` in one sorted
``INSERT ... SELECT`` (tens of milliseconds for 20,000 rows), which touches each
signal's page once per compaction instead of once per scan. A large batch (a
back-fill, an import) goes to ``samples`` directly. Reads look at both tables. A
second sample of the same signal in the same millisecond replaces the first.

``record`` is one transaction per call (the runtime calls it once per scan), with
``executemany`` over the whole batch; the file is in WAL mode with
``synchronous=NORMAL``: a power cut may lose the last scans of history, never
corrupt the file (the journal, not the historian, is the durable record of what
happened). Non-finite values: NaN is stored as NULL and read back as NaN.

Retention: samples older than ``retention_s`` before the newest recorded sample
are deleted, checked at most every ``retention_every_s`` of recorded time (so the
historian never reads a clock).

Downsampled reads (``max_points``): the window is cut into ``max_points // 2``
buckets and SQLite returns, per bucket, the row of the minimum and the row of the
maximum (SQLite's documented bare-column rule for a lone min()/max()), so a long
window costs two aggregate range scans in C, never a transfer of every row.

One connection, guarded by a lock: record (journal thread) and query (HMI) may
come from different threads.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from ..errors import PlantctlError
from .base import Historian, HistorianStatus, Point, to_ms

_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    station TEXT NOT NULL,
    tag TEXT NOT NULL,
    UNIQUE (station, tag)
);
CREATE TABLE IF NOT EXISTS samples (
    series INTEGER NOT NULL,
    t INTEGER NOT NULL,
    value REAL,
    quality INTEGER NOT NULL,
    PRIMARY KEY (series, t)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS recent (
    t INTEGER NOT NULL,
    series INTEGER NOT NULL,
    value REAL,
    quality INTEGER NOT NULL,
    PRIMARY KEY (t, series)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class HistorianError(PlantctlError):
    """The historian could not open, read or write its store. The message names the file."""


class SQLiteHistorian(Historian):
    def __init__(
        self,
        path: str | Path,
        *,
        retention_s: float = 90 * 86400.0,
        retention_every_s: float = 3600.0,
        compact_rows: int = 20_000,
        readonly: bool = False,
    ) -> None:
        self.path = Path(path)
        self.compact_rows = compact_rows
        self.readonly = readonly
        self.retention_s = retention_s
        self.retention_every_s = retention_every_s
        self._lock = threading.Lock()
        try:
            if readonly:
                # For reports and tools beside a running controller: never creates or writes the file.
                if not self.path.is_file():
                    raise HistorianError(f"historian {self.path}: no such file")
                self._conn: sqlite3.Connection | None = sqlite3.connect(
                    self.path.resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False
                )
                conn = self._conn
            else:
                if str(path) != ":memory:":
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                self._conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
                conn = self._conn
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
            self._series: dict[tuple[str, str], int] = {
                (st, tag): sid for sid, st, tag in conn.execute("SELECT id, station, tag FROM series")
            }
            row = conn.execute("SELECT value FROM meta WHERE key='retention_at'").fetchone()
            self._recent = int(conn.execute("SELECT count(*) FROM recent").fetchone()[0])
        except sqlite3.Error as exc:
            raise HistorianError(f"historian {self.path}: cannot open: {exc}") from exc
        self._retention_at = int(row[0]) if row else None
        self._newest = 0

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise HistorianError(f"historian {self.path}: closed")
        return self._conn

    def _series_id(self, conn: sqlite3.Connection, station: str, tag: str) -> int:
        key = (station, tag)
        sid = self._series.get(key)
        if sid is None:
            cur = conn.execute("INSERT INTO series (station, tag) VALUES (?, ?)", key)
            sid = int(cur.lastrowid or 0)
            self._series[key] = sid
        return sid

    # -- writing -------------------------------------------------------------------------
    def record(self, points: Sequence[Point]) -> None:
        if not points:
            return
        if self.readonly:
            raise HistorianError(f"historian {self.path}: opened read-only")
        with self._lock:
            conn = self._require()
            series = self._series
            try:
                conn.execute("BEGIN")
                rows: list[tuple[int, int, float, int]] = []
                append = rows.append
                newest = self._newest
                last_w, t = math.nan, 0
                for st, tag, w, v, q in points:
                    sid = series.get((st, tag))
                    if sid is None:
                        sid = self._series_id(conn, st, tag)
                    if w != last_w:  # a scan's points share one time stamp: convert it once
                        last_w, t = w, int(round(w * 1000.0))
                        if t > newest:
                            newest = t
                    # SQLite stores a NaN as NULL by itself (read back as NaN).
                    append((t, sid, v, q))
                if len(rows) >= self.compact_rows // 4:
                    rows.sort(key=lambda r: (r[1], r[0]))
                    conn.executemany("INSERT OR REPLACE INTO samples (t, series, value, quality) VALUES (?, ?, ?, ?)",
                                     rows)
                else:
                    conn.executemany("INSERT OR REPLACE INTO recent VALUES (?, ?, ?, ?)", rows)
                    self._recent += len(rows)
                    if self._recent >= self.compact_rows:
                        self._compact(conn)
                self._newest = newest
                self._maybe_retain(conn)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise HistorianError(f"historian {self.path}: write of {len(points)} point(s) failed: {exc}") from exc

    def _compact(self, conn: sqlite3.Connection) -> None:
        conn.execute("INSERT OR REPLACE INTO samples SELECT series, t, value, quality FROM recent ORDER BY series, t")
        conn.execute("DELETE FROM recent")
        self._recent = 0

    def compact(self) -> None:
        """Move every recent row into the per-signal table now (before a bulk read, a copy, a backup)."""
        with self._lock:
            conn = self._require()
            conn.execute("BEGIN")
            self._compact(conn)
            conn.execute("COMMIT")

    def _maybe_retain(self, conn: sqlite3.Connection) -> None:
        every = int(self.retention_every_s * 1000)
        if self._retention_at is not None and self._newest - self._retention_at < every:
            return
        self._retention_at = self._newest
        cutoff = self._newest - int(self.retention_s * 1000)
        # Per series, so each delete is a range of the primary key, not a table scan.
        conn.executemany("DELETE FROM samples WHERE series = ? AND t < ?", [(sid, cutoff) for sid in self._series.values()])
        self._recent -= conn.execute("DELETE FROM recent WHERE t < ?", (cutoff,)).rowcount
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('retention_at', ?)", (str(self._retention_at),))

    # -- reading -------------------------------------------------------------------------
    def query(self, station: str, tag: str, t0: float, t1: float, max_points: int | None = None) -> list[Point]:
        if max_points is not None and max_points < 2:
            raise ValueError("max_points must be at least 2")
        a, b = to_ms(t0), to_ms(t1)
        with self._lock:
            conn = self._require()
            sid = self._series.get((station, tag))
            if sid is None or b < a:
                return []
            try:
                both = ("(SELECT t, value, quality FROM samples WHERE series=:s AND t BETWEEN :a AND :b "
                        "UNION ALL SELECT t, value, quality FROM recent WHERE series=:s AND t BETWEEN :a AND :b)")
                args: dict[str, int] = {"s": sid, "a": a, "b": b}
                n = 0
                if max_points is not None:
                    n, lo, hi = conn.execute(f"SELECT count(*), min(t), max(t) FROM {both}", args).fetchone()
                if max_points is None or n <= max_points:
                    # Recent rows come second, so a sample re-recorded after a compaction wins.
                    merged = {t: (v, q) for t, v, q in conn.execute(f"SELECT t, value, quality FROM {both}", args)}
                    rows = sorted((t, v, q) for t, (v, q) in merged.items())
                else:
                    # Buckets over the data actually there, not over an empty part of the window.
                    args.update(lo=int(lo), nb=max_points // 2, span=int(hi) - int(lo) + 1)
                    bucket = "((t - :lo) * :nb) / :span"
                    lows = conn.execute(f"SELECT {bucket} AS k, t, min(value), quality FROM {both} GROUP BY k",
                                        args).fetchall()
                    highs = conn.execute(f"SELECT {bucket} AS k, t, max(value), quality FROM {both} GROUP BY k",
                                         args).fetchall()
                    picked = {t: (v, q) for _, t, v, q in lows}
                    picked.update({t: (v, q) for _, t, v, q in highs})
                    rows = sorted((t, v, q) for t, (v, q) in picked.items())
            except sqlite3.Error as exc:
                raise HistorianError(f"historian {self.path}: read failed: {exc}") from exc
        return [Point(station, tag, t / 1000.0, math.nan if v is None else float(v), int(q)) for t, v, q in rows]

    def series(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(self._series)

    def count(self, station: str | None = None, tag: str | None = None) -> int:
        with self._lock:
            conn = self._require()
            if station is None:
                return int(conn.execute("SELECT (SELECT count(*) FROM samples) + (SELECT count(*) FROM recent)")
                           .fetchone()[0])
            sid = self._series.get((station, tag or ""))
            if sid is None:
                return 0
            return int(conn.execute("SELECT (SELECT count(*) FROM samples WHERE series=:s) + "
                                    "(SELECT count(*) FROM recent WHERE series=:s)", {"s": sid}).fetchone()[0])

    def status(self) -> HistorianStatus:
        return HistorianStatus("sqlite")

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
