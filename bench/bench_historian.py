"""Historian figures: embedded ingest and store-and-forward back-fill, in points per second.

    .venv/bin/python bench/bench_historian.py [--points 1000000] [--signals 200]

Prints (not a test):
* embedded ingest (SQLite) with one record() per scan of ``--signals`` points, and with 5000-point batches;
* spooling (encode to line protocol + append to the disk spool) with the server down;
* back-fill of that spool: to a null sink (the spool's own speed) and, when Debian's
  victoria-metrics is installed, to a real server over HTTP with influxdb-client.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plantctl.historian import InfluxHistorian, Point, SQLiteHistorian  # noqa: E402
from plantctl.historian.influx import InfluxSender, SendError  # noqa: E402

T0 = 1_767_225_600.0


def scans(n_points: int, signals: int) -> list[list[Point]]:
    tags = [f"SIG-{i:04d}" for i in range(signals)]
    return [[Point("bench", tag, T0 + k * 0.1, k * 0.001 + i, 2) for i, tag in enumerate(tags)]
            for k in range(n_points // signals)]


class NullSink:
    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.points = 0

    def send(self, lines: str) -> None:
        if self.down:
            raise SendError("down")
        self.points += lines.count("\n") + 1

    def close(self) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def victoria_metrics(tmp: Path):  # type: ignore[no-untyped-def]
    binary = shutil.which("victoria-metrics")
    if binary is None:
        yield None
        return
    port = free_port()
    proc = subprocess.Popen(["timeout", "-s", "KILL", "600", binary, f"-httpListenAddr=127.0.0.1:{port}",
                             f"-storageDataPath={tmp / 'vm'}", "-retentionPeriod=100y", "-loggerLevel=ERROR"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url + "/health", timeout=1):
                    break
            time.sleep(0.05)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def measure(n_points: int, signals: int, batch: int = 10_000) -> dict[str, float]:
    """One pass of every figure; points per second (the trend read in ms)."""
    logging.getLogger("plantctl.historian").setLevel(logging.ERROR)  # the simulated outage is expected
    data = scans(n_points, signals)
    n = sum(len(b) for b in data)
    flat = [p for b in data for p in b]
    out: dict[str, float] = {"points": n}
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent.parent) as d:  # on the repo's disk
        tmp = Path(d)
        h = SQLiteHistorian(tmp / "per-scan.db")
        t = time.perf_counter()
        for b in data:
            h.record(b)
        out["ingest_per_scan"] = n / (time.perf_counter() - t)
        h.close()

        h = SQLiteHistorian(tmp / "batched.db")
        t = time.perf_counter()
        for i in range(0, n, batch):
            h.record(flat[i:i + batch])
        out["ingest_batched"] = n / (time.perf_counter() - t)
        t = time.perf_counter()
        h.query("bench", "SIG-0007", T0, T0 + 1e6, max_points=1000)
        out["trend_read_ms"] = (time.perf_counter() - t) * 1000
        h.close()

        sink = NullSink(down=True)
        r = InfluxHistorian("http://null", org="o", bucket="b", spool_path=tmp / "spool.db", sender=sink, start=False)
        t = time.perf_counter()
        for b in data:
            r.record(b)
        out["spooling"] = n / (time.perf_counter() - t)
        r.close()
        spool_copy = tmp / "spool-copy.db"
        shutil.copy(tmp / "spool.db", spool_copy)

        sink = NullSink()
        r = InfluxHistorian("http://null", org="o", bucket="b", spool_path=tmp / "spool.db", sender=sink, start=False)
        t = time.perf_counter()
        sent = r.forward()
        out["backfill_null"] = sent / (time.perf_counter() - t)
        r.close()

        with victoria_metrics(tmp) as url:
            if url is not None:
                r = InfluxHistorian(url, org="o", bucket="b", spool_path=spool_copy,
                                    sender=InfluxSender(url, token="t", org="o", bucket="b"), start=False)
                t = time.perf_counter()
                sent = r.forward()
                out["backfill_vm"] = sent / (time.perf_counter() - t)
                out["backfill_vm_points"] = sent
                r.close()
    return out


def run(runs: int = 3, points: int = 500_000, signals: int = 200) -> list[Any]:
    """The figures of ``make bench`` (bench/__main__.py): the median of ``runs`` passes."""
    from bench.common import figure

    passes = [measure(points, signals) for _ in range(runs)]
    g = "historian"
    vm = [p["backfill_vm"] for p in passes if "backfill_vm" in p]
    figs = [
        figure(g, "embedded ingest (SQLite), one record() per period of 10,000 points",
               [p["ingest_batched"] for p in passes], "points/s", 200_000, ">=",
               note=f"{points:,} points of {signals} signals a pass; the controller records every tag once a "
                    "historian period in one record() call"),
        figure(g, f"embedded ingest, one record() per scan of {signals} points", [p["ingest_per_scan"] for p in passes],
               "points/s"),
        figure(g, "spooling with the server down (line protocol + disk spool)", [p["spooling"] for p in passes],
               "points/s"),
    ]
    if vm:
        figs.append(figure(g, "spool back-fill to victoria-metrics (InfluxDB v2 API, HTTP)", vm, "points/s", 50_000,
                           ">=", note="Debian victoria-metrics on loopback, influxdb-client writes"))
    else:
        from bench.common import missing

        figs.append(missing(g, "spool back-fill to victoria-metrics (InfluxDB v2 API, HTTP)", "points/s", 50_000,
                            "victoria-metrics is not installed (apt-get install victoria-metrics)", ">="))
    return figs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--signals", type=int, default=200)
    args = ap.parse_args()
    m = measure(args.points, args.signals, batch=5000)
    n = int(m["points"])
    print(f"historian bench: {n:,} points, {args.signals} signals per scan")
    print(f"embedded ingest, one record() per scan ({args.signals} points):  {m['ingest_per_scan']:>12,.0f} points/s")
    print(f"embedded ingest, 5000-point batches:                {m['ingest_batched']:>12,.0f} points/s")
    print(f"embedded trend read, {n // args.signals:,} samples -> 1000 points:    {m['trend_read_ms']:.1f} ms")
    print(f"spooling (line protocol + disk spool), server down: {m['spooling']:>12,.0f} points/s")
    print(f"spool back-fill to a null sink:                     {m['backfill_null']:>12,.0f} points/s")
    if "backfill_vm" in m:
        print(f"spool back-fill to victoria-metrics (HTTP):         {m['backfill_vm']:>12,.0f} points/s")
    else:
        print("spool back-fill to victoria-metrics:                (not installed: apt-get install victoria-metrics)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
