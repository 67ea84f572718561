"""InfluxDB path: influxdb-client writes to a real server (victoria-metrics), the 30-minute run with
the server stopped for the middle 10 minutes, the sender's error handling, and the Flux query code."""

from __future__ import annotations

import hashlib
import math
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from plantctl.clock import VirtualClock
from plantctl.historian import (
    InfluxHistorian,
    MirroredHistorian,
    Point,
    SQLiteHistorian,
    points_from_snapshot,
)
from plantctl.historian.influx import InfluxSender, SendError, flux_query, points_from_tables
from plantctl.historian.sqlite import HistorianError
from plantctl.rig import VirtualRig
from plantctl.site import load_site
from sim_plc.gas_station import load_station
from sim_plc.plant import Plant

REPO = Path(__file__).resolve().parents[3]
T0 = 1_767_225_600.0
VictoriaMetrics = Any  # the conftest's server handle (tests/ is not a package: it reaches us as a fixture)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LoggingSender:
    """The real influxdb-client sender, noting the time stamps of every line it delivered, in order."""

    def __init__(self, inner: InfluxSender) -> None:
        self.inner = inner
        self.delivered: list[int] = []
        self.failures = 0

    def send(self, lines: str) -> None:
        try:
            self.inner.send(lines)
        except SendError:
            self.failures += 1
            raise
        self.delivered.extend(int(line.rpartition(" ")[2]) for line in lines.split("\n"))

    def close(self) -> None:
        self.inner.close()


def remote(vm: VictoriaMetrics, spool: Path, sender: Any = None) -> InfluxHistorian:
    return InfluxHistorian(vm.url, org="plant", bucket="history", token="unused", spool_path=spool,
                           sender=sender, start=False, timeout_s=5.0)


def by_series(export: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(s["metric"]["station"], s["metric"]["signal"]): s for s in export}


def test_influxdb_client_writes_read_back_from_the_server(victoria_metrics: VictoriaMetrics, tmp_path: Path) -> None:
    h = remote(victoria_metrics, tmp_path / "spool.db", InfluxSender(victoria_metrics.url, token="t", org="o",
                                                                   bucket="b"))
    pts = [Point("gas_station", tag, T0 + k * 0.1, k * 0.25 + i, 2 if k % 7 else 0)
           for k in range(300) for i, tag in enumerate(("GD-401A", "PT-322"))]
    h.record(pts)
    assert h.forward() == 600
    got = by_series(victoria_metrics.wait_for('{__name__="plantctl_quality"}', 600))
    val = by_series(victoria_metrics.wait_for('{__name__="plantctl_value"}', 600))
    for i, tag in enumerate(("GD-401A", "PT-322")):
        assert got[("gas_station", tag)]["timestamps"] == [round((T0 + k * 0.1) * 1000) for k in range(300)]
        assert got[("gas_station", tag)]["values"] == [2 if k % 7 else 0 for k in range(300)]
        assert val[("gas_station", tag)]["values"] == pytest.approx([k * 0.25 + i for k in range(300)], rel=1e-12)
    h.close()


def _checksum(rows: list[tuple[str, str, int, int]]) -> str:
    h = hashlib.sha256()
    for st, tag, ts, q in sorted(rows):
        h.update(f"{st}|{tag}|{ts}|{q}\n".encode())
    return h.hexdigest()


