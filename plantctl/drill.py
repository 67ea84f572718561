"""``plantctl drill FILE``: a scenario run as a drill, on real time, with people answering.

Theory of operation
-------------------
A drill uses the same scenario file as the virtual-time library, but nothing is
scripted on the controller side: the simulator and the controller are already
running (``plantctl sim``, ``plantctl run``, the HMI), and the shift answers the
tasks on the HMI as it would in an emergency. The drill only

1. injects the scenario's initial and timed faults into the simulator through
   its HTTP API (``POST /faults``, ``DELETE /faults``) at their times, counted
   from the drill's start on the drill's clock (real time);
2. prints the scenario's operator actions (``start``, ``command``) as prompts at
   their times: in a drill people do them;
3. reads the controller's journal (the SQLite file, ``Journal.records`` from the
   sequence number it had when the drill started), and feeds the events and the
   simulator's live tags (``GET /tags``) to the same ``Checker`` the scenario
   library uses;
4. scores the people: every task the controller opened, its response time
   against its deadline (the step's timeout, as the TASK event gives it), tasks
   left unanswered, and each expectation of the scenario met or missed.

Times: journal events are placed on the drill's timeline by their wall-clock
stamp (``t_wall`` minus the drill's start), so the controller and the drill need
not share a monotonic clock, only a wall clock. The score is the share of
on-time answers and met expectations, 0-100.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .clock import Clock, RealClock
from .errors import ConfigError, PlantctlError
from .journal import Event, EventKind, Journal
from .scenario import Checker, Expectation, Prepared, prepare, seconds
from .tags import Quality, Reading


class DrillError(PlantctlError):
    """The drill could not talk to the simulator or read the journal."""


@dataclass
class TaskScore:
    run: str
    task: str
    title: str
    opened_s: float  # on the drill's timeline
    deadline_s: float  # the time the controller gave to answer it
    answered_s: float | None = None
    answer: str = ""
    by: str = ""
    target_s: float | None = None  # the scenario's scripted answer delay, if any
    withdrawn_s: float | None = None  # the procedure moved on before anyone answered (not scored)
    end_s: float = 0.0  # the drill's end, to tell an open task from a missed one

    @property
    def response_s(self) -> float | None:
        return None if self.answered_s is None else self.answered_s - self.opened_s

    @property
    def on_time(self) -> bool:
        r = self.response_s
        return r is not None and r <= self.deadline_s + 1e-6

    @property
    def scored(self) -> bool:
        """Answered, or left unanswered past its deadline; not a task withdrawn or still open in time."""
        if self.answered_s is not None:
            return True
        return self.withdrawn_s is None and self.end_s - self.opened_s > self.deadline_s

    @property
    def verdict(self) -> str:
        if self.answered_s is not None:
            return "on time" if self.on_time else "LATE"
        if self.withdrawn_s is not None:
            return "withdrawn (the step moved on)"
        return "MISSED" if self.scored else "open at the end"


@dataclass
class DrillResult:
    name: str
    path: Path
    proves: str
    started_wall: float
    duration_s: float
    tasks: list[TaskScore]
    expectations: list[Expectation]
    events: list[Event] = field(default_factory=list)
    prompts: list[tuple[float, str]] = field(default_factory=list)

    @property
    def missed_steps(self) -> list[Expectation]:
        return [x for x in self.expectations if not x.passed and x.spec.procedure]

    @property
    def score(self) -> int:
        tasks = [t for t in self.tasks if t.scored]
        items = len(tasks) + len(self.expectations)
        if items == 0:
            return 100
        good = sum(t.on_time for t in tasks) + sum(bool(x.passed) for x in self.expectations)
        return round(100.0 * good / items)


# =====================================================================================================
# the simulator's HTTP API (blocking calls, run in a thread: the simulator may share this event loop)
# =====================================================================================================
class SimApi:
    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - the operator's URL
                return json.loads(resp.read().decode() or "null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise DrillError(f"simulator {method} {path}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise DrillError(f"cannot reach the simulator at {self.base}: {exc}") from None

    async def inject(self, station: str, fault: str, params: dict[str, Any]) -> Any:
        return await asyncio.to_thread(self._call, "POST", "/faults", {"station": station, "fault": fault,
                                                                       "params": params})

    async def clear(self, station: str, fault: str) -> Any:
        q = urllib.parse.urlencode({"station": station, "fault": fault})
        return await asyncio.to_thread(self._call, "DELETE", f"/faults?{q}")

    async def tags(self, station: str) -> dict[str, Any]:
        q = urllib.parse.urlencode({"station": station})
        got = await asyncio.to_thread(self._call, "GET", f"/tags?{q}")
        values: dict[str, Any] = got["stations"][station]
        return values


# =====================================================================================================
# the drill
# =====================================================================================================
class Drill:
    def __init__(self, prep: Prepared, sim: SimApi, journal: Journal, clock: Clock | None = None, *,
                 poll_s: float = 0.5, say: Any = None) -> None:
        self.prep = prep
        self.sim = sim
        self.journal = journal
        self.clock: Clock = clock or RealClock()
        self.poll_s = poll_s
        self.say = say or (lambda m: print(m, flush=True))
        self._tags: dict[str, dict[str, Any]] = {}
        self._tag_t = 0.0

    def _read(self, station: str, tag: str) -> Reading | None:
        v = self._tags.get(station, {}).get(tag)
        if v is None:
            return None
        return Reading(v, Quality.GOOD, self._tag_t)

    async def run(self) -> DrillResult:
        prep, sc = self.prep, self.prep.sc
        head = self.journal.head[0]
        w0 = self.clock.wall()
        t0 = self.clock.now()
        checker = Checker(prep, t0=0.0, settle_s=2.0 * self.poll_s)
        timed = sorted(((seconds(t.at), k, t) for k, t in enumerate(sc.events)), key=lambda x: (x[0], x[1]))
        end = seconds(sc.duration)
        want_tags = sorted({prep.station_of(e.station) for e in sc.expect if e.tag})
        events: list[Event] = []
        prompts: list[tuple[float, str]] = []
        self.say(f"drill {sc.name}: {sc.proves.strip()}")
        for f in sc.initial:
            await self.sim.inject(f.station, f.fault, dict(f.params))
        last = head
        while True:
            now = self.clock.now() - t0
            while timed and timed[0][0] <= now + 1e-9:
                at, _, t = timed.pop(0)
                if t.inject is not None:
                    await self.sim.inject(t.inject.station, t.inject.fault, dict(t.inject.params))
                    self.say(f"[{at:7.1f} s] fault injected: {t.inject.station} {t.inject.fault} {t.inject.params}")
                if t.clear is not None:
                    await self.sim.clear(t.clear.station, t.clear.fault)
                    self.say(f"[{at:7.1f} s] fault cleared: {t.clear.station} {t.clear.fault}")
                for text in _prompts(t):
                    prompts.append((at, text))
                    self.say(f"[{at:7.1f} s] PROMPT: {text}")
            for station in want_tags:
                self._tags[station] = await self.sim.tags(station)
            self._tag_t = now
            new: list[Event] = []
            for rec in self.journal.records(since_seq=last):
                last = rec.seq
                new.append(replace(rec.event, t_plant=rec.event.t_wall - w0))
            events.extend(new)
            checker.update(new, now, self._read)
            if checker.done or now >= end + checker.settle_s:
                break
            await self.clock.sleep_until(self.clock.now() + self.poll_s)
        t_end = min(self.clock.now() - t0, end + checker.settle_s)
        checker.finish(t_end)
        return DrillResult(sc.name, prep.path, sc.proves, w0, min(self.clock.now() - t0, end),
                           score_tasks(events, prep, t_end), checker.expectations, events, prompts)


def _prompts(t: Any) -> list[str]:
    out = []
    if t.start is not None:
        out.append(f"start procedure {t.start.procedure} ({t.start.reason})")
    if t.command is not None:
        out.append(f"send {t.command.station} {t.command.tag} := {t.command.value}")
    if t.note:
        out.append(t.note)
    return out


def score_tasks(events: list[Event], prep: Prepared, end_s: float) -> list[TaskScore]:
    """Every task the controller opened during the drill, paired with its answer (by run and task), or
    marked withdrawn when its step was left before anyone answered."""
    targets = {(a.procedure, a.task): seconds(a.after) for a in prep.sc.answers}
    open_: dict[tuple[str, str], TaskScore] = {}
    out: list[TaskScore] = []
    for ev in events:
        if ev.kind is EventKind.PROCEDURE_TRANSITION:
            src, dest = ev.payload.get("from"), ev.payload.get("to")
            left = (ev.source, str(src))
            if src != dest and left in open_:
                open_.pop(left).withdrawn_s = ev.t_plant
            continue
        if ev.kind is not EventKind.TASK:
            continue
        key = (ev.source, str(ev.payload.get("task")))
        if ev.payload.get("opened"):
            proc = ev.source.split("#")[0]
            ts = TaskScore(ev.source, key[1], str(ev.payload.get("title", "")), ev.t_plant,
                           float(ev.payload.get("due_in_s") or 0.0), target_s=targets.get((proc, key[1])), end_s=end_s)
            open_[key] = ts
            out.append(ts)
        elif "answer" in ev.payload and key in open_:
            ts = open_.pop(key)
            ts.answered_s, ts.answer, ts.by = ev.t_plant, str(ev.payload["answer"]), ev.user
    return out


# =====================================================================================================
# the report
# =====================================================================================================
def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f} s"


def markdown(res: DrillResult) -> str:
    lines = [f"# Drill: {res.name}", "", f"**Proves:** {res.proves.strip()}", "",
             f"Scenario file `{res.path}`; {res.duration_s:.0f} s of plant time.", "",
             f"## Score: {res.score} / 100", "",
             "The share of tasks answered within their deadline (tasks withdrawn by the procedure, or still "
             "open within their deadline at the end, are not scored) and of the scenario's expectations met.", "",
             "## Tasks", "", "| task | procedure run | opened | answered | response | deadline | target | by | "
             "answer | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    for t in res.tasks:
        lines.append(f"| {t.task} {t.title} | {t.run} | {_fmt(t.opened_s)} | {_fmt(t.answered_s)} | "
                     f"{_fmt(t.response_s)} | {t.deadline_s:.0f} s | {_fmt(t.target_s)} | {t.by or '-'} | "
                     f"{t.answer or '-'} | {t.verdict} |")
    if not res.tasks:
        lines.append("| (no task opened) | | | | | | | | | |")
    lines += ["", "## Expectations", "", "| | expected | seen | line |", "|---|---|---|---|"]
    for x in res.expectations:
        lines.append(f"| {'PASS' if x.passed else 'FAIL'} | {x.text} | {x.seen} | {x.line} |")
    missed = res.missed_steps
    lines += ["", "## Missed steps", ""]
    lines += [f"- {x.text}: {x.seen}" for x in missed] or ["- none"]
    unanswered = [t for t in res.tasks if t.answered_s is None and t.withdrawn_s is None]
    lines += ["", "## Tasks not answered", ""]
    lines += [f"- {t.task} ({t.run}): {t.title}: {t.verdict}" for t in unanswered] or ["- none"]
    if res.prompts:
        lines += ["", "## Prompts given", ""] + [f"- {at:.0f} s: {text}" for at, text in res.prompts]
    return "\n".join(lines) + "\n"


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;font-size:.9em}"
        "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}.ok{color:#0a6b0a}.bad{color:#b00;font-weight:bold}")


def html_report(res: DrillResult) -> str:
    def row(cells: list[str], cls: str = "") -> str:
        return "<tr" + (f" class={cls}" if cls else "") + ">" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>"

    tasks = "".join(row([f"{t.task} {t.title}", t.run, _fmt(t.opened_s), _fmt(t.answered_s), _fmt(t.response_s),
                         f"{t.deadline_s:.0f} s", _fmt(t.target_s), t.by or "-", t.answer or "-", t.verdict],
                        "ok" if t.on_time else "bad") for t in res.tasks)
    exps = "".join(row(["PASS" if x.passed else "FAIL", x.text, x.seen, str(x.line)], "ok" if x.passed else "bad")
                   for x in res.expectations)
    missed = "".join(f"<li>{html.escape(x.text)}: {html.escape(x.seen)}</li>" for x in res.missed_steps) or "<li>none</li>"
    return (f"<!doctype html><html><head><meta charset=utf-8><title>Drill {html.escape(res.name)}</title>"
            f"<style>{_CSS}</style></head><body><h1>Drill: {html.escape(res.name)}</h1>"
            f"<p><b>Proves:</b> {html.escape(res.proves.strip())}</p><h2>Score: {res.score} / 100</h2>"
            "<h2>Tasks</h2><table><tr><th>task</th><th>run</th><th>opened</th><th>answered</th><th>response</th>"
            f"<th>deadline</th><th>target</th><th>by</th><th>answer</th><th>verdict</th></tr>{tasks}</table>"
            f"<h2>Expectations</h2><table><tr><th></th><th>expected</th><th>seen</th><th>line</th></tr>{exps}</table>"
            f"<h2>Missed steps</h2><ul>{missed}</ul></body></html>")


def write_reports(res: DrillResult, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    md, page = out_dir / f"{res.name}-drill.md", out_dir / f"{res.name}-drill.html"
    md.write_text(markdown(res), encoding="utf-8")
    page.write_text(html_report(res), encoding="utf-8")
    return md, page


# =====================================================================================================
# command line
# =====================================================================================================
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="scenario file")
    p.add_argument("--sim", default="http://127.0.0.1:8765", help="the simulator's HTTP API (default %(default)s)")
    p.add_argument("--journal", help="the controller's journal file (default: the scenario's site journal)")
    p.add_argument("--report", default="drills", help="folder for the Markdown and HTML drill report")
    p.add_argument("--poll", type=float, default=0.5, help="seconds between journal reads")


async def run_drill(path: str | Path, sim_url: str, journal: Journal, clock: Clock | None = None,
                    poll_s: float = 0.5, say: Any = None) -> DrillResult:
    return await Drill(prepare(path), SimApi(sim_url), journal, clock, poll_s=poll_s, say=say).run()


def cli(args: argparse.Namespace) -> int:
    try:
        prep = prepare(args.file)
    except ConfigError as exc:
        for m in exc.messages:
            print(m, file=sys.stderr)
        return 2
    jpath = Path(args.journal) if args.journal else prep.site.journal_path
    if not jpath.is_file():
        print(f"no journal at {jpath}: is the controller running (plantctl run --site ...)?", file=sys.stderr)
        return 2
    # Only read: records(); the controller stays the one writer of the file.
    journal = Journal(jpath)
    try:
        res = asyncio.run(Drill(prep, SimApi(args.sim), journal, poll_s=args.poll).run())
    except DrillError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    finally:
        journal.close()
    md, page = write_reports(res, Path(args.report))
    print(f"score {res.score}/100; report {md} and {page}")
    return 0 if res.score == 100 else 1


__all__ = ["Drill", "DrillError", "DrillResult", "SimApi", "TaskScore", "add_arguments", "cli", "html_report",
           "markdown", "run_drill", "score_tasks", "write_reports"]
