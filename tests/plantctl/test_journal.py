"""Tests for plantctl.journal: durability settings, append-only guards, the hash
chain and what verify names when someone tampers with the file."""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import closing
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantctl.errors import PlantctlError
from plantctl.journal import (
    GENESIS_HASH,
    Event,
    EventKind,
    InvalidEvent,
    Journal,
    JournalCorrupt,
    JournalError,
    Record,
    add_cli,
    canonical_payload,
    chain_hash,
    export,
    format_record,
    tail,
    verify,
)

T_WALL0 = 1_717_243_200.0  # 2024-06-01T12:00:00Z


def ev(i: int, kind: EventKind = EventKind.LIMIT_CROSSING, station: str = "gas_station", **payload: Any) -> Event:
    return Event(
        kind=kind,
        t_plant=10.0 + i * 0.1,
        t_wall=T_WALL0 + i * 0.1,
        station=station,
        source="interlock",
        user="",
        address="",
        payload={"tag": "PT-101", "value": 70.0 + i, **payload},
    )


@pytest.fixture
def jpath(tmp_path: Path) -> Path:
    return tmp_path / "journal.db"


@pytest.fixture
def journal(jpath: Path) -> Iterator[Journal]:
    j = Journal(jpath)
    yield j
    j.close()


def filled(jpath: Path, n: int) -> list[Record]:
    with Journal(jpath) as j:
        return j.append_many(ev(i) for i in range(n))


def attacker(jpath: Path) -> sqlite3.Connection:
    """A raw connection with the append-only triggers dropped, as an attacker would."""
    conn = sqlite3.connect(jpath, isolation_level=None)
    for name in ("events_no_update", "events_no_delete", "events_append_in_order"):
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    return conn


def rehash_row(conn: sqlite3.Connection, seq: int) -> str:
    """Recompute one row's hash from its current contents (a careful attacker)."""
    row = conn.execute(
        "SELECT prev_hash, seq, t_plant, t_wall, kind, station, source, user, address, payload "
        "FROM events WHERE seq = ?",
        (seq,),
    ).fetchone()
    digest = chain_hash(*row)
    conn.execute("UPDATE events SET hash = ? WHERE seq = ?", (digest, seq))
    return digest


def named(result_problems: tuple[str, ...], seq: int) -> bool:
    return any(p.startswith(f"record {seq}:") for p in result_problems)


def chain_problems(problems: tuple[str, ...]) -> list[str]:
    """Problems about records (not the dropped-trigger notices an attack also leaves)."""
    return [p for p in problems if p.startswith("record ")]


# ---------------------------------------------------------------------------------------------
# Writing and reading back


def test_append_and_read_back_round_trip(jpath: Path) -> None:
    with Journal(jpath) as j:
        first = j.append(ev(0, EventKind.TRIP, user="op1"))
        batch = j.append_many([ev(1), ev(2, EventKind.COMMAND, "pump_station"), ev(3)])
        op = j.append(
            Event(EventKind.OPERATOR_ACTION, 11.0, T_WALL0 + 1, "pump_station", "hmi", "alice", "10.0.0.7",
                  {"action": "ack", "alarm": "GD-501B", "nested": {"b": [1, 2.5, None, True], "a": "é"}})
        )
        written = [first, *batch, op]
        assert [r.seq for r in written] == [1, 2, 3, 4, 5]
        assert first.prev_hash == GENESIS_HASH
        for before, after in zip(written, written[1:], strict=False):
            assert after.prev_hash == before.hash
        assert j.head == (5, op.hash)

        read = list(j.records())
        assert read == written
        assert read[4].event.user == "alice" and read[4].event.address == "10.0.0.7"
        assert read[4].event.payload["nested"] == {"a": "é", "b": [1, 2.5, None, True]}

        assert [r.seq for r in j.records(since_seq=3)] == [4, 5]
        assert [r.seq for r in j.records(kinds=[EventKind.COMMAND, EventKind.TRIP])] == [1, 3]
        assert [r.seq for r in j.records(station="pump_station")] == [3, 5]
        assert [r.seq for r in j.records(kinds=["OPERATOR_ACTION"], station="pump_station")] == [5]
        assert list(j.records(kinds=[])) == []
        assert [r.seq for r in j.last(2)] == [4, 5]
        assert j.last(0) == []

    # Reopening restores the head; the chain continues unbroken.
    with Journal(jpath) as j:
        assert j.head == (5, op.hash)
        nxt = j.append(ev(6))
        assert nxt.seq == 6 and nxt.prev_hash == op.hash
    assert verify(jpath).ok


