"""The runtime controller: start-up journal check, scan loop, commands before the journal."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from plantctl.clock import VirtualClock
from plantctl.fieldbus.loopback import LoopbackDriver
from plantctl.journal import Event, EventKind, Journal, verify
from plantctl.paths import io_dir
from plantctl.runtime import Controller
from plantctl.runtime_cli import open_journal
from plantctl.site import load_site
from sim_plc.gas_station import GasStation


def _site(tmp_path: Path) -> Any:
    p = tmp_path / "site.yaml"
    p.write_text(f"""site: t
journal: {tmp_path / 'journal.db'}
stations:
  gas_station:
    io_list: {io_dir() / 'gas_station.yaml'}
    plc: {{protocol: loopback}}
interlocks:
  - id: GT-GAS-2OO3
    station: gas_station
    description: gas 2oo3
    vote: 2oo3
    degraded: drop
    members:
      - {{tag: GD-401A, op: ">=", value: 25}}
      - {{tag: GD-401B, op: ">=", value: 25}}
      - {{tag: GD-401C, op: ">=", value: 25}}
    effects:
      - {{command: XY-400, value: false}}
""")
    return load_site(p)


def _controller(site: Any, clock: VirtualClock, model: GasStation, journal: Journal | None = None) -> Controller:
    journal = journal or Journal(site.journal_path)

    def factory(ctrl: Controller, name: str) -> Any:
        return LoopbackDriver(site.stations[name].iolist, model, clock, ctrl.on_readings_for(name), ctrl.on_link_for(name))

    return Controller(site, clock, journal, driver_factory=factory)


async def test_broken_chain_raises_a_top_priority_alarm_at_start(tmp_path: Path) -> None:
    site = _site(tmp_path)
    with Journal(site.journal_path) as j:
        for i in range(5):
            j.append(Event(EventKind.SYSTEM, float(i), 1e9 + i, "", "test", "", "", {"n": i}))
    # an attacker edits one byte of record 2, going around the append-only triggers
    con = sqlite3.connect(site.journal_path)
    con.execute("DROP TRIGGER IF EXISTS events_no_update")
    triggers = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='trigger'")]
    for t in triggers:
        con.execute(f"DROP TRIGGER {t}")
    con.execute("UPDATE events SET payload = replace(payload, ':', ': ') WHERE seq = 2")
    con.commit()
    con.close()
    clock = VirtualClock()
    model = GasStation()
    journal, problems = open_journal(site.journal_path, clock.wall())
    assert journal.path != site.journal_path  # the damaged file is kept as it is, never repaired
    assert any("events_no_update" in p for p in problems)
    ctrl = _controller(site, clock, model, journal)
    ctrl.startup_problems = problems
    await ctrl.check_journal()
    assert ctrl.engine.alarms.is_active("journal:chain")
    events = ctrl.engine.take_events()
    assert any(e.kind is EventKind.SYSTEM and "events_no_update" in str(e.payload.get("problems")) for e in events)
    # the broken file is untouched: verify still names the edited record
    assert any("record 2" in p for p in verify(site.journal_path).problems)
    ctrl.journal.close()


async def test_trip_commands_go_out_before_the_journal_write(tmp_path: Path) -> None:
    site = _site(tmp_path)
    clock = VirtualClock()
    model = GasStation()
    ctrl = _controller(site, clock, model)
    order: list[str] = []
    drv = ctrl.drivers["gas_station"]
    real_write = drv.write

    async def write(tag: str, value: Any) -> None:
        order.append(f"write {tag}")
        await real_write(tag, value)

    drv.write = write  # type: ignore[method-assign]
    real_append = ctrl.journal.append_many

    def append_many(events: list[Event]) -> Any:
        if any(e.kind is EventKind.TRIP for e in events):
            order.append("journal TRIP")
        return real_append(events)

    ctrl.journal.append_many = append_many  # type: ignore[method-assign]
    drv.poll(clock.now())
    model.inject("detector_stuck", tag="GD-401A", value=40.0)
    model.inject("detector_stuck", tag="GD-401B", value=40.0)
    model.step(0.1)
    drv.poll(clock.now())
    await ctrl.scan_once(clock.now())
    await ctrl.scan_once(clock.now())
    assert order[:2] == ["write XY-400", "journal TRIP"], order
    ctrl._journal_exec.shutdown(wait=True)
    ctrl.journal.close()
