"""Security of the PLC links and of the journal, through the real start-up paths.

OPC-UA, with the certificate ``plantctl certs init`` makes (the controller in this process from
``build_controller``, the simulator's secured server beside it):
- the site's default is Basic256Sha256 with SignAndEncrypt, and that is what the session uses;
- a trusted ``certs init`` certificate connects, and the driver keeps it (it does not replace a
  certificate the PLC trusts); a ``certs init`` certificate nobody trusted is refused;
- with the PLC's certificate pinned (``server_cert``), an impostor server (another certificate on
  the same URL) is refused too.

Modbus/TCP Security (TLS), configured in the site file (``tls_cert``/``tls_key``/``tls_ca``, through
``default_driver_factory``) against the simulator's TLS server requiring client certificates: the
right pair reads; plain Modbus, a client certificate the PLC does not know, and a PLC certificate the
controller does not know are all refused. (tests/plantctl/fieldbus/test_modbus.py::test_tls_read and
tests/sim_plc/test_servers.py::test_modbus_tls_with_client_certificates test the two ends alone.)

The journal's hash chain, end to end through ``plantctl run`` (a process): a journal broken while
the controller was stopped raises the top-priority ``journal:chain`` alarm at start-up and is never
repaired: with its guards removed it is kept byte for byte and the controller journals on in a new
file; with a row edited and the guards put back it stays as it is and verify still names the record.
(The unit test is tests/plantctl/test_runtime.py::test_broken_chain_raises_a_top_priority_alarm_at_start.)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import ipaddress
import signal
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import harness_stack as hs
import pytest
from asyncua import ua
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from plantctl.alarms import Priority
from plantctl.cli import main
from plantctl.clock import RealClock
from plantctl.fieldbus.opcua import OpcUaSecurity
from plantctl.journal import Event, EventKind, Journal, verify
from plantctl.paths import io_dir
from plantctl.runtime import Controller
from plantctl.runtime_cli import build_controller
from plantctl.site import load_site
from plantctl.tags import Quality
from sim_plc.modbus_server import server_ssl_context
from sim_plc.opcua_server import Pki
from sim_plc.runner import SimConfig, SimRunner

PASSWORD = "security-opcua-secret"


async def _until(cond: Any, wall_s: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wall_s
    while not cond():
        assert loop.time() < deadline, f"timed out after {wall_s} s waiting for {what}"
        await asyncio.sleep(0.02)


def _gas_site(tmp: Path, name: str, plc: str) -> Path:
    site = tmp / f"{name}.yaml"
    site.write_text(f"""site: {name}
journal: {tmp / f'{name}-journal.db'}
historian: {{backend: sqlite, path: {tmp / f'{name}-history.db'}}}
stations:
  gas_station: {{io_list: {io_dir() / 'gas_station.yaml'}, plc: {plc}}}
