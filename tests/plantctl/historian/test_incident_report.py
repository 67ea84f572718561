"""The post-incident report of a GT-compartment leak: first detector, trip, operator actions, trends.

The incident is simulated end to end: sim_plc's gas station with a 3 mm leak into the GT compartment,
the site's cause and effect (demo.yaml), the ISA-18.2 board with its first-out group, a small procedure
with a command and a patrol task, operators acknowledging, answering and resetting; the journal and the
embedded historian record it all, and ``plantctl report --incident`` builds the page from them.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from plantctl.alarms import snapshot_view
from plantctl.clock import VirtualClock
from plantctl.engine import Action, Actor, Request, Role, ScanResult
from plantctl.historian import Point, SQLiteHistorian, points_from_snapshot
from plantctl.historian.report import Entry, build_report, find_incidents, load_entries
from plantctl.historian.report_cli import add_cli, parse_time
from plantctl.interlocks import Effect
from plantctl.journal import Event, EventKind, Journal
from plantctl.procedures import Cmd, ProcedureDef, Step, StepKind, Task
from plantctl.rig import VirtualRig
from plantctl.site import load_site
from sim_plc.gas_station import load_station
from sim_plc.plant import Plant

REPO = Path(__file__).resolve().parents[3]
GAS = "gas_station"
OLGA = Actor("olga", frozenset({Role.OPERATOR}), "10.1.1.21")
BOB = Actor("bob", frozenset({Role.SUPERVISOR}), "10.1.1.22")

GC_LEAK = ProcedureDef(
    id="GC-LEAK",
    title="Gas in the GT compartment",
    station=GAS,
    source="test",
    steps=(
        Step("S1", "Start the standby extract fan VF-411B.", StepKind.COMMAND, next="S2", on_fail="S2", timeout_s=30,
             commands=(Cmd("XY-411B", True, label="VF-411B"),)),
        Step("S2", "Patrol: measure at the compartment doors with a portable detector and report.", StepKind.TASK,
             next="DONE", on_fail="DONE", timeout_s=1800, task=Task("patrol GC", Role.OPERATOR)),
    ),
)

ALARM_SETTINGS: dict[str, Any] = {
    "areas": {"GT": [f"{GAS}:GD-401*", f"{GAS}:TS-402", f"{GAS}:XA-401*"], "gas supply": [GAS]},
    "first_out_groups": {"GT-400": [f"{GAS}:GD-401*", f"{GAS}:TS-402:*", f"{GAS}:XA-401*", "GT-*:trip"]},
    "suppress": [{"name": "GT not running", "when": {"tag": f"{GAS}:XS-400", "op": "in", "value": ["OFF", "TRIPPED"]},
                  "alarms": [f"{GAS}:PT-322:L*"], "release_delay_s": 60}],
}


class IncidentRig(VirtualRig):
    """The rig with the two parts the lead wires into the engine's scan: the alarm board's
    evaluate() and the historian's record() (after the journal)."""

    history: SQLiteHistorian

    def tick(self) -> ScanResult:
        result = super().tick()
        now, wall = self.clock.now(), self.clock.wall()
        snap = self.snapshot()
        events = self.engine.alarms.evaluate(snapshot_view(snap, [GAS]), now, wall)
        self._record(events)
        result.events.extend(events)
        self.history.record(points_from_snapshot(GAS, snap, wall))
        return result


