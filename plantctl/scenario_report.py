"""HTML reports of scenario runs: one page per scenario, and an index.

Each page has one timeline picture (pressures, concentrations, valve positions
and the procedure steps, alarms and operator answers on one time axis, with the
alarm and trip lines of the plotted signals drawn in), the expectation table,
and the event table. Plots are matplotlib SVG inlined in the page: a report is
one self-contained file that opens on an air-gapped machine.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import Any

from .journal import EventKind
from .scenario import ScenarioResult

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;background:#fafafa}
h1{font-size:1.4em} table{border-collapse:collapse;font-size:.85em;margin:1em 0}
td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}
.pass{color:#0a6b0a;font-weight:bold}.fail{color:#b00;font-weight:bold}
.kind{font-family:monospace}
"""


def _timeline_svg(res: ScenarioResult, limits: dict[str, dict[str, float]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # text stays text in the SVG: searchable in the page, and readable by a test
    matplotlib.rcParams["svg.fonttype"] = "none"

    series = res.samples
    if not series:
        return "<p>(no signals recorded: add <code>record:</code> to the scenario)</p>"
    n = len(series)
    fig, axes = plt.subplots(n + 1, 1, figsize=(11, 1.9 * (n + 1)), sharex=True,
                             gridspec_kw={"height_ratios": [2] * n + [2.5]})
    for ax, (name, pts) in zip(axes[:-1], series.items(), strict=False):
        t = [p[0] / 60 for p in pts]
        v = [p[1] for p in pts]
        ax.plot(t, v, color="#333", lw=1.2)
        ax.set_ylabel(name.split(":")[-1], fontsize=8)
        ax.grid(alpha=.3)
        for lname, lval in limits.get(name, {}).items():
            colour = "#c00" if lname in ("HH", "LL", "TRIP") else "#e69500"
            ax.axhline(lval, color=colour, ls="--", lw=.9)
            ax.text(0, lval, f" {lname} {lval:g}", color=colour, fontsize=7, va="bottom")
    ax = axes[-1]
    ax.set_yticks([])
    ax.set_xlabel("plant time (min)")
    rows = {"step": 3, "alarm": 2, "command": 1, "answer": 0}
    span = max(res.duration_s / 60, 1e-6)
    last: dict[str, tuple[float, int]] = {}

    def label(row: str, x: float, text: str, **kw: Any) -> None:
        """Labels that fall on the same spot are stepped sideways, so a burst of steps stays readable."""
        px, k = last.get(row, (-1.0, 0))
        k = k + 1 if x - px < 0.04 * span else 0
        last[row] = (x, k)
        ax.text(x + 0.012 * span * k, rows[row] + .15 + 0.12 * (k % 4), text, fontsize=6, rotation=35, **kw)
    for ev in res.events:
        x = ev.t_plant / 60
        if ev.kind is EventKind.PROCEDURE_TRANSITION and ev.payload.get("from") != ev.payload.get("to"):
            ax.plot([x], [rows["step"]], "|", color="#224", ms=12)
            label("step", x, f"{ev.payload.get('procedure')} {ev.payload.get('to')}")
        elif ev.kind is EventKind.TRIP:
            for a in axes:
                a.axvline(x, color="#c00", lw=1.4)
            ax.text(x, rows["alarm"] + .3, f"TRIP {ev.payload.get('interlock')}", color="#c00", fontsize=7)
        elif ev.kind is EventKind.ALARM and ev.payload.get("state") == "unacknowledged":
            ax.plot([x], [rows["alarm"]], "v", color="#e69500", ms=5)
        elif ev.kind in (EventKind.COMMAND, EventKind.COMMAND_FAILED):
            ax.plot([x], [rows["command"]], "s" if ev.kind is EventKind.COMMAND else "x",
                    color="#444" if ev.kind is EventKind.COMMAND else "#c00", ms=4)
            if ev.kind is EventKind.COMMAND:
                label("command", x, _command_label(res, ev.payload))
        elif ev.kind is EventKind.TASK and ev.payload.get("answer"):
            ax.plot([x], [rows["answer"]], "o", color="#06c", ms=4)
            label("answer", x, f"{ev.user}: {ev.payload.get('task')}")
    ax.set_ylim(-.5, 4.5)
    for name, y in rows.items():
        ax.text(-0.01, y, name, transform=ax.get_yaxis_transform(), ha="right", fontsize=7)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def write_report(res: ScenarioResult, out_dir: Path, limits: dict[str, dict[str, float]] | None = None) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / f"{res.path.stem}.html"
    exp_rows = "".join(
        f"<tr><td class={'pass' if e.passed else 'fail'}>{'PASS' if e.passed else 'FAIL'}</td>"
        f"<td>{html.escape(e.text)}</td><td>{html.escape(e.seen)}</td><td>line {e.line}</td></tr>"
        for e in res.expectations
    )
    ev_rows = "".join(
        f"<tr><td>{e.t_plant:9.1f}</td><td class=kind>{e.kind.value}</td><td>{html.escape(e.station)}</td>"
        f"<td>{html.escape(e.source)}</td><td>{html.escape(e.user)}</td><td>{html.escape(_summary(e.payload))}</td></tr>"
        for e in res.events
    )
    body = f"""<!doctype html><html><head><meta charset=utf-8><title>{html.escape(res.name)}</title>
<style>{_CSS}</style></head><body>
<h1>{html.escape(res.name)} <span class={'pass' if res.passed else 'fail'}>{'PASS' if res.passed else 'FAIL'}</span></h1>
<p><b>Proves:</b> {html.escape(res.proves)}</p>
<p>{res.duration_s / 60:.1f} min of plant time in {res.wall_s:.2f} s; file <code>{html.escape(str(res.path))}</code></p>
<h2>Timeline</h2>{_timeline_svg(res, limits or {})}
<h2>Expectations</h2><table><tr><th></th><th>expected</th><th>seen</th><th>where</th></tr>{exp_rows}</table>
<h2>Events</h2><table><tr><th>t (s)</th><th>kind</th><th>station</th><th>source</th><th>user</th><th>what</th></tr>{ev_rows}</table>
</body></html>"""
    page.write_text(body, encoding="utf-8")
    return page


def write_index(results: list[ScenarioResult], out_dir: Path) -> Path:
    rows = "".join(
        f"<tr><td class={'pass' if r.passed else 'fail'}>{'PASS' if r.passed else 'FAIL'}</td>"
        f"<td><a href='{html.escape(r.path.stem)}.html'>{html.escape(r.name)}</a></td><td>{html.escape(r.proves)}</td>"
        f"<td>{r.duration_s / 60:.1f} min</td><td>{r.wall_s:.2f} s</td></tr>"
        for r in results
    )
    ok = sum(r.passed for r in results)
    page = out_dir / "index.html"
    page.write_text(
        f"<!doctype html><html><head><meta charset=utf-8><title>plantctl scenarios</title><style>{_CSS}</style></head>"
        f"<body><h1>Scenarios: {ok} of {len(results)} pass</h1><table><tr><th></th><th>scenario</th><th>proves</th>"
        f"<th>plant time</th><th>wall</th></tr>{rows}</table></body></html>",
        encoding="utf-8",
    )
    return page


def _command_label(res: ScenarioResult, p: dict[str, Any]) -> str:
    """``HS-400=FAST_UNLOAD`` rather than ``HS-400=2``: enum commands by their state name."""
    tag, value = str(p.get("tag")), p.get("value")
    states = res.states.get(tag)
    if states and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(states):
        return f"{tag}={states[value]}"
    return f"{tag}={value}"


def _summary(p: dict[str, Any]) -> str:
    keys = ("interlock", "tag", "value", "to", "step_text", "message", "task", "answer", "why", "from", "first_member")
    parts = [f"{k}={p[k]}" for k in keys if k in p and p[k] not in (None, "")]
    return ", ".join(parts)[:300]
