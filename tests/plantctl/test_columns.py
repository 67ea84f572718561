"""The array paths give what the per-signal code gives, signal for signal.

The tag table stores readings as columns, the Modbus driver decodes whole blocks with
numpy, and the engine checks limits and alarms on arrays (docs/performance.md). Each is
checked here against the plain per-signal function it replaces, on the real I/O lists
and on random walks that cross every limit, go BAD, turn to bools and NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from plantctl.alarms import AlarmBoard, _VectorPoints
from plantctl.engine import _BANDS, Engine, EngineConfig, _band
from plantctl.fieldbus.base import reading_from_raw
from plantctl.fieldbus.modbus import BlockDecoder, plan_reads
from plantctl.iolist import IOList, Kind, load_io_list
from plantctl.journal import EventKind
from plantctl.paths import io_dir
from plantctl.tags import QUALITIES, REASONS, Quality, Reading, Reason, TagTable, columns_of

STATIONS = ("gas_station", "pump_station")


@pytest.fixture(scope="module")
def iolists() -> dict[str, IOList]:
    return {name: load_io_list(io_dir() / f"{name}.yaml") for name in STATIONS}


def _typed(v: float, vtype: int) -> float | int | bool:
    return (float, int, bool)[vtype](v)


@pytest.mark.parametrize("station", STATIONS)
def test_block_decoder_matches_reading_from_raw(iolists: dict[str, IOList], station: str) -> None:
    rng = np.random.default_rng(7)
    for block in plan_reads(iolists[station].signals):
        dec = BlockDecoder(block.signals)
        edges = {0, 1, 65535, 3599, 3600, 3601, 4000, 20000, 20999, 21000, 21001, 19999, 4001}
        for s in block.signals:
            for pair in (s.raw, s.fault_raw):
                if pair:
                    edges.update({pair[0] - 1, pair[0], pair[0] + 1, pair[1] - 1, pair[1], pair[1] + 1})
        trials = [[e] * block.count for e in sorted(e for e in edges if 0 <= e <= 65535)]
        trials += [rng.integers(0, 65536, block.count).tolist() for _ in range(200)]
        trials += [rng.integers(3400, 21200, block.count).tolist() for _ in range(200)]
        for raws in trials:
            if block.is_bits:
                raws = [1 if r % 2 else 0 for r in raws]
            value, quality, reason = dec.decode(raws)
            for i, (sig, raw) in enumerate(zip(block.signals, raws, strict=True)):
                want = reading_from_raw(sig, raw, 1.0)
                got = Reading(_typed(value[i], dec.vtype[i]), QUALITIES[quality[i]], 1.0, REASONS[reason[i]])
                assert got == want and type(got.value) is type(want.value), (sig.tag, raw, got, want)


@pytest.mark.parametrize("live", [True, False])
def test_table_gives_back_what_was_written_and_applies_staleness(live: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(TagTable, "columns_min", 0 if live else 10**9)
    table = TagTable(["A", "B", "C", "D"], stale_after=3.0, t0=0.0)
    assert table.columns_live is live
    written = {
        "A": Reading(1.5, Quality.GOOD, 10.0),
        "B": Reading(True, Quality.UNCERTAIN, 10.0, Reason.OUT_OF_RANGE),
        "C": Reading(3, Quality.GOOD, 8.0),
    }
    for k, r in written.items():
        table.update(k, r)
    snap = table.snapshot(10.5)
    for k, r in written.items():
        assert snap[k] == r and type(snap[k].value) is type(r.value)
    assert snap["D"] == Reading(0.0, Quality.BAD, 0.0, Reason.NOT_CONNECTED)
    # C not refreshed for more than 3 s: BAD/STALE, value and time kept
    later = table.snapshot(11.5)
    assert later["C"] == Reading(3, Quality.BAD, 8.0, Reason.STALE)
    assert later["A"] == written["A"]
    assert snap["C"] == written["C"]  # an earlier snapshot does not change
    cols = columns_of(later, ("A", "C", "nope"))
    assert cols.present.tolist() == [True, True, False]
    assert cols.quality.tolist()[:2] == [int(Quality.GOOD), int(Quality.BAD)]
    # a block written as columns reads back as readings, and replaces older objects
    rows = table.index(["A", "B"])
    table.update("A", Reading(9.0, Quality.GOOD, 12.0))
    assert table.changed(rows, np.array([9.0, 1.0]), np.array([2, 1], dtype=np.int8)) is False
    assert table.changed(rows, np.array([9.0, 0.0]), np.array([2, 1], dtype=np.int8)) is True
    table.update_columns(rows, np.array([2.0, 0.0]), np.array([0, 2], dtype=np.int8),
                         np.array([2, 0], dtype=np.int8), np.array([0, 4], dtype=np.int8), 12.0)
    assert table["A"] == Reading(2.0, Quality.GOOD, 12.0)
    assert table["B"] == Reading(False, Quality.BAD, 12.0, REASONS[4])
    assert table.columns_live  # a block written as columns keeps them from now on
    table.update("C", Reading(7, Quality.GOOD, 12.5))
    assert table.snapshot(13.0)["C"] == Reading(7, Quality.GOOD, 12.5)
    table.mark_bad(["A"], Reason.COMMS_LOST, 13.0)
    assert table.snapshot(13.0)["A"] == Reading(2.0, Quality.BAD, 13.0, Reason.COMMS_LOST)
    with pytest.raises(KeyError):
        table.update("nope", written["A"])


def _walk(iolists: dict[str, IOList], steps: int, seed: int) -> list[dict[str, Reading]]:
    """Random snapshots ("station:TAG") that cross every limit, go BAD, NaN or bool now and then."""
    rng = np.random.default_rng(seed)
    sigs = [(st, s) for st, iol in iolists.items() for s in iol.signals if s.kind is not Kind.COMMAND_OUT]
    level = {f"{st}:{s.tag}": 0.5 for st, s in sigs}
    out = []
    for k in range(steps):
        snap: dict[str, Reading] = {}
        for st, s in sigs:
            key = f"{st}:{s.tag}"
            t = 0.1 * k + (0.05 if rng.random() < 0.1 else 0.0)
            u = rng.random()
            if s.kind is Kind.DIGITAL_IN:
                value: float | int | bool = bool(rng.random() < 0.3)
            elif s.kind is Kind.STATE_ENUM:
                value = int(rng.integers(0, len(s.states or [1])))
            else:
                level[key] = float(np.clip(level[key] + rng.normal(0, 0.08), -0.05, 1.05))
                lo, hi = s.range or (0.0, 1.0)
                value = lo + level[key] * (hi - lo)
                if u < 0.01:
                    value = math.nan
                elif u < 0.02:
                    value = True
                elif u < 0.06 and s.alarms:
                    # exactly on a limit, or on the edge of its deadband: where >= and > differ
                    lim = float(rng.choice(list(s.alarms.values())))
                    db = (0.01 * (hi - lo), 0.05, 0.0)[int(rng.integers(0, 3))]
                    value = lim + db * float(rng.choice([-1.0, 0.0, 1.0]))
            q = rng.random()
            if q < 0.03:
                snap[key] = Reading(value, Quality.BAD, t, Reason.SENSOR_FAULT)
            elif q < 0.05:
                snap[key] = Reading(value, Quality.BAD, t, Reason.COMMS_LOST)
            elif q < 0.07:
                snap[key] = Reading(value, Quality.UNCERTAIN, t, Reason.OUT_OF_RANGE)
            elif q < 0.08:
                continue  # missing from the snapshot
            else:
                snap[key] = Reading(value, Quality.GOOD, t)
        out.append(snap)
    return out


def _scalar(board: AlarmBoard) -> AlarmBoard:
    """The same board with every point on the per-point loop (the code the arrays replace)."""
    board._scalar_points = list(board._points)
    board._vector = _VectorPoints([], {})
    return board


SETTINGS = {
    "on_delay_s": 0.2,
    "off_delay_s": 0.3,
    "bad_quality": "all",
    "tags": {"gas_station:PT-101": {"on_delay_s": 0.0, "off_delay_s": 0.0, "deadband": 0.05}},
}


def test_alarm_board_on_arrays_matches_the_per_point_loop(iolists: dict[str, IOList]) -> None:
    fast, slow = AlarmBoard(), AlarmBoard()
    fast.vector_min_points = 0  # arrays however few the points
    fast.configure(iolists, SETTINGS)
    slow.configure(iolists, SETTINGS)
    _scalar(slow)
    assert len(fast._vector.points) > 100
    seen = 0
    for k, snap in enumerate(_walk(iolists, 400, seed=3)):
        view = {st: {key.partition(":")[2]: r for key, r in snap.items() if key.startswith(st + ":")} for st in iolists}
        now = 0.1 * k
        a = fast.evaluate(view, now, 1e9 + now)
        b = slow.evaluate(view, now, 1e9 + now)
        assert [e.payload for e in a] == [e.payload for e in b], k
        seen += len(a)
    assert seen > 400  # the walk really moved the alarms (498 with seed 3 since the heartbeat signals)


@pytest.mark.parametrize("on_arrays", [True, False])
def test_engine_limit_crossings_match_the_band_function(iolists: dict[str, IOList], on_arrays: bool) -> None:
    eng = Engine(EngineConfig(iolists, []))
    eng.vector_min_signals = 0 if on_arrays else 10**9
    bands: dict[tuple[str, str], str] = {}
    frac = eng.config.limit_deadband_frac
    moves = 0
    for k, snap in enumerate(_walk(iolists, 300, seed=5)):
        got = [e.payload for e in eng.scan(snap, 0.1 * k, 1e9).events if e.kind is EventKind.LIMIT_CROSSING]
        want = []
        for st, sig in eng._limited:
            r = snap.get(f"{st}:{sig.tag}")
            if r is None or r.quality is Quality.BAD or isinstance(r.value, bool):
                continue
            old = bands.get((st, sig.tag), "N")
            assert sig.range is not None
            band = _band(float(r.value), sig.alarms, old, frac * (sig.range[1] - sig.range[0]))
            if band != old:
                bands[(st, sig.tag)] = band
                want.append({"tag": sig.tag, "from": old, "to": band, "value": round(float(r.value), 4),
                             "units": sig.units})
        assert [{**p, "value": str(p["value"])} for p in got] == [{**p, "value": str(p["value"])} for p in want], k
        moves += len(want)
    assert moves > 100
    assert set(eng._limit_band.values()) <= set(_BANDS)


def test_engine_scan_over_a_table_snapshot_equals_over_a_dict(
    iolists: dict[str, IOList], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine takes columns straight from a table snapshot, or builds them from a mapping,
    or checks signal by signal (a small site): same events every way."""
    keys = [f"{st}:{s.tag}" for st, iol in iolists.items() for s in iol.signals]
    table = TagTable(keys, stale_after=0.25)
    monkeypatch.setattr(AlarmBoard, "vector_min_points", 0)
    monkeypatch.setattr(Engine, "vector_min_signals", 0)
    a, b = Engine(EngineConfig(iolists, [])), Engine(EngineConfig(iolists, []))
    monkeypatch.setattr(AlarmBoard, "vector_min_points", 10**9)
    monkeypatch.setattr(Engine, "vector_min_signals", 10**9)
    c = Engine(EngineConfig(iolists, []))
    assert a.alarms._vector.points and not c.alarms._vector.points
    for k, snap in enumerate(_walk(iolists, 150, seed=11)):
        for key, r in snap.items():
            table.update(key, r)
        now = 0.1 * k + 0.1
        ts = table.snapshot(now)
        plain = dict(ts)
        ea = a.scan(ts, now, 1e9).events
        eb = b.scan(plain, now, 1e9).events
        ec = c.scan(ts, now, 1e9).events
        assert [(e.kind, str(e.payload)) for e in ea] == [(e.kind, str(e.payload)) for e in eb], k
        assert [(e.kind, str(e.payload)) for e in ea] == [(e.kind, str(e.payload)) for e in ec], k


