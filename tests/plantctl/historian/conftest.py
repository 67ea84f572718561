"""A real InfluxDB-compatible server for the historian tests: Debian's victoria-metrics.

Started per test on a free port with a temporary data folder, under ``timeout``
(so it dies even if the test run is killed) in its own process group, and killed
by the fixture whatever happens. Tests fail (never skip) when it is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

VM_BINARY = "/usr/bin/victoria-metrics"
VM_LIFETIME_S = 900  # hard limit on any one server process


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class VictoriaMetrics:
    def __init__(self, data_dir: Path, log_path: Path) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 30.0) -> None:
        assert self.proc is None
        binary = shutil.which("victoria-metrics") or VM_BINARY
        if not os.path.exists(binary):
            pytest.fail("victoria-metrics is not installed: apt-get install victoria-metrics (Debian package "
                        "'victoria-metrics'; `make deps-debian` installs it)")
        cmd = ["timeout", "-s", "KILL", str(VM_LIFETIME_S), binary,
               f"-httpListenAddr=127.0.0.1:{self.port}", f"-storageDataPath={self.data_dir}",
               "-retentionPeriod=100y",  # the virtual clock's time stamps lie in 2026, whatever today is
               "-search.latencyOffset=0s", "-search.disableCache", "-loggerLevel=ERROR"]
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"victoria-metrics exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if r.status == 200:
                        return
            time.sleep(0.05)
        raise AssertionError(f"victoria-metrics did not answer within {timeout_s} s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)

    def get(self, path: str, **params: str) -> bytes:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        with urllib.request.urlopen(url, timeout=30) as r:
            body: bytes = r.read()
            return body

    def export(self, match: str) -> list[dict[str, Any]]:
        """Every series matching ``match`` (a series selector), via /api/v1/export (JSON lines)."""
        self.get("/internal/force_flush")
        body = self.get("/api/v1/export", **{"match[]": match})
        return [json.loads(line) for line in body.decode().splitlines() if line.strip()]

    def wait_for(self, match: str, points: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Poll until ``points`` samples (summed over the series) are visible; returns the export."""
        deadline = time.monotonic() + timeout_s
        got: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            got = self.export(match)
            if sum(len(s["values"]) for s in got) >= points:
                return got
            time.sleep(0.2)
        n = sum(len(s["values"]) for s in got)
        raise AssertionError(f"victoria-metrics shows {n} of {points} samples after {timeout_s} s")


@pytest.fixture
def victoria_metrics(tmp_path: Path) -> Iterator[VictoriaMetrics]:
    vm = VictoriaMetrics(tmp_path / "vm-data", tmp_path / "vm.log")
    vm.start()
    try:
        yield vm
    finally:
        vm.stop()
