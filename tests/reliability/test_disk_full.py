"""The disk fills up under the journal: the controller keeps protecting, raises a top-priority alarm,
writes nothing half-way, and loses nothing once there is room again.

The simulator (gas station, Modbus TCP on loopback) and the real controller (``build_controller``)
run in this process on one ScaledClock. The disk is "full" through SQLite itself: ``PRAGMA
max_page_count`` on the journal's own connection caps the file at the pages it has, so the next
append that needs a page fails with SQLITE_FULL ("database or disk is full"), exactly the error a
full file system gives. Then two of the three compartment detectors stick at 40 %LEL: the 2oo3
trip must still reach the PLC over Modbus while nothing can be journaled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plantctl.alarms import Priority
from plantctl.clock import ScaledClock
from plantctl.journal import Event, EventKind, Journal, canonical_payload, verify
from plantctl.paths import io_dir, sites_dir
from plantctl.runtime import Controller
from plantctl.runtime_cli import build_controller
from plantctl.site import load_site
from sim_plc.runner import SimConfig, SimRunner

SPEED = 4.0


def _gas_matrix() -> str:
    matrix = (sites_dir() / "demo.yaml").read_text().partition("\ninterlocks:\n")[2]
    return "\n  - id: ".join(b for b in matrix.split("\n  - id: ") if "station: pump_station" not in b)


def _cap(journal: Journal, pages: int | None) -> int:
    """Cap the journal file at its current size (None: lift the cap); returns the page count."""
    with journal._lock:  # the journal thread may be appending: take its lock, as its own methods do
        conn = journal._conn
        assert conn is not None
        count = int(conn.execute("PRAGMA page_count").fetchone()[0])
        conn.execute(f"PRAGMA max_page_count = {count if pages is None else pages}")
        return count


async def _until(cond: Callable[[], Any], clock: ScaledClock, wall_s: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + wall_s
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, f"timed out after {wall_s} s waiting for {what}"
        await clock.sleep_until(clock.now() + 0.05)


@pytest.mark.timeout(120)
async def test_journal_disk_full_trips_still_act_alarm_nothing_half_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ScaledClock(SPEED)
    sim = SimRunner(SimConfig(stations=("gas_station",), opcua=False, http_port=None), clock=clock)
    await sim.start()
    ctrl: Controller | None = None
    try:
        port = sim.endpoints()["gas_station"]["modbus_port"]
        site = tmp_path / "site.yaml"
        site.write_text(f"""site: disk-full
journal: {tmp_path / 'journal.db'}
historian: {{backend: sqlite, path: {tmp_path / 'history.db'}}}
engine: {{scan_period_ms: 100, stale_after_s: 3.0}}
stations:
  gas_station:
    io_list: {io_dir() / 'gas_station.yaml'}
    plc: {{protocol: modbus, host: 127.0.0.1, port: {port}, timeout_s: 0.5, period_ms: 100}}
procedures: []
interlocks:
{_gas_matrix()}""")
        ctrl = build_controller(load_site(site), clock)
        await ctrl.start()
        engine = ctrl.engine
        await _until(lambda: engine.link_up.get("gas_station"), clock, 30, "link up")
        db = ctrl.site.journal_path

        # -- the disk fills up ----------------------------------------------------------------------
        _cap(ctrl.journal, None)
        # the next scan with events (the detectors' noise crosses nothing; a login, a note does) fails:
        # (larger than a page, so that it cannot fit in the free room of the file's last page)
        engine.note_many(engine.alarms.raise_("test:marker", "a test event to write " + "x" * 8192, Priority.LOW,
                                              clock.now(), clock.wall(), "", "test"))
        await _until(lambda: engine.alarms.is_active("journal:write"), clock, 10, "journal:write alarm")
        alarm = engine.alarms.alarms["journal:write"]
        assert alarm.priority is Priority.CRITICAL  # top priority
        assert "full" in alarm.message
        head_full = ctrl.journal.head
        assert verify(db).ok

        # -- a trip while nothing can be written: it still acts -----------------------------------------
        assert sim.plant is not None
        sim.plant.inject("gas_station", "detector_stuck", {"tag": "GD-401A", "value": 40.0})
        sim.plant.inject("gas_station", "detector_stuck", {"tag": "GD-401B", "value": 40.0})
        await _until(lambda: "GT-GAS-2OO3" in engine.tripped(), clock, 20, "GT-GAS-2OO3 tripped")
        await _until(lambda: sim.plant.tags("gas_station")["XS-400"] == 5, clock, 20, "the GT tripped in the PLC")
        await clock.sleep_until(clock.now() + 2.0)  # a few more scans, each failing to write
        # nothing half-written: not one record was added while full, and the file verifies
        assert ctrl.journal.head == head_full
        res = verify(db)
        assert res.ok and res.head_seq == head_full[0], res
        held = list(ctrl._unjournaled)
        assert any(e.kind is EventKind.TRIP and e.payload.get("interlock") == "GT-GAS-2OO3" for e in held)
        assert engine.alarms.is_active("journal:write")
        # said once in the log for the whole outage, not once a scan onto the full disk
        failed = [r for r in caplog.records if r.getMessage().startswith("journal write failed")]
        assert len(failed) == 1, len(failed)

        # -- room again: the kept events are written, in order, once -------------------------------------
        _cap(ctrl.journal, 1 << 30)
        await _until(lambda: not engine.alarms.is_active("journal:write"), clock, 10, "journal:write cleared")
        await ctrl.stop()
        ctrl = None
        res = verify(db)
        assert res.ok, res.problems
        with Journal(db) as j:
            recs = list(j.records())
        assert [r.seq for r in recs] == list(range(1, len(recs) + 1))
        trips = [r.event for r in recs if r.event.kind is EventKind.TRIP and r.event.payload.get("interlock") == "GT-GAS-2OO3"]
        assert len(trips) == 1
        cmd = [r.event for r in recs if r.event.kind is EventKind.COMMAND and r.event.payload.get("tag") == "XY-400"]
        assert len(cmd) == 1 and cmd[0].payload["value"] is False
        # every event held in memory reached the file, exactly once, in the order it happened
        def key(e: Event) -> tuple[Any, ...]:
            return (e.kind, e.t_plant, e.t_wall, e.station, e.source, e.user, canonical_payload(e.payload))

        stored = [key(r.event) for r in recs]
        for e in held:
            assert stored.count(key(e)) == 1, e
        t = [r.event.t_plant for r in recs[1:]]
        assert t == sorted(t)
        states = [r.event.payload.get("condition") for r in recs
                  if r.event.kind is EventKind.ALARM and r.event.payload.get("id") == "journal:write"]
        assert states[0] is True and states[-1] is False  # the outage itself is on record
        print(f"\nRELIABILITY disk-full: {len(held)} events held in memory while full, "
              f"journal {head_full[0]} -> {len(recs)} records after room returned")
    finally:
        if ctrl is not None:
            await ctrl.stop()
        await sim.stop()
