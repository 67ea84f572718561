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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plantctl.historian import InfluxHistorian, Point, SQLiteHistorian  # noqa: E402
from plantctl.historian.influx import InfluxSender, SendError  # noqa: E402

T0 = 1_767_225_600.0


def scans(n_points: int, signals: int) -> list[list[Point]]:
    tags = [f"SIG-{i:04d}" for i in range(signals)]
    return [[Point("bench", tag, T0 + k * 0.1, k * 0.001 + i, 2) for i, tag in enumerate(tags)]
            for k in range(n_points // signals)]


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:>12,.0f} points/s  ({n:,} points in {seconds:.2f} s)"


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--signals", type=int, default=200)
    args = ap.parse_args()
    logging.getLogger("plantctl.historian").setLevel(logging.ERROR)  # the simulated outage is expected
    data = scans(args.points, args.signals)
    n = sum(len(b) for b in data)
    flat = [p for b in data for p in b]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print(f"historian bench: {n:,} points, {args.signals} signals per scan")

        h = SQLiteHistorian(tmp / "per-scan.db")
        t = time.perf_counter()
        for b in data:
            h.record(b)
        print(f"embedded ingest, one record() per scan ({args.signals} points):  {rate(n, time.perf_counter() - t)}")
        h.close()

        h = SQLiteHistorian(tmp / "batched.db")
        t = time.perf_counter()
        for i in range(0, n, 5000):
            h.record(flat[i:i + 5000])
        print(f"embedded ingest, 5000-point batches:                {rate(n, time.perf_counter() - t)}")
        t = time.perf_counter()
        got = h.query("bench", "SIG-0007", T0, T0 + 1e6, max_points=1000)
        print(f"embedded trend read, {n // args.signals:,} samples -> {len(got)} points:    "
              f"{(time.perf_counter() - t) * 1000:.1f} ms")
        h.close()

        sink = NullSink(down=True)
        r = InfluxHistorian("http://null", org="o", bucket="b", spool_path=tmp / "spool.db", sender=sink, start=False)
        t = time.perf_counter()
        for b in data:
            r.record(b)
        print(f"spooling (line protocol + disk spool), server down: {rate(n, time.perf_counter() - t)}")
        r.close()
        spool_copy = tmp / "spool-copy.db"
        shutil.copy(tmp / "spool.db", spool_copy)

        sink = NullSink()
        r = InfluxHistorian("http://null", org="o", bucket="b", spool_path=tmp / "spool.db", sender=sink, start=False)
        t = time.perf_counter()
        sent = r.forward()
        print(f"spool back-fill to a null sink:                     {rate(sent, time.perf_counter() - t)}")
        r.close()

        with victoria_metrics(tmp) as url:
            if url is None:
                print("spool back-fill to victoria-metrics:                (not installed: apt-get install victoria-metrics)")
            else:
                r = InfluxHistorian(url, org="o", bucket="b", spool_path=spool_copy,
                                    sender=InfluxSender(url, token="t", org="o", bucket="b"), start=False)
                t = time.perf_counter()
                sent = r.forward()
                print(f"spool back-fill to victoria-metrics (HTTP):         {rate(sent, time.perf_counter() - t)}")
                r.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