@pytest.mark.parametrize("live", [True, False])
def test_historian_points_off_the_columns_equal_points_from_snapshot(
    iolists: dict[str, IOList], live: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from plantctl.historian.base import points_from_snapshot
    from plantctl.runtime import snapshot_points

    monkeypatch.setattr(TagTable, "columns_min", 0 if live else 10**9)
    keys = [f"{st}:{s.tag}" for st, iol in iolists.items() for s in iol.signals]
    table = TagTable(keys, stale_after=0.25)
    for k, snap in enumerate(_walk(iolists, 20, seed=13)):
        for key, r in snap.items():
            table.update(key, r)
        ts = table.snapshot(0.1 * k + 0.1)
        assert ts.has_columns is live
        got, want = snapshot_points(ts, 1e9 + k), points_from_snapshot("", ts, 1e9 + k)
        assert [(p.station, p.tag, p.t_wall, str(p.value), p.quality) for p in got] == \
            [(p.station, p.tag, p.t_wall, str(p.value), p.quality) for p in want]


def test_block_decoder_keeps_the_live_zero_check_where_the_round_trip_is_not_exact(iolists: dict[str, IOList]) -> None:
    """A scaling so coarse in floating point that value -> raw does not give the raw count back:
    the second live-zero check of reading_from_value can fire there, and the decoder keeps it."""
    from dataclasses import replace

    base = next(s for s in iolists["gas_station"].signals if s.kind is Kind.ANALOG_IN and s.fault_raw)
    odd = replace(base, tag="ODD-1", range=(1e16, 1e16 + 50.0))  # 2 between two doubles here
    dec = BlockDecoder([odd, base])
    assert dec.refault.tolist() == [True, False]
    assert odd.fault_raw is not None
    fired = 0
    for raw in range(odd.fault_raw[0] - 2, odd.fault_raw[1] + 3):
        with np.errstate(invalid="ignore"):
            value, quality, reason = dec.decode([raw, raw])
        for i, sig in enumerate((odd, base)):
            want = reading_from_raw(sig, raw, 1.0)
            got = Reading(_typed(value[i], dec.vtype[i]), QUALITIES[quality[i]], 1.0, REASONS[reason[i]])
            assert got == want, (sig.tag, raw, got, want)
        fired += not odd.raw_faulted(raw) and quality[0] == int(Quality.BAD)
    assert fired  # the round-trip check did turn some in-band counts BAD


def test_prefetch_builds_the_same_readings_as_one_by_one() -> None:
    table = TagTable(["A", "B", "C"], t0=0.0)
    rows = table.index(["A", "B", "C"])
    table.update_columns(rows, np.array([1.5, 1.0, 3.0]), np.array([0, 2, 1], dtype=np.int8),
                         np.array([2, 1, 0], dtype=np.int8), np.array([0, 3, 4], dtype=np.int8), 5.0)
    one, many = table.snapshot(5.0), table.snapshot(5.0)
    many.prefetch(("C", "nope", "A"))
    for k in ("A", "B", "C"):
        assert many[k] == one[k] and type(many[k].value) is type(one[k].value)
    assert one["A"] == Reading(1.5, Quality.GOOD, 5.0) and one["B"] == Reading(True, Quality.UNCERTAIN, 5.0, REASONS[3])
    assert one["C"] == Reading(3, Quality.BAD, 5.0, REASONS[4])
