"""What every bench shares: a figure with its target, statistics, CPU and memory, the machine.

A ``Figure`` is one line of the table: the value (the median of repeated runs), its
spread (lowest and highest run), the number of runs, the target and whether the value
meets it. ``measure_cpu`` reads a process's CPU time from /proc (or ``resource`` for this
process), so a figure can say how much of one core the controller used.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import socket
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Figure:
    group: str  # which bench
    name: str
    value: float | None  # None: not measured (see note)
    unit: str
    target: float | None = None
    better: str = "<="  # "<=" lower is better, ">=" higher is better
    spread: tuple[float, float] | None = None  # lowest and highest run
    runs: int = 1
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        return self.value <= self.target if self.better == "<=" else self.value >= self.target

    @property
    def mark(self) -> str:
        p = self.passed
        if self.value is None:
            return "n/a"
        return "-" if p is None else ("pass" if p else "MISS")

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["passed"] = self.passed
        return d


def figure(group: str, name: str, runs: Sequence[float], unit: str, target: float | None = None,
           better: str = "<=", note: str = "", **extra: Any) -> Figure:
    """A figure from the values of repeated runs: the median, with the lowest and highest."""
    vals = [float(v) for v in runs]
    if not vals:
        return Figure(group, name, None, unit, target, better, None, 0, note or "no data", extra)
    return Figure(group, name, statistics.median(vals), unit, target, better, (min(vals), max(vals)), len(vals),
                  note, extra)


def missing(group: str, name: str, unit: str, target: float | None, why: str, better: str = "<=") -> Figure:
    return Figure(group, name, None, unit, target, better, None, 0, why)


def percentile(data: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (the value below which p % of the samples lie)."""
    if not data:
        return float("nan")
    s = sorted(data)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def chunks(data: Sequence[float], n: int) -> list[list[float]]:
    """``data`` cut into ``n`` consecutive runs of (nearly) equal length."""
    size = max(1, len(data) // n)
    return [list(data[i * size:(i + 1) * size if i < n - 1 else len(data)]) for i in range(n) if data[i * size:]]


# -- CPU and memory -----------------------------------------------------------------------------
def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process so far (this one by default), all its threads."""
    if pid is None:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime + ru.ru_stime
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mb(pid: int | None = None) -> float:
    with open(f"/proc/{pid or 'self'}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def peak_rss_mb(pid: int | None = None) -> float:
    with open(f"/proc/{pid or 'self'}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def loadavg() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


# -- the machine ---------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": loadavg(),
    }
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        keep = ("Architecture", "Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket", "CPU MHz",
                "BogoMIPS", "L2 cache", "L3 cache", "Hypervisor vendor")
        info["lscpu"] = {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in out.splitlines())
                         if k.strip() in keep}
    with contextlib.suppress(OSError):
        info["mem_total_mb"] = round(int(open("/proc/meminfo").readline().split()[1]) / 1024)
    return info


# -- output --------------------------------------------------------------------------------------
def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit in ("points/s", "events/s", "tags", "items", "trips", "notif/s"):
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(figures: Sequence[Figure]) -> str:
    rows = [("bench", "figure", "value", "spread (runs)", "target", "mark")]
    for f in figures:
        spread = "-" if f.spread is None else f"{fmt(f.spread[0], f.unit)}..{fmt(f.spread[1], f.unit)} ({f.runs})"
        target = "-" if f.target is None else f"{f.better} {fmt(f.target, f.unit)} {f.unit}"
        rows.append((f.group, f.name, f"{fmt(f.value, f.unit)} {f.unit}", spread, target, f.mark))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for j, r in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) if i in (2, 4) else c.ljust(w)
                               for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip())
        if j == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def notes(figures: Sequence[Figure]) -> str:
    out = []
    for f in figures:
        if f.note:
            out.append(f"- {f.group} / {f.name}: {f.note}")
    return "\n".join(out)


def write_json(path: Path, figures: Sequence[Figure], meta: dict[str, Any]) -> None:
    path.write_text(json.dumps({"meta": meta, "figures": [f.as_dict() for f in figures]}, indent=2, default=str))


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    import logging

    root = logging.getLogger()
    old = root.level
    root.setLevel(logging.CRITICAL)
    for name in ("pymodbus", "asyncua", "plantctl", "sim_plc", "uvicorn"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        root.setLevel(old)


def markdown(figures: Sequence[Figure]) -> str:
    """The table as Markdown (docs/performance.md)."""
    out = ["| bench | figure | value | spread (runs) | target | mark |", "|---|---|---:|---:|---:|---|"]
    for f in figures:
        spread = "-" if f.spread is None else f"{fmt(f.spread[0], f.unit)}..{fmt(f.spread[1], f.unit)} ({f.runs})"
        target = "-" if f.target is None else f"{f.better} {fmt(f.target, f.unit)} {f.unit}"
        mark = {"pass": "pass", "MISS": "**MISS**"}.get(f.mark, f.mark)
        out.append(f"| {f.group} | {f.name.strip()} | {fmt(f.value, f.unit)} {f.unit} | {spread} | {target} | {mark} |")
    return "\n".join(out)
