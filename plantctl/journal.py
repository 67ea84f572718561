"""The journal: plantctl's sequence-of-events and audit record.

Theory of operation
-------------------
One SQLite file, WAL mode, ``PRAGMA synchronous=FULL``: a commit has reached the
disk (the WAL is fsynced) before ``append`` returns, so an event the controller
acted on is never lost to a power cut. One table ``events`` holds one row per
event, numbered by ``seq`` (1, 2, 3, ... with no gaps), and a ``meta`` table holds
the schema version and the genesis hash.

The table is append-only by construction: triggers ABORT every UPDATE or DELETE
(on ``meta`` too), and a third trigger refuses an INSERT that does not follow the
last record (next ``seq``, ``prev_hash`` equal to the last ``hash``). Someone with
the file can still drop the triggers and rewrite rows; the hash chain is what
makes that visible. Each record's ``hash`` is

    sha256( ascii( JSON array [prev_hash, seq, t_plant, t_wall, kind, station,
                               source, user, address, payload] ) )

encoded compactly (``separators=(",", ":")``, ``ensure_ascii=True``), where the
floats are Python's shortest round-trip ``repr`` and ``payload`` is the record's
canonical JSON *text* exactly as stored (``sort_keys``, compact, ASCII). Record 1
has ``prev_hash`` = 64 zeros (the genesis hash). ``verify`` walks the whole chain
and names the first record of every break: an edited row no longer matches its
hash; a deleted row leaves a seq gap; an inserted or renumbered row breaks the
``prev_hash`` link of the record after it.

What the chain alone cannot see: an attacker who truncates the tail, or rewrites
it and recomputes every hash after the change, leaves a chain that is internally
consistent. That is caught only against a head kept somewhere else: publish
``Journal.head`` (seq, hash) off the box (historian, shift report, the incident
seal) and pass it to ``verify(path, anchor=...)``.

Group commit: ``append_many`` writes the scan's batch of events in one
transaction, so one fsync pays for the lot (thousands of events per second
durable, where one fsync per event would allow a few hundred).

Threads: one writer. A ``Journal`` object is the only writer of its file; its
methods are serialised by an internal lock, so another thread of the same process
may read (``records``, ``last``) while the scan thread appends, but two
``Journal`` objects (or processes) must never append to the same file. Other
processes read through ``verify``/``export``/``tail``, which open the file
read-only (WAL lets them run while the writer works).

Errors: every ``sqlite3`` error (disk full, I/O error, read-only file, a
connection closed under us) becomes ``JournalError`` naming the file. A failed
append is rolled back whole, and because the writer re-reads the chain head
inside each write transaction, the next append continues the chain correctly.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import sqlite3
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from plantctl.errors import PlantctlError

__all__ = [
    "GENESIS_HASH",
    "SCHEMA_VERSION",
    "Event",
    "EventKind",
    "ExportFormat",
    "InvalidEvent",
    "Journal",
    "JournalCorrupt",
    "JournalError",
    "Record",
    "VerifyResult",
    "add_cli",
    "chain_hash",
    "canonical_payload",
    "export",
    "format_record",
    "tail",
    "verify",
]

GENESIS_HASH = "0" * 64
SCHEMA_VERSION = 1
# Names the hash input layout above; a future layout gets a new name and schema version.
HASH_ENCODING = "sha256/json-array-v1"

_BATCH = 500  # rows per page when streaming records to a caller


class JournalError(PlantctlError):
    """The journal could not be opened, read or written. The message names the file."""

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"journal {self.path}: {message}" if self.path is not None else message)


class InvalidEvent(JournalError, ValueError):
    """An event cannot be journaled as given (non-finite time, payload not JSON, ...).

    Raised before anything touches the file."""


class JournalCorrupt(JournalError):
    """Opening found the chain or the append-only guards damaged. ``problems`` lists them."""

    def __init__(self, problems: Sequence[str], path: str | Path) -> None:
        self.problems = list(problems)
        super().__init__(
            "integrity check failed on open (run `plantctl journal verify`): " + "; ".join(self.problems),
            path,
        )


class EventKind(StrEnum):
    """The typed events the controller writes. Values equal the names, as stored."""

    LIMIT_CROSSING = "LIMIT_CROSSING"
    TRIP = "TRIP"
    TRIP_RESET = "TRIP_RESET"
    FIRST_OUT = "FIRST_OUT"
    COMMAND = "COMMAND"
    COMMAND_VERIFIED = "COMMAND_VERIFIED"
    COMMAND_FAILED = "COMMAND_FAILED"
    BYPASS_ON = "BYPASS_ON"
    BYPASS_OFF = "BYPASS_OFF"
    OVERRIDE_ON = "OVERRIDE_ON"
    OVERRIDE_OFF = "OVERRIDE_OFF"
    FORCE = "FORCE"
    OPERATOR_ACTION = "OPERATOR_ACTION"
    CONFIG_LOAD = "CONFIG_LOAD"
    LINK_DOWN = "LINK_DOWN"
    LINK_UP = "LINK_UP"
    ALARM = "ALARM"
    PROCEDURE_TRANSITION = "PROCEDURE_TRANSITION"
    TASK = "TASK"
    SYSTEM = "SYSTEM"


class ExportFormat(StrEnum):
    CSV = "csv"
    JSONL = "jsonl"


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened, as the controller hands it to the journal.

    ``t_plant`` is the clock's monotonic plant time, ``t_wall`` the matching epoch
    seconds; ``station`` the station name ("" for controller-wide events);
    ``source`` what produced it (interlock, procedure, alarm, driver, hmi...);
    ``user`` who acted and ``address`` where from (the operator's client address),
    both "" for automatic events. ``payload`` should be JSON: dict/list/str/int/
    float/bool/None. So that no event is ever dropped, other values are recorded
    by fixed rules instead of refused: NaN/±inf become "NaN"/"Infinity"/
    "-Infinity", Enums their value, tuples lists, anything else ``str()``. The
    ``Record`` shows the payload as stored.
    """

    kind: EventKind
    t_plant: float
    t_wall: float
    station: str = ""
    source: str = ""
    user: str = ""
    address: str = ""
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Record:
    """An event as journaled: its place in the chain and its hashes.

    ``event.payload`` is the decoded stored JSON, so a record returned by
    ``append`` equals the one later read back."""

    seq: int
    event: Event
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of a full chain walk. ``problems`` holds one human sentence each."""

    ok: bool
    records: int
    head_seq: int
    head_hash: str
    problems: tuple[str, ...]

    def __str__(self) -> str:
        if self.ok:
            return f"chain intact: {self.records} records, head {self.head_seq} {self.head_hash}"
        return "\n".join(self.problems)


# ---------------------------------------------------------------------------------------------
# Canonical encoding and the chain hash


def canonical_payload(payload: dict[str, Any]) -> str:
    """The payload as stored and hashed: JSON, sorted keys, compact, ASCII only.

    ASCII keeps the stored text byte-identical however it is read back. Keys are
    made strings before sorting, so the stored text is a fixed point:
    ``canonical_payload(json.loads(text)) == text``. Values JSON cannot hold are
    recorded, not refused (a journal must not drop a safety event over a NaN):
    see ``_plain`` for the fixed conversions."""
    if not isinstance(payload, dict):
        raise InvalidEvent(f"payload must be a dict, not {type(payload).__name__}")
    try:
        return json.dumps(_plain(payload), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:  # a cyclic structure
        raise InvalidEvent(f"payload cannot be recorded as JSON: {exc}") from exc


def _plain_key(key: Any) -> str:
    # The names json.dumps would give non-str keys, applied before sorting.
    if isinstance(key, str):
        return str.__str__(key)
    if isinstance(key, Enum):
        return _plain_key(key.value)
    if isinstance(key, float) and not math.isfinite(key):
        return str(_plain(key))
    if key is None or isinstance(key, bool | int | float):
        return json.dumps(key)
    return str(key)


def _plain(value: Any) -> Any:
    """JSON-safe copy of a value, deterministically.

    NaN and infinities become the strings "NaN", "Infinity", "-Infinity" (JSON has
    no such numbers and SQLite would store NULL); Enums become their value; tuples
    and other sequences become lists; anything else becomes ``str(value)``."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)  # a plain str, whatever subclass (StrEnum) it came as
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, dict):
        return {_plain_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return str(value)


def chain_hash(
    prev_hash: str,
    seq: int,
    t_plant: float,
    t_wall: float,
    kind: str,
    station: str,
    source: str,
    user: str,
    address: str,
    payload: str,
) -> str:
    """sha256 hex of the record's fields in the fixed encoding described at the top.

    Raises TypeError/ValueError when a field is of a type a real record never has
    (``verify`` reports that as an edit)."""
    blob = json.dumps(
        [prev_hash, seq, t_plant, t_wall, kind, station, source, user, address, payload],
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    )
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class _Encoded:
    kind: str
    t_plant: float
    t_wall: float
    station: str
    source: str
    user: str
    address: str
    payload: str


def _encode(event: Event) -> _Encoded:
    """Validate and normalise one event, before any write starts."""
    if not isinstance(event, Event):
        raise InvalidEvent(f"not an Event: {event!r}")
    try:
        kind = EventKind(event.kind)
    except ValueError as exc:
        raise InvalidEvent(f"unknown event kind {event.kind!r}") from exc
    times: list[float] = []
    for name in ("t_plant", "t_wall"):
        value = getattr(event, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidEvent(f"{name} must be a finite number, not {value!r}")
        # + 0.0 turns -0.0 into 0.0: SQLite stores an integral REAL as an integer,
        # so -0.0 would read back as 0.0 and no longer match its hash.
        times.append(float(value) + 0.0)
    texts: list[str] = []
    for name in ("station", "source", "user", "address"):
        value = getattr(event, name)
        if not isinstance(value, str):
            raise InvalidEvent(f"{name} must be a str, not {type(value).__name__}")
        try:
            value.encode("utf-8")  # lone surrogates cannot be stored as SQLite text
        except UnicodeEncodeError as exc:
            raise InvalidEvent(f"{name} is not valid text: {exc}") from exc
        texts.append(value)
    return _Encoded(kind.value, times[0], times[1], texts[0], texts[1], texts[2], texts[3],
                    canonical_payload(event.payload))


# ---------------------------------------------------------------------------------------------
# Schema

_COLUMNS = "seq, t_plant, t_wall, kind, station, source, user, address, payload, prev_hash, hash"
_Row = tuple[Any, ...]

_SCHEMA = f"""
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE events (
    seq       INTEGER PRIMARY KEY,
    t_plant   REAL NOT NULL,
    t_wall    REAL NOT NULL,
    kind      TEXT NOT NULL,
    station   TEXT NOT NULL,
    source    TEXT NOT NULL,
    user      TEXT NOT NULL,
    address   TEXT NOT NULL,
    payload   TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
);
CREATE INDEX events_kind ON events(kind);
CREATE INDEX events_station ON events(station);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'journal is append-only: UPDATE on events refused'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'journal is append-only: DELETE on events refused'); END;
CREATE TRIGGER events_append_in_order BEFORE INSERT ON events
WHEN NEW.seq IS NOT (SELECT COALESCE(MAX(seq), 0) + 1 FROM events)
  OR NEW.prev_hash IS NOT COALESCE(
        (SELECT hash FROM events ORDER BY seq DESC LIMIT 1),
        (SELECT value FROM meta WHERE key = 'genesis_hash'))
BEGIN SELECT RAISE(ABORT, 'journal is append-only: a record must follow the last one'); END;
CREATE TRIGGER meta_no_update BEFORE UPDATE ON meta
BEGIN SELECT RAISE(ABORT, 'journal is append-only: UPDATE on meta refused'); END;
CREATE TRIGGER meta_no_delete BEFORE DELETE ON meta
BEGIN SELECT RAISE(ABORT, 'journal is append-only: DELETE on meta refused'); END;
INSERT INTO meta(key, value) VALUES
    ('schema_version', '{SCHEMA_VERSION}'),
    ('genesis_hash', '{GENESIS_HASH}'),
    ('hash_encoding', '{HASH_ENCODING}');
"""

_TRIGGERS = (
    "events_no_update",
    "events_no_delete",
    "events_append_in_order",
    "meta_no_update",
    "meta_no_delete",
)


def _lenient_text(raw: bytes) -> str:
    # Bytes that are not UTF-8 can only be there by tampering: decode them into
    # surrogates so reading never crashes and the hash check flags the row.
    return raw.decode("utf-8", "surrogateescape")


def _structure_problems(conn: sqlite3.Connection) -> list[str]:
    """Meta and append-only guards; empty when all is in place."""
    problems: list[str] = []
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    version = meta.get("schema_version")
    if version != str(SCHEMA_VERSION):
        problems.append(f"meta: schema version {version!r} is not {SCHEMA_VERSION}")
    genesis = meta.get("genesis_hash")
    if genesis != GENESIS_HASH:
        problems.append(f"meta: genesis hash {genesis!r} is not 64 zeros (edited)")
    present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    for name in _TRIGGERS:
        if name not in present:
            problems.append(f"trigger {name} is missing: the append-only guard was removed")
    return problems


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


class _ChainWalker:
    """Checks rows fed in seq order; collects one sentence per break."""

    def __init__(self, expected_seq: int, expected_prev: str, max_problems: int) -> None:
        self.expected_seq = expected_seq
        self.expected_prev = expected_prev
        self.max_problems = max_problems
        self.problems: list[str] = []
        self.suppressed = 0
        self.count = 0
        self.head_seq = expected_seq - 1
        self.head_hash = expected_prev

    def _problem(self, text: str) -> None:
        if len(self.problems) < self.max_problems:
            self.problems.append(text)
        else:
            self.suppressed += 1

    def feed(self, row: _Row) -> None:
        seq, prev_hash, stored_hash = row[0], row[9], row[10]
        try:
            # chain_hash(prev_hash, seq, t_plant, t_wall, kind, station, source, user, address, payload)
            computed: str | None = chain_hash(row[9], row[0], *row[1:9])
        except (TypeError, ValueError):
            computed = None  # a value of a type no real record holds: edited
        if computed is None or computed != stored_hash:
            self._problem(f"record {seq}: hash does not match its contents (edited)")
        if seq != self.expected_seq:
            first, last = self.expected_seq, seq - 1
            if first == last:
                self._problem(f"record {seq}: record {first} is missing before it (deleted); the chain breaks here")
            elif first < last:
                self._problem(
                    f"record {seq}: records {first} to {last} are missing before it (deleted); "
                    "the chain breaks here"
                )
            else:  # cannot happen with an INTEGER PRIMARY KEY read in order; say so if it does
                self._problem(f"record {seq}: out of order after record {first - 1}; the chain breaks here")
        elif prev_hash != self.expected_prev:
            if seq == 1:
                self._problem("record 1: prev_hash is not the genesis hash; the chain breaks here")
            else:
                self._problem(
                    f"record {seq}: prev_hash does not match the hash of record {seq - 1}; the chain breaks "
                    f"here (record {seq - 1} was rewritten, or a record was inserted or deleted)"
                )
        self.count += 1
        self.expected_seq = seq + 1 if isinstance(seq, int) else self.expected_seq + 1
        self.expected_prev = stored_hash
        self.head_seq = seq
        self.head_hash = stored_hash

    def all_problems(self) -> list[str]:
        if self.suppressed:
            return [*self.problems, f"... and {self.suppressed} more problems"]
        return list(self.problems)


def _tail_problems(conn: sqlite3.Connection, n: int) -> list[str]:
    """Check the last ``n`` records' hashes and links (and the link into them)."""
    if n <= 0:
        return []
    rows = conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq DESC LIMIT ?", (n + 1,)).fetchall()
    if not rows:
        return []
    rows.reverse()
    first = rows[0]
    if first[0] == 1:
        walker = _ChainWalker(1, GENESIS_HASH, max_problems=20)
    else:
        # The window starts mid-chain: trust the first row's link back, check the rest.
        walker = _ChainWalker(first[0], first[9], max_problems=20)
    for row in rows:
        walker.feed(row)
    return walker.all_problems()


def _row_to_record(row: _Row, path: Path) -> Record:
    seq = row[0]
    try:
        kind = EventKind(row[3])
        payload = json.loads(row[8])
    except (ValueError, TypeError) as exc:
        raise JournalError(f"record {seq} cannot be read: {exc} (run `plantctl journal verify`)", path) from exc
    if not isinstance(payload, dict):
        raise JournalError(f"record {seq}: payload is not a JSON object (run `plantctl journal verify`)", path)
    event = Event(kind, row[1], row[2], row[4], row[5], row[6], row[7], payload)
    return Record(seq=seq, event=event, prev_hash=row[9], hash=row[10])


def _open_ro(path: str | Path) -> sqlite3.Connection:
    """A read-only connection that never creates the file."""
    p = Path(path)
    if not p.is_file():
        raise JournalError("no such journal file", p)
    try:
        conn = sqlite3.connect(p.resolve().as_uri() + "?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot open: {exc}", p) from exc
    try:
        conn.text_factory = _lenient_text
        tables = _tables(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise JournalError(f"cannot open: {exc}", p) from exc
    if not {"events", "meta"} <= tables:
        conn.close()
        raise JournalError("not a plantctl journal (no events/meta tables)", p)
    return conn


def _select(
    since_seq: int, kinds: Iterable[EventKind | str] | None, station: str | None
) -> tuple[str, list[Any]]:
    where = ["seq > ?"]
    params: list[Any] = [since_seq]
    if kinds is not None:
        kind_values = sorted({EventKind(k).value for k in kinds})
        if not kind_values:
            where.append("0")
        else:
            where.append(f"kind IN ({','.join('?' * len(kind_values))})")
            params.extend(kind_values)
    if station is not None:
        where.append("station = ?")
        params.append(station)
    return f"SELECT {_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?", params


# ---------------------------------------------------------------------------------------------
# The writer


class Journal:
    """The one writer of a journal file. See the module docstring for the threading rule.

    ``tail_check``: how many of the last records to re-hash and re-link on open;
    a damaged tail, a missing guard trigger or a foreign meta table raise
    ``JournalCorrupt`` rather than append onto a chain that is already broken.
    """

    def __init__(self, path: str | Path, *, tail_check: int = 64) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves. The lock makes
            # cross-thread use of the connection safe, so the sqlite3 check is off.
            conn = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open: {exc}", self._path) from exc
        try:
            conn.text_factory = _lenient_text
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise JournalError(f"the file system refused WAL mode (journal_mode={mode})", self._path)
            conn.execute("PRAGMA synchronous=FULL")
            # macOS: plain fsync does not flush the drive cache; F_FULLFSYNC does. No-op elsewhere.
            conn.execute("PRAGMA fullfsync=ON")
            self._create_or_check(conn, tail_check)
            self._head = self._read_head(conn)
        except sqlite3.Error as exc:
            conn.close()
            raise JournalError(f"cannot open: {exc}", self._path) from exc
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _create_or_check(self, conn: sqlite3.Connection, tail_check: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            tables = _tables(conn)
            if not tables:
                # One statement at a time: executescript() would COMMIT our transaction first.
                for statement in _split_sql(_SCHEMA):
                    conn.execute(statement)
            elif not {"events", "meta"} <= tables:
                raise JournalError("not a plantctl journal (other tables, no events/meta)", self._path)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        version = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if version is not None and version[0] != str(SCHEMA_VERSION):
            raise JournalError(f"schema version {version[0]} is not supported (this is {SCHEMA_VERSION})",
                               self._path)
        problems = _structure_problems(conn) + _tail_problems(conn, tail_check)
        if problems:
            raise JournalCorrupt(problems, self._path)

    @staticmethod
    def _read_head(conn: sqlite3.Connection) -> tuple[int, str]:
        row = conn.execute("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, GENESIS_HASH) if row is None else (int(row[0]), str(row[1]))

    # -- properties --------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        return self._path

    @property
    def head(self) -> tuple[int, str]:
        """(seq, hash) of the last record; (0, genesis) when empty. Publish it as an anchor."""
        return self._head

    @property
    def closed(self) -> bool:
        return self._conn is None

    def pragmas(self) -> dict[str, str | int]:
        """The durability settings in force on the writer's connection."""
        with self._lock:
            conn = self._require_open()
            try:
                return {
                    "journal_mode": str(conn.execute("PRAGMA journal_mode").fetchone()[0]),
                    "synchronous": int(conn.execute("PRAGMA synchronous").fetchone()[0]),
                }
            except sqlite3.Error as exc:
                raise JournalError(f"cannot read settings: {exc}", self._path) from exc

    # -- writing -----------------------------------------------------------------------------

    def append(self, event: Event) -> Record:
        """Journal one event; it is on disk when this returns."""
        return self.append_many((event,))[0]

    def append_many(self, events: Iterable[Event]) -> list[Record]:
        """Journal a batch in one transaction and one fsync (the scan's group commit).

        All or nothing: an invalid event raises ``InvalidEvent`` before any write;
        an SQLite failure rolls the whole batch back and raises ``JournalError``."""
        encoded = [_encode(e) for e in events]
        if not encoded:
            return []
        with self._lock:
            conn = self._require_open()
            try:
                conn.execute("BEGIN IMMEDIATE")
                # The head is re-read inside the write lock rather than trusted from
                # memory: after a failed commit whose outcome SQLite left uncertain,
                # the chain still continues from what is really on disk.
                seq, prev = self._read_head(conn)
                rows: list[_Row] = []
                for enc in encoded:
                    seq += 1
                    digest = chain_hash(prev, seq, enc.t_plant, enc.t_wall, enc.kind, enc.station,
                                        enc.source, enc.user, enc.address, enc.payload)
                    rows.append((seq, enc.t_plant, enc.t_wall, enc.kind, enc.station, enc.source,
                                 enc.user, enc.address, enc.payload, prev, digest))
                    prev = digest
                conn.executemany(f"INSERT INTO events ({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(conn)
                raise JournalError(f"append of {len(encoded)} event(s) failed, nothing written: {exc}",
                                   self._path) from exc
            except BaseException:
                self._rollback(conn)
                raise
            self._head = (seq, prev)
        return [_row_to_record(row, self._path) for row in rows]

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        try:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
        except sqlite3.Error:
            # The original error is the one to report; SQLite rolls back an
            # unfinished transaction itself when the connection or file recovers.
            pass

    # -- reading -----------------------------------------------------------------------------

    def records(
        self,
        since_seq: int = 0,
        kinds: Iterable[EventKind | str] | None = None,
        station: str | None = None,
    ) -> Iterator[Record]:
        """Records with seq > ``since_seq``, in order, optionally filtered.

        Streams in pages, taking the lock per page, so a long read never blocks
        the writer for more than one page."""
        sql, params = _select(since_seq, kinds, station)
        after = since_seq
        while True:
            with self._lock:
                conn = self._require_open()
                try:
                    rows = conn.execute(sql, [after, *params[1:], _BATCH]).fetchall()
                except sqlite3.Error as exc:
                    raise JournalError(f"read failed: {exc}", self._path) from exc
            for row in rows:
                yield _row_to_record(row, self._path)
            if len(rows) < _BATCH:
                return
            after = rows[-1][0]

    def last(self, n: int) -> list[Record]:
        """The last ``n`` records, oldest first."""
        if n <= 0:
            return []
        with self._lock:
            conn = self._require_open()
            try:
                rows = conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq DESC LIMIT ?", (n,)).fetchall()
            except sqlite3.Error as exc:
                raise JournalError(f"read failed: {exc}", self._path) from exc
        return [_row_to_record(row, self._path) for row in reversed(rows)]

    # -- life cycle --------------------------------------------------------------------------

    def _require_open(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError("journal is closed", self._path)
        return self._conn

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                try:
                    conn.close()
                except sqlite3.Error as exc:
                    raise JournalError(f"close failed: {exc}", self._path) from exc

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _split_sql(script: str) -> list[str]:
    """Statements of a script, one by one (sqlite3.complete_statement knows trigger bodies)."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        statements.append(buffer.strip())
    return statements


# ---------------------------------------------------------------------------------------------
# Verify, export, tail (read-only, any process)


def verify(
    path: str | Path, anchor: tuple[int, str] | None = None, *, max_problems: int = 100
) -> VerifyResult:
    """Walk the whole chain of the journal at ``path``; never modifies it.

    ``anchor`` is a (seq, hash) recorded elsewhere earlier (``Journal.head``): the
    record must still exist with that hash, which catches a truncated or fully
    re-hashed tail that the chain alone cannot. Problems that prevent reading the
    file at all are reported as problems too, so the result is always an answer.
    """
    try:
        conn = _open_ro(path)
    except JournalError as exc:
        return VerifyResult(False, 0, 0, GENESIS_HASH, (str(exc),))
    try:
        structure = _structure_problems(conn)
        walker = _ChainWalker(1, GENESIS_HASH, max_problems)
        anchor_seen = False
        # One statement, so one read snapshot even while the writer appends.
        for row in conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq"):
            walker.feed(row)
            if anchor is not None and row[0] == anchor[0]:
                anchor_seen = True
                if row[10] != anchor[1]:
                    walker._problem(
                        f"record {anchor[0]}: hash differs from the anchor {anchor[1]} (rewritten)"
                    )
    except sqlite3.Error as exc:
        return VerifyResult(False, 0, 0, GENESIS_HASH, (f"journal {Path(path)}: read failed: {exc}",))
    finally:
        conn.close()
    problems = structure + walker.all_problems()
    if anchor is not None and not anchor_seen:
        problems.append(
            f"record {anchor[0]}: missing, but the anchor names it (journal truncated: it ends at record "
            f"{walker.head_seq})"
        )
    return VerifyResult(
        ok=not problems,
        records=walker.count,
        head_seq=walker.head_seq,
        head_hash=walker.head_hash,
        problems=tuple(problems),
    )


def _iso(t_wall: float) -> str:
    try:
        moment = datetime.fromtimestamp(t_wall, tz=UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        return str(t_wall)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_EXPORT_FIELDS = ("seq", "t_plant", "t_wall", "wall_time", "kind", "station", "source", "user", "address",
                  "payload", "prev_hash", "hash")


def export(path: str | Path, fmt: ExportFormat | str, out: TextIO, since_seq: int = 0) -> int:
    """Write records with seq > ``since_seq`` to ``out``; returns how many.

    Rows are exported as stored (not re-validated), so a damaged journal can still
    be handed to an investigation. CSV keeps the payload as its canonical JSON
    text; JSONL gives it as an object. Both keep ``prev_hash``/``hash`` so the
    export itself can be re-checked."""
    try:
        form = ExportFormat(fmt)
    except ValueError as exc:
        raise JournalError(f"unknown export format {fmt!r} (csv or jsonl)", path) from exc
    conn = _open_ro(path)
    count = 0
    try:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM events WHERE seq > ? ORDER BY seq", (since_seq,))
        if form is ExportFormat.CSV:
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(_EXPORT_FIELDS)
            for r in rows:
                writer.writerow((r[0], repr(r[1]), repr(r[2]), _iso(r[2]), *r[3:]))
                count += 1
        else:
            for r in rows:
                try:
                    payload: Any = json.loads(r[8])
                except (ValueError, TypeError):
                    payload = r[8]  # damaged: hand over the text as it is
                obj = dict(zip(_EXPORT_FIELDS, (r[0], r[1], r[2], _iso(r[2]), *r[3:8], payload, r[9], r[10]),
                               strict=True))
                out.write(json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n")
                count += 1
    except sqlite3.Error as exc:
        raise JournalError(f"export failed: {exc}", path) from exc
    finally:
        conn.close()
    return count


def _summary(payload: dict[str, Any], width: int = 100) -> str:
    parts: list[str] = []
    for key in sorted(payload):
        value = payload[key]
        if isinstance(value, str) and value and not any(c.isspace() or c == "=" for c in value):
            text = value
        else:
            text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        parts.append(f"{key}={text}")
    line = " ".join(parts)
    return line if len(line) <= width else line[: width - 3] + "..."


def format_record(record: Record) -> str:
    """One line: ISO wall time, seq, kind, station, source, user, payload summary."""
    e = record.event
    return (
        f"{_iso(e.t_wall)}  {record.seq:>8}  {e.kind.value:<20}  {e.station or '-':<14}  "
        f"{e.source or '-':<12}  {e.user or '-':<10}  {_summary(e.payload)}"
    ).rstrip()


def tail(path: str | Path, n: int = 20) -> list[str]:
    """The last ``n`` records of the journal at ``path``, formatted, oldest first."""
    conn = _open_ro(path)
    try:
        rows = conn.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq DESC LIMIT ?", (max(n, 0),)).fetchall()
    except sqlite3.Error as exc:
        raise JournalError(f"read failed: {exc}", path) from exc
    finally:
        conn.close()
    return [format_record(_row_to_record(row, Path(path))) for row in reversed(rows)]


# ---------------------------------------------------------------------------------------------
# CLI


def _parse_anchor(text: str) -> tuple[int, str]:
    seq_text, sep, digest = text.partition(":")
    try:
        seq = int(seq_text)
    except ValueError:
        seq = -1
    if not sep or seq < 1 or len(digest) != 64:
        raise argparse.ArgumentTypeError(f"anchor must be SEQ:HASH (64 hex digits), not {text!r}")
    return seq, digest.lower()


def _cmd_verify(args: argparse.Namespace) -> int:
    result = verify(args.path, anchor=args.anchor)
    if result.ok:
        print(f"{args.path}: {result}")
        return 0
    print(f"{args.path}: {len(result.problems)} problem(s) found, the journal is NOT intact:")
    for problem in result.problems:
        print(f"  {problem}")
    return 1


def _cmd_tail(args: argparse.Namespace) -> int:
    try:
        lines = tail(args.path, args.n)
    except JournalError as exc:
        print(exc, file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    try:
        if args.output is None:
            export(args.path, args.format, sys.stdout, since_seq=args.since)
        else:
            with open(args.output, "w", encoding="utf-8", newline="") as out:
                export(args.path, args.format, out, since_seq=args.since)
    except (JournalError, OSError) as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def add_cli(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Register ``journal verify|tail|export`` on a main CLI's subparsers.

    Each leaf parser sets ``func``; the main CLI calls ``args.func(args)`` and
    exits with its int return (verify: 0 intact, 1 problems printed)."""
    journal = subparsers.add_parser("journal", help="check, read and export the event journal")
    commands = journal.add_subparsers(dest="journal_command", required=True, metavar="COMMAND")

    p_verify = commands.add_parser("verify", help="walk the whole hash chain; exit 1 if anything is wrong")
    p_verify.add_argument("path", metavar="PATH")
    p_verify.add_argument("--anchor", type=_parse_anchor, default=None, metavar="SEQ:HASH",
                          help="a head recorded elsewhere earlier; catches a truncated or re-hashed tail")
    p_verify.set_defaults(func=_cmd_verify)

    p_tail = commands.add_parser("tail", help="print the last records, one per line")
    p_tail.add_argument("path", metavar="PATH")
    p_tail.add_argument("-n", type=int, default=20, metavar="N", help="how many records (default 20)")
    p_tail.set_defaults(func=_cmd_tail)

    p_export = commands.add_parser("export", help="export records as CSV or JSON lines")
    p_export.add_argument("path", metavar="PATH")
    p_export.add_argument("--format", required=True, choices=[f.value for f in ExportFormat])
    p_export.add_argument("-o", "--output", default=None, metavar="FILE", help="default: standard output")
    p_export.add_argument("--since", type=int, default=0, metavar="SEQ", help="only records after SEQ")
    p_export.set_defaults(func=_cmd_export)
    return journal


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m plantctl.journal verify PATH`` and friends, without the main CLI."""
    parser = argparse.ArgumentParser(prog="python -m plantctl.journal")
    sub = parser.add_subparsers(dest="command", required=True)
    add_cli(sub)
    args = parser.parse_args(["journal", *(sys.argv[1:] if argv is None else argv)])
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
