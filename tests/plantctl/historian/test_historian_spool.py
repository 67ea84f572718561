"""Store and forward without a server: the spool, its bounds and the forwarder, on a fake sender."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from plantctl.alarms import AlarmBoard, AlarmState
from plantctl.historian import HistorianStatus, InfluxHistorian, Point, Spool, SpoolOverflow, historian_alarms
from plantctl.historian.influx import LineEncoder, SendError

T0 = 1_767_225_600.0


class FakeServer:
    """A line-protocol sink that can be down, or refuse some data as malformed."""

    def __init__(self) -> None:
        self.down = False
        self.refuse = ""  # refuse (HTTP 400) any write containing this text
        self.writes: list[str] = []
        self.closed = False

    def send(self, lines: str) -> None:
        if self.down:
            raise SendError("connection refused", retryable=True)
        if self.refuse and self.refuse in lines:
            raise SendError("HTTP 400: unable to parse", retryable=False, status=400)
        self.writes.append(lines)

    def close(self) -> None:
        self.closed = True

    def points(self) -> list[tuple[str, int]]:
        """(signal, ms) of every line received, in arrival order."""
        out = []
        for w in self.writes:
            for line in w.split("\n"):
                head, _, ts = line.rpartition(" ")
                out.append((head.split(",signal=")[1].split(",")[0], int(ts)))
        return out


def scans(k0: int, n: int, tags: tuple[str, ...] = ("A", "B")) -> list[list[Point]]:
    return [[Point("st", t, T0 + k * 0.1, float(k), 2) for t in tags] for k in range(k0, k0 + n)]


def make(tmp_path: Path, server: FakeServer, **kw: object) -> InfluxHistorian:
    return InfluxHistorian("http://fake", org="o", bucket="b", spool_path=tmp_path / "spool.db", sender=server,
                           start=False, **kw)  # type: ignore[arg-type]


def expected(k0: int, n: int, tags: tuple[str, ...] = ("A", "B")) -> list[tuple[str, int]]:
    return [(t, round((T0 + k * 0.1) * 1000)) for k in range(k0, k0 + n) for t in tags]


def test_outage_spools_every_point_and_backfills_in_order(tmp_path: Path) -> None:
    srv = FakeServer()
    h = make(tmp_path, srv, batch_points=50)
    for b in scans(0, 100):
        h.record(b)
    assert h.forward() == 200 and h.status().connected is True
    srv.down = True
    for b in scans(100, 300):
        h.record(b)
    assert h.forward() == 0
    st = h.status()
    assert st.connected is False and st.spool_points == 600 and "refused" in st.last_error
    srv.down = False
    for b in scans(400, 100):
        h.record(b)
    assert h.forward() == 800
    assert srv.points() == expected(0, 500)  # every point, once, in recorded order
    assert h.status().spool_points == 0 and h.status().sent_points == 1000
    h.close()
    assert srv.closed


def test_a_controller_restart_keeps_the_spool(tmp_path: Path) -> None:
    srv = FakeServer()
    srv.down = True
    h = make(tmp_path, srv)
    for b in scans(0, 250):
        h.record(b)
    h.close()  # the final flush fails: the points stay on disk
    srv.down = False
    h2 = make(tmp_path, srv)
    assert h2.status().spool_points == 500
    for b in scans(250, 10):
        h2.record(b)
    assert h2.forward() == 520
    assert srv.points() == expected(0, 260)
    h2.close()


def test_overflow_drop_oldest_is_counted_alarmed_and_remembered(tmp_path: Path) -> None:
    srv = FakeServer()
    srv.down = True
    h = make(tmp_path, srv, spool_max_points=1000, batch_points=100, overflow=SpoolOverflow.DROP_OLDEST)
    board = AlarmBoard()
    for b in scans(0, 750):  # 1500 points into a 1000-point spool
        h.record(b)
    h.forward()
    st = h.status()
    assert st.overflow and st.dropped_points == 500 and st.spool_points == 1000 and st.overflow_policy == "drop_oldest"
    evs = historian_alarms(board, st, 10.0, T0 + 10)
    ids = {e.payload["id"]: e for e in evs}
    assert "historian:spool-overflow" in ids and "500 point(s) lost" in ids["historian:spool-overflow"].payload["message"]
    assert "historian:unreachable" in ids
    srv.down = False
    assert h.forward() == 1000
    assert srv.points() == expected(250, 500)  # the newest survive, in order
    st = h.status()
    assert not st.overflow and st.dropped_points == 500
    evs = historian_alarms(board, st, 11.0, T0 + 11)
    assert {e.payload["id"] for e in evs} == {"historian:spool-overflow", "historian:unreachable"}
    assert all(e.payload["state"] == AlarmState.RTN_UNACK.value for e in evs)
    h.close()
    h2 = make(tmp_path, srv, spool_max_points=1000, batch_points=100)
    assert h2.status().dropped_points == 500  # the loss is remembered across a restart
    h2.close()


def test_overflow_drop_newest_keeps_the_spooled_past(tmp_path: Path) -> None:
    srv = FakeServer()
    srv.down = True
    h = make(tmp_path, srv, spool_max_points=1000, batch_points=100, overflow=SpoolOverflow.DROP_NEWEST)
    for b in scans(0, 750):
        h.record(b)
    assert h.status().dropped_points == 500 and h.status().overflow
    srv.down = False
    h.forward()
    assert srv.points() == expected(0, 500)
    h.close()


def test_drop_oldest_never_drops_a_batch_in_flight(tmp_path: Path) -> None:
    sp = Spool(tmp_path / "s.db", max_points=30, overflow=SpoolOverflow.DROP_OLDEST)
    for i in range(3):
        sp.push(f"b{i}", 10, i, i)
    inflight = sp.peek(10)
    assert [b.lines for b in inflight] == ["b0"]
    assert sp.push("b3", 10, 3, 3) == 10  # b1 goes, not b0 which is being sent
    sp.ack(inflight[-1].seq)
    assert [b.lines for b in sp.peek(100)] == ["b2", "b3"] and sp.points == 20 and sp.dropped_points == 10
    sp.close()


def test_a_refused_batch_is_set_aside_and_alarmed_not_retried_forever(tmp_path: Path) -> None:
    srv = FakeServer()
    srv.refuse = "signal=POISON"
    h = make(tmp_path, srv, batch_points=10)
    h.record(scans(0, 20)[0] * 5)  # 10 points
    h.record([Point("st", "POISON", T0 + 5, 1.0, 2)] * 10)
    h.record(scans(20, 5)[0] * 5)
    assert h.forward() == 20
    st = h.status()
    assert st.rejected_points == 10 and st.spool_points == 0 and st.connected is True
    (batch, why), = h.spool.rejected()
    assert "POISON" in batch.lines and "400" in why
    evs = historian_alarms(AlarmBoard(), st, 1.0, T0)
    assert [e.payload["id"] for e in evs] == ["historian:rejected"]
    h.close()


def test_the_forwarder_thread_delivers_by_itself_and_backs_off(tmp_path: Path) -> None:
    srv = FakeServer()
    h = InfluxHistorian("http://fake", org="o", bucket="b", spool_path=tmp_path / "spool.db", sender=srv,
                        flush_interval_s=0.02, retry_min_s=0.01, retry_max_s=0.05, batch_points=100)
    try:
        srv.down = True
        for b in scans(0, 200):
            h.record(b)
        deadline = time.monotonic() + 20
        while h.status().connected is not False and time.monotonic() < deadline:
            time.sleep(0.01)
        assert h.status().connected is False and h.status().spool_points == 400
        srv.down = False
        while h.status().spool_points and time.monotonic() < deadline:
            time.sleep(0.01)
        assert srv.points() == expected(0, 200)
    finally:
        h.close()


def test_line_protocol_escaping_precision_and_non_finite_values() -> None:
    enc = LineEncoder("plant ctl")
    text = enc.encode([
        Point("gas station", "GD-401A", T0 + 0.1234, 12.5, 2),
        Point("st,1", "a=b", T0, float("nan"), 0),
        Point("st", "X", T0, 1e-12, 1),
        Point("st", "X", T0 + 1, float("inf"), 2),
    ])
    assert text.split("\n") == [
        r"plant\ ctl,signal=GD-401A,station=gas\ station value=12.5,quality=2i 1767225600123",
        r"plant\ ctl,signal=a\=b,station=st\,1 quality=0i 1767225600000",
        r"plant\ ctl,signal=X,station=st value=1e-12,quality=1i 1767225600000",
        r"plant\ ctl,signal=X,station=st quality=2i 1767225601000",
    ]
    assert float(repr(0.1 + 0.2)) == 0.1 + 0.2  # repr round-trips: full precision reaches the server


def test_historian_alarm_for_an_unreachable_server_clears_on_return() -> None:
    board = AlarmBoard()
    down = HistorianStatus("influxdb", connected=False, last_error="connection refused")
    up = HistorianStatus("influxdb", connected=True)
    evs = historian_alarms(board, down, 1.0, T0)
    assert evs[0].payload["id"] == "historian:unreachable" and "connection refused" in evs[0].payload["message"]
    assert historian_alarms(board, down, 2.0, T0) == []
    assert historian_alarms(board, up, 3.0, T0)[0].payload["condition"] is False


def test_spool_bounds_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        Spool(tmp_path / "s.db", max_points=0)
    with pytest.raises(ValueError, match="at least one batch"):
        make(tmp_path, FakeServer(), spool_max_points=10, batch_points=100)
