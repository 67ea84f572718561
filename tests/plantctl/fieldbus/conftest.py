"""Shared fixtures of the driver tests: I/O lists, a callback recorder, leak checks.

Helpers reach the test modules as fixtures (``make_recorder``, ``tls_cert``): tests/
is not a package, so they cannot import this module. The drivers run on a RealClock (they wait on real sockets); the plant behind the
sim_plc servers runs on its own VirtualClock and moves only when a test advances
it, so the values a driver reads are known exactly. Nothing sleeps for an answer:
``Recorder.until`` waits on each callback, with a deadline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plantctl.iolist import IOList, load_io_list
from plantctl.paths import io_dir
from plantctl.tags import Quality, Reading, Reason

GAS = "gas_station"
PUMP = "pump_station"


@pytest.fixture(scope="session")
def iolists() -> dict[str, IOList]:
    return {name: load_io_list(io_dir() / f"{name}.yaml") for name in (GAS, PUMP)}


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running: drivers and servers must stop completely."""
    before = set(asyncio.all_tasks())
    yield
    for _ in range(20):  # let closing callbacks run their last turn
        await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()]
    assert not leaked, f"leaked tasks: {leaked}"


@dataclass
class LinkEvent:
    up: bool
    t: float
    detail: str


@dataclass
class Recorder:
    """Collects what a driver reports and lets a test wait for a condition on it."""

    latest: dict[str, Reading] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    batches: list[list[tuple[str, Reading]]] = field(default_factory=list)
    links: list[LinkEvent] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_readings(self, readings: list[tuple[str, Reading]]) -> None:
        self.batches.append(list(readings))
        for tag, r in readings:
            self.latest[tag] = r
            self.counts[tag] = self.counts.get(tag, 0) + 1
        self._changed.set()

    def on_link(self, up: bool, t: float, detail: str) -> None:
        self.links.append(LinkEvent(up, t, detail))
        self._changed.set()

    async def until(self, pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
        """Wait until ``pred()`` holds; fail after ``timeout`` seconds. Re-checked on every
        callback, and every 20 ms for conditions that change without one (driver stats)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not pred():
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; links={self.links}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 0.02))
            except TimeoutError:
                pass

    # -- predicates -------------------------------------------------------------------
    def all_good(self, iol: IOList) -> bool:
        return all(s.tag in self.latest and self.latest[s.tag].quality is Quality.GOOD for s in iol.signals)

    def all_reported(self, iol: IOList) -> bool:
        return all(s.tag in self.latest for s in iol.signals)

    def all_bad(self, iol: IOList, reason: Reason) -> bool:
        return all(
            s.tag in self.latest and self.latest[s.tag].quality is Quality.BAD and self.latest[s.tag].reason is reason
            for s in iol.signals
        )

    def ups(self) -> list[bool]:
        return [e.up for e in self.links]


@pytest.fixture
def make_recorder() -> Callable[[], Recorder]:
    """A factory of Recorders (test modules take helpers as fixtures: tests/ is not a package)."""
    return Recorder


@pytest.fixture
def tls_cert(tmp_path: Path) -> tuple[Path, Path]:
    return make_self_signed(tmp_path / "tls")


def make_self_signed(folder: Path, cn: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throw-away TLS server certificate for 127.0.0.1 (PEM cert, PEM key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path