@pytest.mark.timeout(300)
def test_thirty_minute_run_with_the_server_stopped_for_the_middle_ten(victoria_metrics: VictoriaMetrics,
                                                                      tmp_path: Path) -> None:
    """Every point of the run reaches the server once and in order, though the server was down from
    minute 10 to minute 20 and the controller restarted (historian closed and reopened) at minute 15."""
    vm = victoria_metrics
    site = load_site(REPO / "sites" / "demo.yaml")
    iol = site.iolists["gas_station"]
    clock = VirtualClock()
    plant = Plant([load_station(seed=7)], clock)
    rig = VirtualRig({"gas_station": iol}, plant, clock, scan_period=0.5)
    local = SQLiteHistorian(tmp_path / "history.db")
    spool = tmp_path / "history.spool"
    sender = LoggingSender(InfluxSender(vm.url, token="t", org="plant", bucket="history", timeout_s=5.0))
    hist = MirroredHistorian(local, remote(vm, spool, sender))
    plant.stations["gas_station"].inject("leak_growing", zone="GC", from_mm=0.5, to_mm=2.0, over_s=1500.0)

    spooled_peak = 0
    restarted = False
    while clock.now() < 1800.0 - 1e-9:
        rig.tick()
        now = clock.now()
        hist.record(points_from_snapshot("gas_station", rig.snapshot(), clock.wall()))
        if round(now * 2) % 2 == 0:  # the forwarder's pace: once a second
            hist.remote.forward()
        if abs(now - 600.0) < 1e-6:
            vm.stop()
        elif abs(now - 900.0) < 1e-6:
            # controller restart in the middle of the outage: the spool survives on disk
            assert hist.remote.status().connected is False
            spooled_peak = hist.remote.status().spool_points
            hist.remote.close()
            hist = MirroredHistorian(local, remote(vm, spool, sender))
            restarted = True
        elif abs(now - 1200.0) < 1e-6:
            spooled_peak = max(spooled_peak, hist.remote.status().spool_points)
            vm.start()
    hist.remote.forward()
    assert restarted and sender.failures > 0
    st = hist.remote.status()
    assert st.spool_points == 0 and st.dropped_points == 0 and st.rejected_points == 0 and st.connected
    # ten minutes of 85 signals at 2 scans a second waited in the spool
    assert spooled_peak >= 1200 * 85 - 170

    # the embedded store: the reference
    local.compact()
    series = local.series()
    ref_rows: list[tuple[str, str, int, int]] = []
    ref_values: dict[tuple[str, str], list[float]] = {}
    for st_name, tag in series:
        pts = local.query(st_name, tag, 0, 2e10)
        ref_rows += [(st_name, tag, round(p.t_wall * 1000), p.quality) for p in pts]
        ref_values[(st_name, tag)] = [p.value for p in pts]
    total = len(ref_rows)
    assert total == 3600 * len(iol.signals)  # 30 min at 0.5 s, every signal

    # the server: count, checksum, order
    quality = by_series(vm.wait_for('{__name__="plantctl_quality"}', total, timeout_s=120))
    values = by_series(vm.wait_for('{__name__="plantctl_value"}', total, timeout_s=120))
    got_rows = [(st_name, tag, ts, int(q)) for (st_name, tag), s in quality.items()
                for ts, q in zip(s["timestamps"], s["values"], strict=True)]
    assert len(got_rows) == total
    assert _checksum(got_rows) == _checksum(ref_rows)
    for key, s in values.items():
        ts = s["timestamps"]
        assert ts == sorted(set(ts)), f"{key}: duplicates or disorder"
        # victoria-metrics keeps about 12 significant digits
        assert s["values"] == pytest.approx(ref_values[key], rel=1e-11, abs=1e-12), key
    # delivered in the order recorded, the back-fill included: never an older point after a newer one
    assert len(sender.delivered) == total
    assert all(a <= b for a, b in zip(sender.delivered, sender.delivered[1:], strict=False))
    hist.close()


# ---------------------------------------------------------------------------------------------
# The sender's error handling, against a stub HTTP server