procedures: []
""")
    return site


async def _controllers(sites: list[Path]) -> list[Controller]:
    out = []
    for site in sites:
        ctrl = build_controller(load_site(site), RealClock())
        await ctrl.start()
        out.append(ctrl)
    return out


# -- OPC-UA ------------------------------------------------------------------------------------------------
@pytest.mark.timeout(120)
async def test_opcua_certs_init_sign_and_encrypt_untrusted_and_impostor_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLANTCTL_SEC_PASSWORD", PASSWORD)
    real, fake = tmp_path / "plc-pki", tmp_path / "impostor-pki"
    # the operator's steps: make the controller's certificate, trust it on the PLC (here: both servers)
    assert main(["certs", "init", "--dir", str(tmp_path / "ctrl-pki"), "--trust-dir", str(Pki(real).trusted)]) == 0
    out = capsys.readouterr().out
    assert "created" in out and "plantctl-client-cert.der" in out and "SHA-1" in out
    assert main(["certs", "init", "--dir", str(tmp_path / "ctrl-pki"), "--trust-dir", str(Pki(fake).trusted)]) == 0
    assert "kept" in capsys.readouterr().out  # idempotent: the certificate the PLC trusts stays
    assert main(["certs", "init", "--dir", str(tmp_path / "stranger-pki")]) == 0  # trusted by nobody
    capsys.readouterr()
    cert = tmp_path / "ctrl-pki" / "plantctl-client-cert.der"
    issued = hashlib.sha256(cert.read_bytes()).hexdigest()
    assert (tmp_path / "ctrl-pki" / "plantctl-client-key.pem").stat().st_mode & 0o077 == 0

    sims = []
    try:
        for pki in (real, fake):
            sim = SimRunner(SimConfig(stations=("gas_station",), http_port=None, cert_dir=pki, opcua_password=PASSWORD))
            await sim.start()
            sims.append(sim)
        url = sims[0].endpoints()["gas_station"]["opcua_url"]
        impostor_url = sims[1].endpoints()["gas_station"]["opcua_url"]
        pinned = Pki(real).server_cert("gas_station")

        def plc(cert_dir: Path, at: str, pin: Path | None = None) -> str:
            extra = f", server_cert: '{pin}'" if pin else ""
            # no `security:` key: the site's default applies
            return (f"{{protocol: opcua, url: '{at}', user: plantctl, password_env: PLANTCTL_SEC_PASSWORD, "
                    f"cert_dir: '{cert_dir}', timeout_s: 1.0{extra}}}")

        good, stranger, impostor = await _controllers([
            _gas_site(tmp_path, "good", plc(tmp_path / "ctrl-pki", url, pinned)),
            _gas_site(tmp_path, "stranger", plc(tmp_path / "stranger-pki", url)),
            _gas_site(tmp_path, "impostor", plc(tmp_path / "ctrl-pki", impostor_url, pinned)),
        ])
        try:
            gdrv: Any = good.drivers["gas_station"]
            assert gdrv.security is OpcUaSecurity.BASIC256SHA256_SIGN_AND_ENCRYPT
            await _until(lambda: good.engine.link_up.get("gas_station"), 30, "the trusted controller's link")
            policy = gdrv._client.security_policy
            assert policy.URI.endswith("#Basic256Sha256")
            assert policy.Mode == ua.MessageSecurityMode.SignAndEncrypt
            snap = good.table.snapshot(good.clock.now())
            assert snap["PT-101"].quality is Quality.GOOD
            assert hashlib.sha256(cert.read_bytes()).hexdigest() == issued  # the driver kept it
            # the other two never get a session
            await _until(lambda: stranger.drivers["gas_station"].stats.failures >= 2  # type: ignore[attr-defined]
                         and impostor.drivers["gas_station"].stats.failures >= 1, 30,  # type: ignore[attr-defined]
                         "refused attempts")
            assert not stranger.engine.link_up.get("gas_station") and not impostor.engine.link_up.get("gas_station")
            bad_snap = stranger.table.snapshot(stranger.clock.now())
            assert bad_snap["PT-101"].quality is Quality.BAD
        finally:
            for c in (good, stranger, impostor):
                await c.stop()
    finally:
        for sim in sims:
            await sim.stop()


# -- Modbus TLS ----------------------------------------------------------------------------------------------
def _self_signed(folder: Path, name: str) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    c, k = folder / f"{name}.pem", folder / f"{name}-key.pem"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return c, k


@pytest.mark.timeout(60)
async def test_modbus_tls_from_the_site_file_mutual_authentication(tmp_path: Path) -> None:
    plc_cert, plc_key = _self_signed(tmp_path / "tls", "plc")
    ctrl_cert, ctrl_key = _self_signed(tmp_path / "tls", "controller")
    rogue_cert, rogue_key = _self_signed(tmp_path / "tls", "rogue")
    sim = SimRunner(SimConfig(stations=("gas_station",), opcua=False, http_port=None,
                              modbus_ssl=server_ssl_context(plc_cert, plc_key, cafile=ctrl_cert)))
    await sim.start()
    try:
        port = sim.endpoints()["gas_station"]["modbus_port"]
        base = f"protocol: modbus, host: 127.0.0.1, port: {port}, timeout_s: 0.5, period_ms: 100"
        ctrls = await _controllers([
            _gas_site(tmp_path, "tls", f"{{{base}, tls_cert: '{ctrl_cert}', tls_key: '{ctrl_key}', tls_ca: '{plc_cert}'}}"),
            _gas_site(tmp_path, "plain", f"{{{base}}}"),
            _gas_site(tmp_path, "rogue", f"{{{base}, tls_cert: '{rogue_cert}', tls_key: '{rogue_key}', tls_ca: '{plc_cert}'}}"),
            # the controller must know the PLC: a CA that did not sign the PLC's certificate is refused
            _gas_site(tmp_path, "mitm", f"{{{base}, tls_cert: '{ctrl_cert}', tls_key: '{ctrl_key}', tls_ca: '{rogue_cert}'}}"),
        ])
        try:
            tls = ctrls[0]
            await _until(lambda: tls.engine.link_up.get("gas_station"), 20, "the TLS link up")
            await _until(lambda: tls.table.snapshot(tls.clock.now())["PT-101"].quality is Quality.GOOD, 10, "PT-101")
            await _until(lambda: all(c.drivers["gas_station"].stats.failures >= 2  # type: ignore[attr-defined]
                                     for c in ctrls[1:]), 20, "refused attempts")
            assert not any(c.engine.link_up.get("gas_station") for c in ctrls[1:])
        finally:
            for c in ctrls:
                await c.stop()
    finally:
        await sim.stop()


# -- the journal's chain through `plantctl run` --------------------------------------------------------------
def _run(site: Path, log: Path) -> subprocess.Popen[bytes]:
    return hs.spawn(["-m", "plantctl", "run", "--site", str(site), "--status-every", "0.3"], log)


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("tamper", ["guards_removed", "row_edited_guards_restored"])
def test_broken_chain_alarms_at_plantctl_run_start_and_is_never_repaired(tmp_path: Path, tamper: str) -> None:
    db = tmp_path / "journal.db"
    site = tmp_path / "site.yaml"
    site.write_text(f"""site: chain