def test_records_streams_across_pages(journal: Journal) -> None:
    journal.append_many(ev(i, station="gas_station" if i % 2 else "pump_station") for i in range(1203))
    seqs = [r.seq for r in journal.records()]
    assert seqs == list(range(1, 1204))
    assert [r.seq for r in journal.records(station="gas_station")] == list(range(2, 1204, 2))


def test_wal_and_synchronous_full_are_set(journal: Journal, jpath: Path) -> None:
    settings_ = journal.pragmas()
    assert settings_["journal_mode"] == "wal"
    assert settings_["synchronous"] == 2  # FULL
    journal.append(ev(0))
    # journal_mode=WAL is a property of the file: a fresh connection sees it too.
    with closing(sqlite3.connect(jpath)) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(raw.execute("SELECT key, value FROM meta"))
    assert meta["schema_version"] == "1"
    assert meta["genesis_hash"] == GENESIS_HASH


def test_update_delete_and_out_of_order_insert_are_refused_by_triggers(jpath: Path) -> None:
    recs = filled(jpath, 3)
    raw = sqlite3.connect(jpath, isolation_level=None)
    with pytest.raises(sqlite3.DatabaseError, match="append-only: UPDATE"):
        raw.execute("UPDATE events SET payload = '{}' WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only: DELETE"):
        raw.execute("DELETE FROM events WHERE seq = 2")
    with pytest.raises(sqlite3.DatabaseError, match="append-only: DELETE"):
        raw.execute("DELETE FROM events")
    with pytest.raises(sqlite3.DatabaseError, match="append-only: UPDATE on meta"):
        raw.execute("UPDATE meta SET value = 'x' WHERE key = 'genesis_hash'")
    forged = (10, 1.0, 1.0, "TRIP", "", "", "", "", "{}", recs[-1].hash, "f" * 64)
    with pytest.raises(sqlite3.DatabaseError, match="must follow the last one"):
        raw.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)", forged)
    wrong_link = (4, 1.0, 1.0, "TRIP", "", "", "", "", "{}", "e" * 64, "f" * 64)
    with pytest.raises(sqlite3.DatabaseError, match="must follow the last one"):
        raw.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)", wrong_link)
    raw.close()
    result = verify(jpath)
    assert result.ok, result.problems
    assert result.records == 3


def test_group_commit_of_ten_thousand_events(journal: Journal, jpath: Path) -> None:
    # As the scan writes: batches of 100, each one transaction and one fsync.
    for b in range(50):
        recs = journal.append_many(ev(b * 100 + i) for i in range(100))
        assert len(recs) == 100
    # And one batch of 5,000 at once.
    big = journal.append_many(ev(i, EventKind.ALARM) for i in range(5000))
    assert big[0].seq == 5001 and big[-1].seq == 10_000
    assert journal.head == (10_000, big[-1].hash)
    result = verify(jpath)
    assert result.ok, result.problems
    assert result.records == 10_000 and result.head_hash == big[-1].hash


def test_invalid_events_are_refused_before_anything_is_written(journal: Journal, jpath: Path) -> None:
    journal.append(ev(0))
    cyclic: dict[str, Any] = {}
    cyclic["self"] = cyclic
    bad = [
        Event(EventKind.TRIP, float("nan"), T_WALL0),
        Event(EventKind.TRIP, 1.0, float("inf")),
        Event(EventKind.TRIP, 1.0, T_WALL0, payload=cyclic),
        Event(EventKind.TRIP, 1.0, T_WALL0, station="gas\udcffstation"),
        Event("NOT_A_KIND", 1.0, T_WALL0),  # type: ignore[arg-type]
    ]
    for event in bad:
        with pytest.raises(InvalidEvent):
            journal.append_many([ev(1), event])  # the good one before it is not written either
    assert journal.head[0] == 1
    assert [r.seq for r in journal.records()] == [1]
    assert journal.append(ev(2)).seq == 2
    assert verify(jpath).ok


