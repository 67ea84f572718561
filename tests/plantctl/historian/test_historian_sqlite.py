"""The embedded historian: round trip, downsampling, retention, persistence, snapshots."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from plantctl.historian import Point, SQLiteHistorian, downsample, open_historian, points_from_snapshot
from plantctl.historian.sqlite import HistorianError
from plantctl.tags import Quality, Reading, Reason

T0 = 1_767_225_600.0


def scans(n: int, tags: list[str], dt: float = 0.1, station: str = "gas_station") -> list[list[Point]]:
    return [[Point(station, tag, T0 + k * dt, float(k) + i / 10, 2) for i, tag in enumerate(tags)] for k in range(n)]


def test_round_trip_in_order_across_compaction(tmp_path: Path) -> None:
    h = SQLiteHistorian(tmp_path / "h.db", compact_rows=1000)  # compacts every 1000 rows: crosses it many times
    for batch in scans(700, ["PT-101", "GD-401A", "XS-400"]):
        h.record(batch)
    pts = h.query("gas_station", "GD-401A", T0, T0 + 1000)
    assert len(pts) == 700
    assert [p.value for p in pts] == [k + 0.1 for k in range(700)]
    assert [p.t_wall for p in pts] == pytest.approx([T0 + k * 0.1 for k in range(700)])
    assert h.count() == 2100 and h.count("gas_station", "XS-400") == 700
    assert h.query("gas_station", "GD-401A", T0 + 10, T0 + 10.25) == [
        Point("gas_station", "GD-401A", T0 + 10.0, 100.1, 2), Point("gas_station", "GD-401A", T0 + 10.1, 101.1, 2),
        Point("gas_station", "GD-401A", T0 + 10.2, 102.1, 2)]
    assert h.query("gas_station", "NOPE", T0, T0 + 1000) == []
    assert h.series() == [("gas_station", "GD-401A"), ("gas_station", "PT-101"), ("gas_station", "XS-400")]
    h.close()


def test_rerecording_a_sample_replaces_it_even_after_compaction(tmp_path: Path) -> None:
    h = SQLiteHistorian(tmp_path / "h.db", compact_rows=8)
    for batch in scans(10, ["A"]):
        h.record(batch)
    h.record([Point("gas_station", "A", T0 + 0.3, -1.0, 0)])  # same ms as an existing, compacted sample
    pts = h.query("gas_station", "A", T0, T0 + 5)
    assert len(pts) == 10 and pts[3] == Point("gas_station", "A", T0 + 0.3, -1.0, 0)
    h.compact()
    assert h.count() == 10 and h.query("gas_station", "A", T0, T0 + 5)[3].value == -1.0


def test_downsampled_read_keeps_extremes_and_bounds_the_count(tmp_path: Path) -> None:
    h = SQLiteHistorian(tmp_path / "h.db")
    n = 36_000  # an hour at 10 Hz
    pts = [Point("gas_station", "GD-401A", T0 + k * 0.1, math.sin(k / 500.0), 2) for k in range(n)]
    pts[20_000] = Point("gas_station", "GD-401A", T0 + 2000.0, 42.0, 2)  # one-sample spike
    pts[30_000] = Point("gas_station", "GD-401A", T0 + 3000.0, -42.0, 0)  # and a dip, BAD
    for i in range(0, n, 500):
        h.record(pts[i:i + 500])
    got = h.query("gas_station", "GD-401A", T0, T0 + 3600, max_points=400)
    assert 300 <= len(got) <= 400
    assert [p.t_wall for p in got] == sorted(p.t_wall for p in got)
    assert max(p.value for p in got) == 42.0 and min(p.value for p in got) == -42.0
    spike = next(p for p in got if p.value == 42.0)
    assert spike.t_wall == pytest.approx(T0 + 2000.0) and spike.quality == 2
    assert next(p for p in got if p.value == -42.0).quality == 0
    # the same decimation in Python (used on other back ends) agrees on the extremes
    py = downsample(pts, T0, T0 + 3599.9, 400)
    assert len(py) <= 400 and {42.0, -42.0} <= {p.value for p in py}
    # a window with fewer samples than max_points is returned whole
    assert len(h.query("gas_station", "GD-401A", T0, T0 + 10, max_points=400)) == 101
    with pytest.raises(ValueError):
        h.query("gas_station", "GD-401A", T0, T0 + 10, max_points=1)


def test_retention_deletes_old_samples_by_recorded_time(tmp_path: Path) -> None:
    h = SQLiteHistorian(tmp_path / "h.db", retention_s=3600, retention_every_s=600, compact_rows=100)
    for k in range(0, 3 * 3600, 60):  # three hours, a sample a minute
        h.record([Point("s", "A", T0 + k, float(k), 2), Point("s", "B", T0 + k, float(k), 2)])
    pts = h.query("s", "A", T0, T0 + 4 * 3600)
    newest = T0 + 3 * 3600 - 60
    assert pts[-1].t_wall == newest
    # everything older than an hour (+ at most one check interval) before the newest sample is gone
    assert pts[0].t_wall >= newest - 3600 - 600 - 1e-6
    assert len(pts) < 75
    assert h.count("s", "B") == len(pts)


def test_persists_across_reopen_and_read_only_mode(tmp_path: Path) -> None:
    p = tmp_path / "h.db"
    h = SQLiteHistorian(p)
    for batch in scans(50, ["A", "B"]):
        h.record(batch)
    h.close()
    ro = SQLiteHistorian(p, readonly=True)
    assert len(ro.query("gas_station", "B", T0, T0 + 10)) == 50
    with pytest.raises(HistorianError, match="read-only"):
        ro.record([Point("gas_station", "A", T0 + 99, 1.0, 2)])
    ro.close()
    with pytest.raises(HistorianError, match="no such file"):
        SQLiteHistorian(tmp_path / "missing.db", readonly=True)
    h2 = SQLiteHistorian(p)
    h2.record([Point("gas_station", "A", T0 + 99, 1.0, 2)])
    assert len(h2.query("gas_station", "A", T0, T0 + 100)) == 51
    h2.close()
    with pytest.raises(HistorianError, match="closed"):
        h2.query("gas_station", "A", T0, T0 + 1)


def test_non_finite_values_are_kept_as_nan_with_their_quality(tmp_path: Path) -> None:
    h = SQLiteHistorian(tmp_path / "h.db")
    h.record([Point("s", "A", T0, math.nan, 0), Point("s", "A", T0 + 1, 1.5, 2)])
    a, b = h.query("s", "A", T0, T0 + 2)
    assert math.isnan(a.value) and a.quality == 0 and b.value == 1.5


def test_points_from_snapshot_bools_enums_quality_and_station_keys() -> None:
    snap = {
        "GD-401A": Reading(12.5, Quality.GOOD, 3.0),
        "TS-402": Reading(True, Quality.GOOD, 3.0),
        "ZSC-320": Reading(False, Quality.UNCERTAIN, 3.0),
        "XS-400": Reading(5, Quality.GOOD, 3.0),
        "PT-322": Reading(0.0, Quality.BAD, 3.0, Reason.SENSOR_FAULT),
    }
    pts = points_from_snapshot("gas_station", snap, T0 + 3)
    assert pts == [
        Point("gas_station", "GD-401A", T0 + 3, 12.5, 2),
        Point("gas_station", "TS-402", T0 + 3, 1.0, 2),
        Point("gas_station", "ZSC-320", T0 + 3, 0.0, 1),
        Point("gas_station", "XS-400", T0 + 3, 5.0, 2),
        Point("gas_station", "PT-322", T0 + 3, 0.0, 0),
    ]
    assert all(isinstance(p.value, float) for p in pts)
    multi = points_from_snapshot("", {"pump_station:PT-720": Reading(0.5, Quality.GOOD, 1.0)}, T0)
    assert multi == [Point("pump_station", "PT-720", T0, 0.5, 2)]


def test_open_historian_default_is_the_embedded_store(tmp_path: Path) -> None:
    h = open_historian({"backend": "sqlite", "path": "var/h.db"}, base=tmp_path)
    assert isinstance(h, SQLiteHistorian) and (tmp_path / "var" / "h.db").exists()
    h.close()
    from plantctl.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown back end"):
        open_historian({"backend": "graphite", "path": str(tmp_path / "x.db")})
    with pytest.raises(ConfigError, match="url"):
        open_historian({"backend": "influxdb", "path": str(tmp_path / "y.db")})