class _Stub(BaseHTTPRequestHandler):
    status = 204

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        if self.status != 204:
            self.wfile.write(b'{"code":"invalid","message":"unable to parse"}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[HTTPServer]:
    srv = HTTPServer(("127.0.0.1", 0), _Stub)
    srv.timeout = 5
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(timeout=10)


@pytest.mark.parametrize(("status", "retryable"), [(400, False), (422, False), (401, True), (404, True),
                                                   (429, True), (503, True)])
def test_sender_classifies_http_errors(stub: HTTPServer, status: int, retryable: bool) -> None:
    _Stub.status = status
    s = InfluxSender(f"http://127.0.0.1:{stub.server_address[1]}", token="t", org="o", bucket="b", timeout_s=5)
    with pytest.raises(SendError) as e:
        s.send("m,signal=a,station=b value=1.0 1767225600000")
    assert e.value.retryable is retryable and e.value.status == status
    _Stub.status = 204
    s.send("m,signal=a,station=b value=1.0 1767225600000")
    s.close()


def test_sender_unreachable_server_is_retryable() -> None:
    s = InfluxSender(f"http://127.0.0.1:{free_port()}", token="t", org="o", bucket="b", timeout_s=2)
    with pytest.raises(SendError) as e:
        s.send("m,signal=a,station=b value=1.0 1767225600000")
    assert e.value.retryable and e.value.status is None
    s.close()


# ---------------------------------------------------------------------------------------------
# Flux (unit tests: no InfluxDB 2 server can be installed here)


def test_flux_query_full_resolution() -> None:
    q = flux_query("plant history", "plantctl", "gas_station", "GD-401A", T0, T0 + 60)
    assert q.startswith('from(bucket: "plant history")')
    assert "range(start: 2026-01-01T00:00:00.000Z, stop: 2026-01-01T00:01:00.001Z)" in q
    assert 'r._measurement == "plantctl" and r.station == "gas_station" and r.signal == "GD-401A"' in q
    assert 'pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")' in q
    assert q.rstrip().endswith('|> sort(columns: ["_time"])') and "window(" not in q


def test_flux_query_downsampled_takes_min_and_max_per_window() -> None:
    q = flux_query("b", "plantctl", "gas_station", "PT-322", T0, T0 + 3600, max_points=400)
    assert 'lows = data |> window(every: 18000ms) |> min(column: "value")' in q
    assert 'highs = data |> window(every: 18000ms) |> max(column: "value")' in q
    assert "union(tables: [lows, highs])" in q and 'unique(column: "_time")' in q
    with pytest.raises(ValueError):
        flux_query("b", "m", "s", "t", T0, T0 + 1, max_points=1)


def test_flux_strings_cannot_be_escaped_from() -> None:
    q = flux_query("b", "plantctl", 'x") |> drop(columns: ["_value"]) //', "t\\", T0, T0 + 1)
    assert 'r.station == "x\\") |> drop(columns: [\\"_value\\"]) //"' in q
    assert 'r.signal == "t\\\\"' in q
    assert 'r.signal == "a\\${b}"' in flux_query("b", "m", "s", "a${b}", T0, T0 + 1)


class _Rec:
    def __init__(self, t: datetime, values: dict[str, Any]) -> None:
        self._t, self.values = t, values

    def get_time(self) -> datetime:
        return self._t


class _Table:
    def __init__(self, records: list[_Rec]) -> None:
        self.records = records


def _dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def test_points_from_flux_tables_merge_sort_and_fill() -> None:
    tables = [
        _Table([_Rec(_dt(T0 + 2), {"value": 3.0, "quality": 2}), _Rec(_dt(T0), {"value": 1.0, "quality": 2})]),
        _Table([_Rec(_dt(T0 + 1), {"value": None, "quality": 0}), _Rec(_dt(T0 + 2), {"value": 3.0, "quality": 2})]),
    ]
    pts = points_from_tables(tables, "gas_station", "GD-401A")
    assert [p.t_wall for p in pts] == [T0, T0 + 1, T0 + 2]
    assert pts[0] == Point("gas_station", "GD-401A", T0, 1.0, 2) and math.isnan(pts[1].value) and pts[1].quality == 0


class _QueryingSender:
    def __init__(self) -> None:
        self.queries: list[tuple[str, str | None]] = []

    def send(self, lines: str) -> None:
        raise SendError("unreachable", retryable=True)

    def close(self) -> None:
        pass

    def query_api(self) -> Any:
        outer = self

        class Api:
            def query(self, query: str, org: str | None = None) -> list[_Table]:
                outer.queries.append((query, org))
                return [_Table([_Rec(_dt(T0 + 1), {"value": 7.5, "quality": 2})])]

        return Api()


def test_influx_historian_query_goes_through_flux(tmp_path: Path) -> None:
    snd = _QueryingSender()
    h = InfluxHistorian("http://x", org="plant", bucket="hist", spool_path=tmp_path / "s.db", sender=snd, start=False)
    assert h.query("gas_station", "GD-401A", T0, T0 + 10, max_points=100) == [
        Point("gas_station", "GD-401A", T0 + 1, 7.5, 2)]
    (flux, org), = snd.queries
    assert org == "plant" and 'from(bucket: "hist")' in flux and "window(every: 200ms)" in flux
    h.close()


def test_mirrored_historian_reads_the_embedded_store(tmp_path: Path) -> None:
    snd = _QueryingSender()
    local = SQLiteHistorian(tmp_path / "h.db")
    m = MirroredHistorian(local, InfluxHistorian("http://x", org="o", bucket="b", spool_path=tmp_path / "s.db",
                                                 sender=snd, start=False))
    m.record([Point("s", "A", T0, 1.0, 2)])
    assert m.query("s", "A", T0 - 1, T0 + 1) == [Point("s", "A", T0, 1.0, 2)] and snd.queries == []
    assert m.status().spool_points == 1 and m.status().backend == "influxdb"
    m.close()
    with pytest.raises(HistorianError):
        local.query("s", "A", T0, T0 + 1)