class Mode(IntEnum):
    AUTO = 2


def test_payload_values_json_cannot_hold_are_recorded_by_fixed_rules(journal: Journal, jpath: Path) -> None:
    # A NaN from a failed reading must not cost the event: it is recorded, as a string.
    odd: dict[Any, Any] = {
        "value": float("nan"), "hi": float("inf"), "lo": float("-inf"), "kind": EventKind.TRIP,
        "mode": Mode.AUTO, "pair": (1, 2), 7: "int key", "other": Path("/x"),
    }
    rec = journal.append(Event(EventKind.LIMIT_CROSSING, 1.0, T_WALL0, "gas_station", "limits", "", "", odd))
    assert rec.event.payload == {
        "value": "NaN", "hi": "Infinity", "lo": "-Infinity", "kind": "TRIP", "mode": 2, "pair": [1, 2],
        "7": "int key", "other": "/x",
    }
    assert list(journal.records()) == [rec]
    # SQLite reads a stored -0.0 back as 0.0; the journal stores 0.0 so the hash still holds.
    zero = journal.append(Event(EventKind.SYSTEM, -0.0, T_WALL0)).event.t_plant
    assert math.copysign(1.0, zero) == 1.0
    assert verify(jpath).ok


# ---------------------------------------------------------------------------------------------
# Tampering and verify


def test_editing_one_byte_of_a_payload_is_named_by_verify(jpath: Path) -> None:
    recs = filled(jpath, 10)
    raw = attacker(jpath)
    payload = raw.execute("SELECT payload FROM events WHERE seq = 4").fetchone()[0]
    assert '"value":73.0' in payload
    raw.execute("UPDATE events SET payload = ? WHERE seq = 4", (payload.replace("73.0", "23.0"),))
    raw.close()

    result = verify(jpath)
    assert not result.ok
    assert "record 4: hash does not match its contents (edited)" in result.problems
    assert chain_problems(result.problems) == ["record 4: hash does not match its contents (edited)"]
    assert result.records == 10 and result.head_hash == recs[-1].hash


def test_edit_with_recomputed_hash_breaks_the_link_of_the_next_record(jpath: Path) -> None:
    filled(jpath, 10)
    raw = attacker(jpath)
    raw.execute("UPDATE events SET user = 'mallory' WHERE seq = 6")
    rehash_row(raw, 6)
    raw.close()
    problems = chain_problems(verify(jpath).problems)
    assert len(problems) == 1
    assert problems[0].startswith("record 7: prev_hash does not match the hash of record 6")


def test_deleting_a_middle_record_is_named(jpath: Path) -> None:
    filled(jpath, 10)
    raw = attacker(jpath)
    raw.execute("DELETE FROM events WHERE seq = 5")
    raw.close()
    result = verify(jpath)
    assert not result.ok
    assert chain_problems(result.problems) == [
        "record 6: record 5 is missing before it (deleted); the chain breaks here"
    ]


def test_deleting_the_first_records_is_named(jpath: Path) -> None:
    filled(jpath, 5)
    raw = attacker(jpath)
    raw.execute("DELETE FROM events WHERE seq <= 2")
    raw.close()
    assert chain_problems(verify(jpath).problems) == [
        "record 3: records 1 to 2 are missing before it (deleted); the chain breaks here"
    ]