journal: {db}
historian: {{backend: sqlite, path: {tmp_path / 'history.db'}}}
stations:
  gas_station:
    io_list: {io_dir() / 'gas_station.yaml'}
    plc: {{protocol: modbus, host: 127.0.0.1, port: {hs.free_port()}, timeout_s: 0.2, period_ms: 100}}
procedures: []
""")
    # the journal of earlier runs: more records than the writer re-checks on open (64)
    with Journal(db) as j:
        j.append_many([Event(EventKind.SYSTEM, float(i), 1.8e9 + i, "", "earlier run", "", "", {"n": i})
                       for i in range(100)])
    # someone with the file edits record 5, going around the append-only triggers
    con = sqlite3.connect(db)
    triggers = con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    for name, _ in triggers:
        con.execute(f"DROP TRIGGER {name}")
    con.execute("UPDATE events SET payload = '{\"n\":500}' WHERE seq = 5")
    if tamper == "row_edited_guards_restored":
        for _, sql in triggers:
            con.execute(sql)
    con.commit()
    con.close()
    before = _digest(db)

    proc = _run(site, tmp_path / "run.log")
    try:
        def chain_alarm() -> Any:
            for path in sorted(tmp_path.glob("journal*.db")):
                for r in hs.journal_records(path):
                    p = r["payload"]
                    if r["kind"] == "ALARM" and p.get("id") == "journal:chain" and p.get("condition"):
                        return path, p
            return None

        where, alarm = hs.wait_until(chain_alarm, 60, "the journal:chain alarm journaled")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0, (tmp_path / "run.log").read_text()[-2000:]
    assert alarm["priority"] == int(Priority.CRITICAL)
    assert "record 5" in alarm["message"] or tamper == "guards_removed"
    log = (tmp_path / "run.log").read_text()
    if tamper == "guards_removed":
        # kept exactly as found, for the investigation; the controller journals on in a new file
        assert _digest(db) == before
        assert where != db and where.name.startswith("journal.after-broken-")
        assert "damaged" in log
        assert verify(where).ok
        assert any("trigger events_no_update is missing" in p for p in verify(db).problems)
    else:
        # the same file, appended to after the break, the broken record untouched: still named
        assert where == db
        res = verify(db)
        assert not res.ok and any(p.startswith("record 5:") for p in res.problems), res.problems
        assert res.records > 100
        rows = {r["seq"]: r for r in hs.journal_records(db)}
        assert rows[5]["payload"] == {"n": 500}
    system = [r for r in hs.journal_records(where) if r["kind"] == "SYSTEM" and r["source"] == "journal"]
    assert system and system[0]["payload"]["what"] == "journal chain broken"
    print(f"\nRELIABILITY journal-chain {tamper}: alarm '{alarm['message'][:120]}' in {where.name}")


def test_certs_cli_refuses_an_unwritable_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["certs", "init", "--dir", str(blocker / "pki")]) == 2
    assert "cannot write" in capsys.readouterr().err
