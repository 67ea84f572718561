"""The disk spool of store-and-forward: every point for the server waits here, in order.

Theory of operation
-------------------
The remote historian never writes to the server from ``record``: each call's
points, already encoded as InfluxDB line protocol, are appended to this spool as
one *batch* (one row, zlib-compressed), and a forwarder sends the oldest batches
first and deletes them only once the server said yes. With the server up the
spool holds a second of data; with the server down it grows, and when the server
returns the same loop back-fills it, oldest first, so points reach the server in
the order they were recorded. The spool is one SQLite file (WAL,
``synchronous=NORMAL``): a restart of the controller reopens it and carries on
where the forwarder stopped; a crash may lose the last batches, never reorder or
corrupt the rest.

Bounded: at most ``max_points`` points and ``max_bytes`` compressed bytes. What
happens beyond is an explicit policy (``SpoolOverflow``), counted in
``dropped_points`` (kept across restarts) and reported as ``overflow`` so the
controller raises an alarm (``historian_alarms``):

* ``drop_oldest`` (default): the oldest batches not in flight are deleted to make
  room: the newest history survives, the gap is in the past;
* ``drop_newest``: the new batch is refused: the spooled past survives, the gap
  grows at the end.

``overflow`` stays set until the spool drains below 90 % of its bound.

Delivery is at least once: a batch whose answer was lost (timeout after the
server stored it) is sent again. InfluxDB overwrites a point with the same
series and time stamp, so a repeat stores nothing twice. A batch the server
refuses as malformed (HTTP 400/422) is moved to the ``rejected`` table (kept for
inspection, counted, alarmed) so one bad batch cannot block the spool forever.
"""

from __future__ import annotations

import sqlite3
import threading
import zlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ..errors import PlantctlError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    n INTEGER NOT NULL,
    t_first INTEGER NOT NULL,
    t_last INTEGER NOT NULL,
    payload BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    seq INTEGER PRIMARY KEY,
    n INTEGER NOT NULL,
    t_first INTEGER NOT NULL,
    t_last INTEGER NOT NULL,
    payload BLOB NOT NULL,
    error TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class SpoolError(PlantctlError):
    """The spool file could not be opened, read or written."""


class SpoolOverflow(StrEnum):
    DROP_OLDEST = "drop_oldest"
    DROP_NEWEST = "drop_newest"


@dataclass(frozen=True)
class Batch:
    seq: int
    n: int
    t_first: int  # ms
    t_last: int  # ms
    lines: str