def test_inserting_a_forged_record_is_named(jpath: Path) -> None:
    recs = filled(jpath, 8)
    raw = attacker(jpath)
    # Make room after record 4 and slip in a forged record 5 with a correct hash and
    # link, exactly as the journal would have written it.
    for seq in range(8, 4, -1):
        raw.execute("UPDATE events SET seq = seq + 1 WHERE seq = ?", (seq,))
    fields = (recs[3].hash, 5, 10.45, T_WALL0 + 0.45, "OPERATOR_ACTION", "gas_station", "hmi", "mallory",
              "10.6.6.6", '{"action":"reset"}')
    raw.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (fields[1], *fields[2:], fields[0], chain_hash(*fields)))
    raw.close()
    result = verify(jpath)
    assert not result.ok
    assert not named(result.problems, 5)  # the forgery itself is well made...
    # ...but the record displaced after it no longer links to it: the chain breaks at 6.
    assert any(p.startswith("record 6: prev_hash does not match the hash of record 5") for p in result.problems)


def test_a_naive_forged_tail_record_is_named(jpath: Path) -> None:
    recs = filled(jpath, 4)
    raw = attacker(jpath)
    raw.execute("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (5, 1.0, 1.0, "TRIP_RESET", "", "", "", "", "{}", recs[-1].hash, "a" * 64))
    raw.close()
    assert chain_problems(verify(jpath).problems) == ["record 5: hash does not match its contents (edited)"]


def test_rewritten_or_truncated_tail_is_caught_against_an_anchor(jpath: Path) -> None:
    recs = filled(jpath, 6)
    anchor = (6, recs[-1].hash)
    assert verify(jpath, anchor=anchor).ok

    # Rewrite record 6 and re-hash it: the chain alone stays consistent...
    raw = attacker(jpath)
    raw.execute("UPDATE events SET payload = '{\"tag\":\"PT-101\",\"value\":1.0}' WHERE seq = 6")
    rehash_row(raw, 6)
    raw.close()
    assert chain_problems(verify(jpath).problems) == []
    # ...but not against the head published earlier.
    result = verify(jpath, anchor=anchor)
    assert not result.ok
    assert f"record 6: hash differs from the anchor {anchor[1]} (rewritten)" in result.problems

    raw = attacker(jpath)
    raw.execute("DELETE FROM events WHERE seq >= 5")
    raw.close()
    result = verify(jpath, anchor=anchor)
    assert "record 6: missing, but the anchor names it (journal truncated: it ends at record 4)" in result.problems


def test_dropped_triggers_are_reported_even_when_rows_are_intact(jpath: Path) -> None:
    filled(jpath, 3)
    attacker(jpath).close()
    result = verify(jpath)
    assert not result.ok
    assert "trigger events_no_update is missing: the append-only guard was removed" in result.problems
    assert chain_problems(result.problems) == []


def test_opening_refuses_a_damaged_tail(jpath: Path) -> None:
    filled(jpath, 5)
    raw = attacker(jpath)
    raw.execute("UPDATE events SET station = 'elsewhere' WHERE seq = 5")
    raw.close()
    with pytest.raises(JournalCorrupt) as info:
        Journal(jpath)
    assert "record 5: hash does not match its contents (edited)" in info.value.problems
    assert str(jpath) in str(info.value)


def test_verify_of_a_missing_or_foreign_file_is_a_failed_result(tmp_path: Path) -> None:
    missing = verify(tmp_path / "nope.db")
    assert not missing.ok and "no such journal file" in missing.problems[0]
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as raw:
        raw.execute("CREATE TABLE t (x)")
        raw.commit()
    assert "not a plantctl journal" in verify(other).problems[0]
    with pytest.raises(JournalError, match="not a plantctl journal"):
        Journal(other)


def test_empty_journal_verifies(jpath: Path) -> None:
    Journal(jpath).close()
    result = verify(jpath)
    assert result.ok and result.records == 0 and result.head_hash == GENESIS_HASH


# ---------------------------------------------------------------------------------------------
# Property: any journal verifies; any single-byte change in any payload is caught

_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()  # NaN and infinities too: recorded by fixed rules, never refused
    | st.text(max_size=12)
)
_json = st.recursive(
    _json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
_field_text = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=10)
_events = st.builds(
    Event,
    kind=st.sampled_from(EventKind),
    t_plant=st.floats(allow_nan=False, allow_infinity=False),
    t_wall=st.floats(min_value=0, max_value=4e9),
    station=_field_text,
    source=_field_text,
    user=_field_text,
    address=_field_text,
    payload=st.dictionaries(st.text(max_size=8), _json, max_size=5),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=st.lists(_events, min_size=1, max_size=12), pick=st.data())