@pytest.fixture(scope="module")
def incident(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("incident")
    site = load_site(REPO / "sites" / "demo.yaml")
    iol = site.iolists[GAS]
    interlocks = []
    for il in site.interlocks:
        if il.station != GAS:
            continue
        effects = tuple(Effect(procedure="GC-LEAK") if e.procedure == "GAS-L5" else e
                        for e in il.effects if e.procedure in (None, "GAS-L5"))
        interlocks.append(dataclasses.replace(il, effects=effects))
    clock = VirtualClock()
    plant = Plant([load_station(seed=1)], clock)
    journal = Journal(tmp / "journal.db")
    rig = IncidentRig({GAS: iol}, plant, clock, interlocks=interlocks, procedures=[GC_LEAK], journal=journal)
    rig.history = SQLiteHistorian(tmp / "history.db")
    rig.engine.alarms.configure({GAS: iol}, ALARM_SETTINGS)

    rig.run_for(60.0)
    plant.stations[GAS].inject("leak", zone="GC", hole_mm=3.0)
    assert rig.run_until(400.0, until=lambda r: bool(r.engine.tripped()))
    t_trip = rig.now
    rig.run_for(20.0)
    # the operator acknowledges what is standing, then tries to reset at once: refused
    for a in list(rig.engine.alarms.active()):
        rig.request(Request(Action.ACK, OLGA, station=GAS, tag=a.id))
    refused = rig.request(Request(Action.RESET, OLGA, interlock="GT-GAS-2OO3", station=GAS))
    assert not refused.accepted
    run = next(iter(rig.procs.runs.values()))
    shelved = rig.engine.alarms.shelve(f"{GAS}:AI-901:H", "olga", {"operator"}, 3600, "portable detector in bump test",
                                       rig.now, clock.wall())
    assert shelved.accepted
    rig._record(shelved.events)
    rig.run_for(30.0)
    assert rig.answer(run.run_id, "S2", "done", OLGA).accepted
    plant.stations[GAS].clear("leak")
    rig.run_for(600.0)
    for a in list(rig.engine.alarms.active()):
        rig.request(Request(Action.ACK, OLGA, station=GAS, tag=a.id))
    reset = rig.request(Request(Action.RESET, OLGA, interlock="GT-GAS-2OO3", station=GAS, confirmed_by=BOB))
    assert reset.accepted, reset.message
    rig.run_for(30.0)
    journal.close()
    rig.history.close()
    return {"tmp": tmp, "t_trip": t_trip, "wall0": clock.wall() - clock.now(), "run": run.run_id}


def first_crossing(history: Path, t0: float, t1: float) -> list[tuple[float, str]]:
    """From the historian alone: when each detector first read 10 %LEL or more (GOOD)."""
    h = SQLiteHistorian(history, readonly=True)
    out = []
    for tag in ("GD-401A", "GD-401B", "GD-401C"):
        pts = h.query(GAS, tag, t0, t1)
        out.append((next(p.t_wall for p in pts if p.value >= 10.0 and p.quality == 2), tag))
    h.close()
    return sorted(out)


class Page(HTMLParser):
    """Sections by id, their text, attributes of marked elements, every URL-ish attribute."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: dict[str, list[str]] = {}
        self.attrs: dict[str, dict[str, str]] = {}
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.rows: dict[str, list[tuple[str, list[str]]]] = {}
        self._row: list[str] | None = None
        self._row_cls = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if "id" in a:
            self.attrs[a["id"]] = a
        if tag == "section":
            self.stack.append(a.get("id", ""))
        if tag == "tr":
            self._row, self._row_cls = [], a.get("class", "")
        if tag == "td" and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "section" and self.stack:
            self.stack.pop()
        if tag == "tr" and self._row is not None and self.stack:
            if self._row:
                self.rows.setdefault(self.stack[-1], []).append((self._row_cls, self._row))
            self._row = None

    def handle_data(self, data: str) -> None:
        if self.stack:
            self.text.setdefault(self.stack[-1], []).append(data)
        if self._row is not None and self._row:
            self._row[-1] += data

    def section(self, sid: str) -> str:
        return " ".join(self.text.get(sid, []))


def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="plantctl")
    sub = parser.add_subparsers(dest="command")
    add_cli(sub)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_report_of_a_gt_compartment_leak(incident: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    tmp: Path = incident["tmp"]
    incidents = find_incidents(load_entries(tmp / "journal.db"))
    assert [i.interlock for i in incidents] == ["GT-GAS-2OO3"]
    out = tmp / "reports"
    code = _run_cli(["report", "--journal", str(tmp / "journal.db"), "--history", str(tmp / "history.db"),
                     "--incident", str(incidents[0].seq), "--before", "120", "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    html_path = Path(printed.splitlines()[0])
    md_path = Path(printed.splitlines()[1])
    page_text = html_path.read_text(encoding="utf-8")
    page = Page()
    page.feed(page_text)

    # -- the first detector to alarm, as the historian alone tells it
    wall_trip = incident["wall0"] + incident["t_trip"]
    crossings = first_crossing(tmp / "history.db", wall_trip - 300, wall_trip)
    assert crossings[0][0] < crossings[1][0], "two detectors crossed in the same scan: pick another seed"
    first_tag = crossings[0][1]
    assert page.attrs["first-alarm"]["data-tag"] == first_tag
    assert page.attrs["first-alarm"]["data-alarm"] == f"{GAS}:{first_tag}:H"
    assert f"First alarm: {GAS}:{first_tag}:H ({first_tag})" in page.section("summary")
    fo_rows = page.rows["first-out"]
    assert fo_rows[0][0] == "trip" and fo_rows[0][1][2:4] == ["GT-400", "GT-GAS-2OO3"]
    assert fo_rows[0][1][5].startswith(f"{GAS}:{first_tag}:H")

    # -- the trip, its commands verified, the procedure
    trips = page.rows["trips"]
    assert any(cls == "trip" and row[3] == "GT-GAS-2OO3" and row[4] == "TRIP" for cls, row in trips)
    assert any(row[4] == "TRIP_RESET" and row[6] == "olga" for _, row in trips)
    cmds = page.rows["commands"]
    xy400 = [row for _, row in cmds if row[3] == "XY-400 := False"]
    assert xy400 and xy400[0][4] == "GT-GAS-2OO3" and xy400[0][6].startswith("verified after")
    assert any(row[3] == "XY-411B := True" and row[6].startswith("verified") for _, row in cmds)
    procs = page.section("procedures")
    assert "Start the standby extract fan VF-411B." in procs and "Patrol: measure at the compartment doors" in procs

    # -- operator actions, with names and outcomes
    ops = page.rows["operator-actions"]
    assert any(row[2] == "olga" and row[4].startswith("reset GT-GAS-2OO3") and row[5].startswith("REFUSED")
               for _, row in ops)
    assert any(row[2] == "olga" and row[4] == "reset GT-GAS-2OO3" and "confirmed by bob" in row[5] for _, row in ops)
    assert any(row[2] == "olga" and row[4] == f"ack {GAS}:{first_tag}:H" and row[5] == "accepted: acknowledged"
               and row[3] == "10.1.1.21" for _, row in ops)
    assert not any(row[4] == f"alarm {GAS}:{first_tag}:H" for _, row in ops)  # the ack is listed once
    assert any(row[2] == "olga" and row[4] == f"alarm {GAS}:AI-901:H" and "bump test" in row[5] for _, row in ops)
    assert any(row[2] == "olga" and row[4].startswith("task of") and "patrol GC" in row[5] for _, row in ops)
    assert any(row[3] == "10.1.1.21" for _, row in ops)  # from where
    timeline = page.section("timeline")
    assert timeline.index("ALARM") < timeline.index("FIRST_OUT") < timeline.index("TRIP_RESET")

    # -- the trends: inline SVG, one per detector among them, with the trip marked
    figures = [a.get("data-file", "") for t, a in page.tags if t == "figure"]
    assert {f"{GAS}_GD-401A.svg", f"{GAS}_GD-401B.svg", f"{GAS}_GD-401C.svg"} <= set(figures)
    assert figures[0] == f"{GAS}_{first_tag}.svg" or figures[0].startswith(f"{GAS}_GD-401")
    svgs = re.findall(r"<svg\b.*?</svg>", page_text, flags=re.S)
    assert len(svgs) == len(figures) >= 3
    assert all("<path" in s for s in svgs)
    assert "TRIP GT-GAS-2OO3" in svgs[0] and "%LEL" in page_text

    # -- cause and preventive measures: there, empty, due within two days
    for sid in ("cause", "preventive-measures"):
        assert "within two days" in page.section(sid)
    due = re.search(r"by (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}Z)", page.section("cause"))
    assert due is not None and parse_time(due.group(1).replace("Z", "+00:00")) == pytest.approx(
        incidents[0].t_wall + 2 * 86400, abs=0.001)
    assert '<div class="todo"></div>' in page_text

    # -- self-contained: no script, no stylesheet link, no fetched URL (only XML namespace names)
    assert not any(t in ("script", "link", "img", "iframe") for t, _ in page.tags)
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", page_text))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    assert "--anchor" in page.section("evidence")

    # -- the Markdown twin
    md = md_path.read_text(encoding="utf-8")
    assert f"First alarm: {GAS}:{first_tag}:H ({first_tag})" in md
    assert "## Cause" in md and "## Preventive measures" in md and "| olga |" in md
    for ref in re.findall(r"\]\((trends/[^)]+\.svg)\)", md):
        assert (md_path.parent / ref).read_text().startswith("<svg")


def test_report_by_window_and_the_incident_list(incident: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    tmp: Path = incident["tmp"]
    assert _run_cli(["report", "--journal", str(tmp / "journal.db"), "--list"]) == 0
    assert "GT-GAS-2OO3" in capsys.readouterr().out
    w = incident["wall0"] + incident["t_trip"]
    from datetime import UTC, datetime

    iso = datetime.fromtimestamp(w - 60, tz=UTC).isoformat()
    code = _run_cli(["report", "--journal", str(tmp / "journal.db"), "--history", str(tmp / "history.db"),
                     "--from", iso, "--to", str(w + 60), "-o", str(tmp / "window"), "--title", "GC leak, 2 min"])
    out = capsys.readouterr().out
    assert code == 0 and "GC leak, 2 min" in Path(out.splitlines()[0]).read_text()
    assert _run_cli(["report", "--journal", str(tmp / "journal.db"), "--from", "0", "--to", "10",
                     "-o", str(tmp / "empty")]) == 1
    assert _run_cli(["report", "--journal", str(tmp / "journal.db"), "--from", "10", "--to", "0"]) == 2
    assert _run_cli(["report", "--journal", str(tmp / "journal.db"), "--incident", "1"]) == 2  # not a first-out


def test_report_escapes_what_people_typed_and_works_without_history() -> None:
    t = 1_767_225_600.0
    evil = "<script>alert(1)</script>"
    entries = [
        Entry(1, Event(EventKind.OPERATOR_ACTION, 1.0, t + 1, GAS, "operator", evil, "10.0.0.1",
                       {"action": "command", "accepted": False, "message": evil, "tag": "XY-400", "value": True})),
        Entry(2, Event(EventKind.ALARM, 2.0, t + 2, GAS, "alarm", "", "",
                       {"id": "x:1", "state": "unacknowledged", "from": "normal", "priority": 2, "message": evil}),
              "ab" * 32),
    ]
    r = build_report(entries, None, t, t + 10)
    assert evil not in r.html and "&lt;script&gt;" in r.html
    assert "No historian was available" in r.html and r.svgs == {}
    assert r.first_alarm == "x:1" and r.first_detector == ""
    assert "--anchor 2:" + "ab" * 32 in r.html


def test_plots_mark_bad_samples_and_limits(tmp_path: Path) -> None:
    t = 1_767_225_600.0
    h = SQLiteHistorian(tmp_path / "h.db")
    h.record([Point(GAS, "GD-401A", t + k, float(k), 0 if k == 5 else 2) for k in range(20)])
    entries = [Entry(1, Event(EventKind.ALARM, 10.0, t + 10, GAS, "alarm", "", "",
                              {"id": f"{GAS}:GD-401A:H", "state": "unacknowledged", "from": "normal", "priority": 3,
                               "message": "high", "tag": "GD-401A", "kind": "H", "limit": 10.0, "value": 10.0}))]
    r = build_report(entries, h, t, t + 30, units={(GAS, "GD-401A"): "%LEL"})
    (svg,) = r.svgs.values()
    for gid in ("values", "bad-quality", "limit-H", "mark-0"):
        assert f'id="{gid}"' in svg, gid
    assert ">H<" in svg and "%LEL" in svg and "first alarm GD-401A" in svg
    h.record([Point(GAS, "GD-401A", t + 5, 5.0, 2)])  # the one BAD sample re-recorded GOOD
    r2 = build_report(entries, h, t, t + 30)
    assert 'id="bad-quality"' not in r2.svgs[f"{GAS}_GD-401A.svg"] and 'id="values"' in r2.svgs[f"{GAS}_GD-401A.svg"]
    h.close()


def test_report_from_a_site_file(incident: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    tmp: Path = incident["tmp"]
    site = tmp / "site.yaml"
    site.write_text(
        "site: plant-a\n"
        "journal: journal.db\n"
        "historian: {backend: sqlite, path: history.db}\n"
        "stations:\n"
        f"  gas_station: {{io_list: {REPO / 'io' / 'gas_station.yaml'}, plc: {{protocol: loopback}}}}\n"
    )
    w = incident["wall0"] + incident["t_trip"]
    assert _run_cli(["report", "--site", str(site), "--from", str(w - 30), "--to", str(w + 30),
                     "-o", str(tmp / "by-site")]) == 0
    page = Path(capsys.readouterr().out.splitlines()[0]).read_text()
    # journal and historian found through the site file: the trip and its trends are there
    assert "Site: plant-a." in page and "GT-GAS-2OO3" in page and page.count("<svg") >= 3


@pytest.mark.timeout(120)
async def test_report_renders_in_chromium(incident: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """The report opens in the control room's browser: headless Debian Chromium draws the
    first alarm, the tables and every trend picture with a real size."""
    from playwright.async_api import async_playwright

    exe = Path("/usr/lib/chromium/chromium")
    if not exe.exists():
        pytest.fail("Debian chromium is missing: apt-get install chromium (make test installs it)")
    tmp: Path = incident["tmp"]
    incidents = find_incidents(load_entries(tmp / "journal.db"))
    out = tmp / "reports-browser"
    assert _run_cli(["report", "--journal", str(tmp / "journal.db"), "--history", str(tmp / "history.db"),
                     "--incident", str(incidents[0].seq), "-o", str(out)]) == 0
    html_path = Path(capsys.readouterr().out.splitlines()[0])
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(exe), args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": 1300, "height": 900})
            await page.goto(html_path.as_uri())
            assert "First alarm:" in await page.inner_text("body")
            sizes = await page.eval_on_selector_all(
                "svg", "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })")
            assert len(sizes) >= 3 and all(w > 200 and h > 100 for w, h in sizes), sizes
            shots = Path("test-artifacts/screenshots")
            shots.mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=str(shots / "incident-report.png"), full_page=True)
        finally:
            await browser.close()