class Spool:
    def __init__(
        self,
        path: str | Path,
        *,
        max_points: int = 20_000_000,
        max_bytes: int = 1 << 30,
        overflow: SpoolOverflow = SpoolOverflow.DROP_OLDEST,
    ) -> None:
        if max_points < 1 or max_bytes < 1:
            raise ValueError("the spool bounds must be positive")
        self.path = Path(path)
        self.max_points = max_points
        self.max_bytes = max_bytes
        self.policy = SpoolOverflow(overflow)
        self._lock = threading.Lock()
        self.overflow = False
        self._inflight = 0  # highest seq handed out by peek() and not yet acked
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # only takes effect on a new file
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conn: sqlite3.Connection | None = conn
            n, b, k = conn.execute(
                "SELECT coalesce(sum(n), 0), coalesce(sum(length(payload)), 0), count(*) FROM batches"
            ).fetchone()
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error as exc:
            raise SpoolError(f"spool {self.path}: cannot open: {exc}") from exc
        self.points, self.bytes, self.batches = int(n), int(b), int(k)
        self.dropped_points = int(meta.get("dropped_points", 0))
        self.rejected_points = int(meta.get("rejected_points", 0))

    def _require(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SpoolError(f"spool {self.path}: closed")
        return self._conn

    def _count(self, conn: sqlite3.Connection, key: str, add: int) -> None:
        conn.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = value + excluded.value", (key, add)
        )

    # -- writing -------------------------------------------------------------------------
    def push(self, lines: str, n: int, t_first: int, t_last: int) -> int:
        """Append one batch of ``n`` points; returns how many points the overflow policy dropped."""
        if n <= 0:
            return 0
        payload = zlib.compress(lines.encode("utf-8"), 1)
        size = len(payload)
        dropped = 0
        with self._lock:
            conn = self._require()
            try:
                conn.execute("BEGIN")
                if self.points + n > self.max_points or self.bytes + size > self.max_bytes:
                    if self.policy is SpoolOverflow.DROP_OLDEST:
                        dropped = self._drop_oldest(conn, n, size)
                    if self.points + n > self.max_points or self.bytes + size > self.max_bytes:
                        dropped += n  # drop_newest, or nothing old enough left to drop
                        self._count(conn, "dropped_points", dropped)
                        conn.execute("COMMIT")
                        self.dropped_points += dropped
                        self.overflow = True
                        return dropped
                conn.execute("INSERT INTO batches (n, t_first, t_last, payload) VALUES (?, ?, ?, ?)",
                             (n, t_first, t_last, payload))
                if dropped:
                    self._count(conn, "dropped_points", dropped)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise SpoolError(f"spool {self.path}: append failed: {exc}") from exc
        self.points += n
        self.bytes += size
        self.batches += 1
        if dropped:
            self.dropped_points += dropped
            self.overflow = True
        return dropped

    def _drop_oldest(self, conn: sqlite3.Connection, n: int, size: int) -> int:
        dropped = 0
        rows = conn.execute(
            "SELECT seq, n, length(payload) FROM batches WHERE seq > ? ORDER BY seq", (self._inflight,)
        )
        last = None
        for seq, k, b in rows:
            if self.points + n <= self.max_points and self.bytes + size <= self.max_bytes:
                break
            last = seq
            self.points -= k
            self.bytes -= b
            self.batches -= 1
            dropped += k
        if last is not None:
            conn.execute("DELETE FROM batches WHERE seq > ? AND seq <= ?", (self._inflight, last))
        return dropped

    # -- forwarding ----------------------------------------------------------------------
    def peek(self, max_points: int) -> list[Batch]:
        """The oldest batches, up to ``max_points`` points (always at least one batch if any)."""
        with self._lock:
            conn = self._require()
            out: list[Batch] = []
            total = 0
            try:
                for seq, n, t0, t1, payload in conn.execute(
                    "SELECT seq, n, t_first, t_last, payload FROM batches ORDER BY seq"
                ):
                    if out and total + n > max_points:
                        break
                    out.append(Batch(seq, n, t0, t1, zlib.decompress(payload).decode("utf-8")))
                    total += n
            except sqlite3.Error as exc:
                raise SpoolError(f"spool {self.path}: read failed: {exc}") from exc
            if out:
                self._inflight = max(self._inflight, out[-1].seq)
            return out

    def ack(self, upto_seq: int) -> None:
        """The server has every batch up to ``upto_seq``: delete them."""
        with self._lock:
            conn = self._require()
            try:
                n, b, k = conn.execute(
                    "SELECT coalesce(sum(n), 0), coalesce(sum(length(payload)), 0), count(*) FROM batches "
                    "WHERE seq <= ?", (upto_seq,)
                ).fetchone()
                conn.execute("DELETE FROM batches WHERE seq <= ?", (upto_seq,))
                if self.batches - int(k) == 0:
                    conn.execute("PRAGMA incremental_vacuum")  # give the disk back once drained
            except sqlite3.Error as exc:
                raise SpoolError(f"spool {self.path}: delete failed: {exc}") from exc
            self.points -= int(n)
            self.bytes -= int(b)
            self.batches -= int(k)
            self._inflight = 0
            if self.overflow and self.points < 0.9 * self.max_points and self.bytes < 0.9 * self.max_bytes:
                self.overflow = False

    def release(self) -> None:
        """Sending failed: the peeked batches are no longer in flight (they stay, first in line)."""
        with self._lock:
            self._inflight = 0

    def reject(self, batch: Batch, error: str) -> None:
        """Move a batch the server refuses as malformed aside (kept, counted, never resent)."""
        with self._lock:
            conn = self._require()
            try:
                conn.execute("BEGIN")
                row = conn.execute("SELECT payload FROM batches WHERE seq = ?", (batch.seq,)).fetchone()
                if row is not None:
                    conn.execute("INSERT OR REPLACE INTO rejected VALUES (?, ?, ?, ?, ?, ?)",
                                 (batch.seq, batch.n, batch.t_first, batch.t_last, row[0], error[:2000]))
                    conn.execute("DELETE FROM batches WHERE seq = ?", (batch.seq,))
                    self._count(conn, "rejected_points", batch.n)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise SpoolError(f"spool {self.path}: reject failed: {exc}") from exc
            if row is not None:
                self.points -= batch.n
                self.bytes -= len(row[0])
                self.batches -= 1
                self.rejected_points += batch.n
            self._inflight = 0

    def rejected(self) -> list[tuple[Batch, str]]:
        with self._lock:
            conn = self._require()
            rows = conn.execute("SELECT seq, n, t_first, t_last, payload, error FROM rejected ORDER BY seq").fetchall()
        return [(Batch(s, n, a, b, zlib.decompress(p).decode("utf-8")), e) for s, n, a, b, p, e in rows]

    def __len__(self) -> int:
        return self.points

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