def test_property_verify_passes_and_any_payload_byte_change_is_detected(
    events: list[Event], pick: st.DataObject
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "j.db"
        with Journal(path) as j:
            split = pick.draw(st.integers(0, len(events)), label="split")
            written = j.append_many(events[:split]) + [j.append(e) for e in events[split:]]
            assert list(j.records()) == written
        result = verify(path)
        assert result.ok, result.problems
        assert result.records == len(events)

        seq = pick.draw(st.integers(1, len(events)), label="seq")
        raw = attacker(path)
        stored: str = raw.execute("SELECT payload FROM events WHERE seq = ?", (seq,)).fetchone()[0]
        # The stored text is canonical: re-encoding what was read back gives it again.
        assert canonical_payload(written[seq - 1].event.payload) == stored
        data = bytearray(stored.encode("utf-8"))
        pos = pick.draw(st.integers(0, len(data) - 1), label="pos")
        new = pick.draw(st.integers(0, 255).filter(lambda b: b != data[pos]), label="byte")
        data[pos] = new
        # Store the bytes as TEXT exactly (even when they are no longer UTF-8).
        raw.execute("UPDATE events SET payload = CAST(? AS TEXT) WHERE seq = ?", (bytes(data), seq))
        raw.close()

        result = verify(path)
        assert not result.ok
        assert chain_problems(result.problems) == [f"record {seq}: hash does not match its contents (edited)"]


# ---------------------------------------------------------------------------------------------
# IO errors


def test_disk_full_on_append_raises_journal_error_and_keeps_the_chain(journal: Journal, jpath: Path) -> None:
    journal.append_many(ev(i) for i in range(3))
    head = journal.head
    # Simulate a full disk: forbid the file to grow beyond its current pages.
    conn = journal._conn
    assert conn is not None
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(JournalError) as info:
        journal.append_many([ev(10), ev(11, blob="x" * 200_000), ev(12)])
    assert isinstance(info.value, PlantctlError)
    assert str(jpath) in str(info.value) and "full" in str(info.value)
    assert info.value.path == jpath
    assert journal.head == head
    assert [r.seq for r in journal.records()] == [1, 2, 3]  # nothing half-written
    assert verify(jpath).ok

    # Space comes back: the same writer carries on and the chain stays whole.
    conn.execute("PRAGMA max_page_count = 1073741823")
    recs = journal.append_many([ev(20), ev(21, blob="x" * 200_000)])
    assert [r.seq for r in recs] == [4, 5] and recs[0].prev_hash == head[1]
    result = verify(jpath)
    assert result.ok, result.problems
    assert result.records == 5


def test_connection_closed_under_the_writer_raises_journal_error(journal: Journal, jpath: Path) -> None:
    journal.append(ev(0))
    assert journal._conn is not None
    journal._conn.close()
    with pytest.raises(JournalError, match=str(jpath)):
        journal.append(ev(1))
    with pytest.raises(JournalError):
        journal.last(1)
    assert verify(jpath).ok


def test_closed_journal_refuses_appends(jpath: Path) -> None:
    j = Journal(jpath)
    j.close()
    j.close()  # idempotent
    assert j.closed
    with pytest.raises(JournalError, match="closed"):
        j.append(ev(0))


def test_unopenable_path_raises_journal_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot open"):
        Journal(tmp_path / "no" / "such" / "dir" / "j.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an sqlite file at all" * 100)
    with pytest.raises(JournalError, match=str(garbage)):
        Journal(garbage)


# ---------------------------------------------------------------------------------------------
# Export, tail and the CLI


def test_export_csv_and_jsonl(jpath: Path) -> None:
    recs = filled(jpath, 4)
    buf = io.StringIO()
    assert export(jpath, "csv", buf) == 4
    rows = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert [int(r["seq"]) for r in rows] == [1, 2, 3, 4]
    assert rows[1]["kind"] == "LIMIT_CROSSING" and rows[1]["station"] == "gas_station"
    assert float(rows[1]["t_wall"]) == recs[1].event.t_wall
    assert rows[1]["wall_time"] == "2024-06-01T12:00:00.100Z"
    assert json.loads(rows[1]["payload"]) == recs[1].event.payload
    assert rows[3]["hash"] == recs[3].hash and rows[3]["prev_hash"] == recs[2].hash

    buf = io.StringIO()
    assert export(jpath, "jsonl", buf, since_seq=2) == 2
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert [o["seq"] for o in lines] == [3, 4]
    assert lines[0]["payload"] == recs[2].event.payload and lines[0]["hash"] == recs[2].hash
    # The export carries everything needed to re-check each hash.
    o = lines[1]
    assert chain_hash(o["prev_hash"], o["seq"], o["t_plant"], o["t_wall"], o["kind"], o["station"], o["source"],
                      o["user"], o["address"],
                      json.dumps(o["payload"], sort_keys=True, separators=(",", ":"))) == o["hash"]

    with pytest.raises(JournalError, match="unknown export format"):
        export(jpath, "xml", io.StringIO())


def test_tail_formats_one_line_per_record(jpath: Path) -> None:
    with Journal(jpath) as j:
        j.append_many(ev(i) for i in range(5))
        rec = j.append(Event(EventKind.OPERATOR_ACTION, 20.0, T_WALL0 + 60, "pump_station", "hmi", "alice",
                             "10.0.0.7", {"action": "ack", "note": "checked on site"}))
    lines = tail(jpath, 2)
    assert len(lines) == 2
    assert lines[-1] == format_record(rec)
    last = lines[-1]
    assert last.startswith("2024-06-01T12:01:00.000Z")
    for part in ("6", "OPERATOR_ACTION", "pump_station", "hmi", "alice", "action=ack", 'note="checked on site"'):
        assert part in last
    assert "       5  LIMIT_CROSSING" in lines[0]


def _cli() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="plantctl")
    add_cli(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_verify_exit_codes_and_output(jpath: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recs = filled(jpath, 5)
    args = _cli().parse_args(["journal", "verify", str(jpath)])
    assert args.func(args) == 0
    assert "chain intact: 5 records" in capsys.readouterr().out

    args = _cli().parse_args(["journal", "verify", str(jpath), "--anchor", f"5:{recs[-1].hash}"])
    assert args.func(args) == 0
    capsys.readouterr()

    raw = attacker(jpath)
    raw.execute("UPDATE events SET user = 'mallory' WHERE seq = 3")
    raw.close()
    args = _cli().parse_args(["journal", "verify", str(jpath)])
    assert args.func(args) == 1
    out = capsys.readouterr().out
    assert "NOT intact" in out
    assert "record 3: hash does not match its contents (edited)" in out

    args = _cli().parse_args(["journal", "verify", str(jpath.with_name("missing.db"))])
    assert args.func(args) == 1


def test_cli_bad_anchor_is_a_usage_error(jpath: Path) -> None:
    with pytest.raises(SystemExit):
        _cli().parse_args(["journal", "verify", str(jpath), "--anchor", "five"])


def test_cli_tail_and_export(jpath: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    filled(jpath, 4)
    args = _cli().parse_args(["journal", "tail", str(jpath), "-n", "3"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3 and "value=73.0" in out[-1]

    target = tmp_path / "out.csv"
    args = _cli().parse_args(["journal", "export", str(jpath), "--format", "csv", "-o", str(target)])
    assert args.func(args) == 0
    with target.open(newline="") as f:
        assert len(list(csv.DictReader(f))) == 4

    args = _cli().parse_args(["journal", "export", str(jpath), "--format", "jsonl"])
    assert args.func(args) == 0
    assert [json.loads(line)["seq"] for line in capsys.readouterr().out.splitlines()] == [1, 2, 3, 4]

    args = _cli().parse_args(["journal", "tail", str(tmp_path / "missing.db")])
    assert args.func(args) == 1
    assert "no such journal file" in capsys.readouterr().err

    with pytest.raises(SystemExit):
        _cli().parse_args(["journal", "export", str(jpath), "--format", "xml"])
