"""Processes and helpers of the reliability tests (the restart harness is tests/e2e/harness.py).

    python tests/reliability/harness_stack.py sim --speed S --state STATE.json [--opcua --cert-dir D]
    python tests/reliability/harness_stack.py stack --site SITE.yaml --users USERS.yaml --state STATE.json

``sim`` runs sim_plc (Modbus servers, optionally the secured OPC-UA servers, and the HTTP fault
API) on a ScaledClock and writes what it bound to STATE.json. The OPC-UA password comes from
$PLANTCTL_SIM_OPCUA_PASSWORD (the test chooses it).

``stack`` is the demo in one process (simulator + controller + HMI, real time): the simulator on
the site's ports, the controller from ``build_controller``, the HMI on a free port. It writes the
HMI's URL to STATE.json and then, every 0.2 s, the controller's scan figures (scans, overruns,
the longest scan, the intervals between scan starts) with ``time.monotonic()``, which is one clock
for every process on the machine, so a test can count the scans in a window of its own.

The module is also imported by the tests (tests/reliability is on sys.path under pytest) for the
small helpers at the bottom: free ports, deadline waits, reading a journal that is being written.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve()


# -- the processes ---------------------------------------------------------------------------------
def _stop_on_signals(stop: asyncio.Event) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)


def _atomic_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


async def run_sim(args: argparse.Namespace) -> None:
    from plantctl.clock import ScaledClock
    from sim_plc.runner import SimConfig, SimRunner

    cfg = SimConfig(opcua=args.opcua, http_port=0, seed=args.seed,
                    cert_dir=Path(args.cert_dir) if args.cert_dir else Path(args.state).parent / "sim-pki")
    async with SimRunner(cfg, clock=ScaledClock(args.speed)) as sim:
        _atomic_json(Path(args.state), {"http": sim.http_port, "endpoints": sim.endpoints(),
                                        "cert_dir": str(cfg.cert_dir), "pid": os.getpid()})
        stop = asyncio.Event()
        _stop_on_signals(stop)
        await stop.wait()


async def run_stack(args: argparse.Namespace) -> None:
    """The demo's stack (hmi.demo.run_demo) with the controller's scan figures published."""
    from urllib.parse import urlparse

    from hmi.app import create_app
    from hmi.server import HmiServer
    from plantctl.auth import UserStore
    from plantctl.clock import RealClock
    from plantctl.runtime_cli import build_controller
    from plantctl.site import load_site
    from sim_plc.runner import SimConfig, SimRunner

    site = load_site(args.site)
    modbus = {n: int(s.plc.options["port"]) for n, s in site.stations.items() if s.plc.protocol == "modbus"}
    opcua = {n: int(urlparse(s.plc.options["url"]).port or 4840) for n, s in site.stations.items()
             if s.plc.protocol == "opcua"}
    cfg = SimConfig(modbus_ports=modbus, opcua_ports=opcua, http_port=0, opcua=bool(opcua),
                    cert_dir=Path(args.state).parent / "sim-pki")
    stop = asyncio.Event()
    _stop_on_signals(stop)
    async with SimRunner(cfg) as sim:
        clock = RealClock()
        ctrl = build_controller(site, clock)
        starts: deque[float] = deque(maxlen=20_000)
        real_scan = ctrl.scan_once

        async def timed_scan(now: float, **kw: Any) -> Any:
            starts.append(time.monotonic())
            return await real_scan(now, **kw)

        ctrl.scan_once = timed_scan  # type: ignore[method-assign]
        app = create_app(ctrl, UserStore.load(args.users), sim_api_url=sim.http_url)
        async with ctrl:
            server = HmiServer(app, "127.0.0.1", 0)
            await server.start()
            try:
                _atomic_json(Path(args.state), {"hmi": server.url, "sim": sim.http_url, "pid": os.getpid(),
                                                "period_s": ctrl.period})
                while not stop.is_set():
                    s = ctrl.stats
                    _atomic_json(Path(args.stats), {
                        "t": time.monotonic(), "scans": s.scans, "overruns": s.overruns, "max_ms": s.max_ms,
                        "p99_ms": s.percentile(99), "starts": list(starts)[-2000:],
                        "links": dict(ctrl.engine.link_up), "ws": len(app.state.hmi.live_conns),
                    })
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.2)
            finally:
                await server.stop()


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pymodbus").setLevel(logging.ERROR)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="what", required=True)
    s = sub.add_parser("sim")
    s.add_argument("--speed", type=float, default=1.0)
    s.add_argument("--state", required=True)
    s.add_argument("--opcua", action="store_true")
    s.add_argument("--cert-dir", default=None)
    s.add_argument("--seed", type=int, default=1)
    k = sub.add_parser("stack")
    k.add_argument("--site", required=True)
    k.add_argument("--users", required=True)
    k.add_argument("--state", required=True)
    k.add_argument("--stats", required=True)
    args = p.parse_args()
    asyncio.run(run_sim(args) if args.what == "sim" else run_stack(args))


# -- helpers for the tests ---------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **extra}
    env.pop("PYTEST_CURRENT_TEST", None)
    return env


def spawn(argv: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    """A child process in its own session (so a kill reaches only it), output to ``log``."""
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, *argv], env=child_env(**env), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_process(p: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def wait_until(cond: Callable[[], Any], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``cond`` until it returns something true; fail after ``timeout`` wall seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(every)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class BoundedLog(logging.Handler):
    """The last ``keep`` log lines (first line of each, WARNING and up) and a count per level."""

    def __init__(self, keep: int = 500) -> None:
        super().__init__(logging.WARNING)
        self.lines: deque[str] = deque(maxlen=keep)
        self.counts: dict[str, int] = {}
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] = self.counts.get(record.levelname, 0) + 1
        try:
            self.lines.append(self.format(record).splitlines()[0][:300])
        except Exception:  # noqa: BLE001 - a log line must never fail the test
            self.lines.append(f"{record.levelname} {record.name}: <unformattable>")


@contextlib.contextmanager
def bounded_logging(keep: int = 500) -> Iterator[BoundedLog]:
    """Swap pytest's log capture for a bounded handler, inside a test's body.

    pytest keeps every record of a test with its traceback, and so every frame and object the
    traceback holds: a test that measures memory would measure pytest. pytest adds its handlers
    again at the start of each phase, so this must run in the test itself, not in a fixture."""
    from _pytest.logging import LogCaptureHandler

    root = logging.getLogger()
    theirs = [h for h in root.handlers if isinstance(h, LogCaptureHandler)]
    for h in theirs:
        root.removeHandler(h)
    mine = BoundedLog(keep)
    root.addHandler(mine)
    try:
        yield mine
    except BaseException:
        print("\n".join(["last log lines:", *mine.lines]))
        raise
    finally:
        root.removeHandler(mine)
        for h in theirs:
            root.addHandler(h)


def journal_records(db: Path, since_seq: int = 0) -> list[dict[str, Any]]:
    """The records of a journal another process may be writing, read through the read-only export
    (never a second writer: ``Journal()`` would take the write lock). Each is a dict with seq, kind,
    t_plant, station, source, payload, prev_hash, hash. [] while the file cannot be read."""
    import io

    from plantctl.journal import JournalError, export

    if not db.exists():
        return []
    out = io.StringIO()
    try:
        export(db, "jsonl", out, since_seq=since_seq)
    except (JournalError, OSError):
        return []
    return [json.loads(line) for line in out.getvalue().splitlines() if line]


if __name__ == "__main__":
    main()
