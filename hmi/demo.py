"""The demo: simulator, controller and HMI in one process (``plantctl demo``).

What ``run_demo`` does, in order:

1. loads ``sites/demo.yaml``; procedures the site names but ``sequences/`` does
   not have yet are left out with a warning (the interlocks still trip);
2. starts ``sim_plc``'s ``SimRunner`` on the site's PLC ports (Modbus for the
   gas station, OPC-UA secured with Basic256Sha256 for the pump station) plus
   its fault-injection HTTP API on a free port, all on 127.0.0.1;
3. gives the controller the OPC-UA client identity the simulator trusts: the
   simulator's PKI (``var/demo/pki/sim``) holds a ready-trusted client
   certificate; it is copied into the station's ``cert_dir`` under the names
   the driver looks for (``plantctl-client-cert.der`` / ``-key.pem``), and the
   simulator's OPC-UA password goes into the environment variable the site
   names (``PLANTCTL_OPCUA_PASSWORD``) unless it is already set;
4. creates the users file ``var/demo/users.yaml`` when missing, one user per
   role with a random password, and prints the logins once (they are never
   shown again: ``plantctl user passwd`` resets one);
5. runs the controller (``plantctl.runtime_cli.build_controller``) and serves
   the HMI on http://127.0.0.1:8080 until Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import secrets
import shutil
import signal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from plantctl.auth import UserStore, parse_roles
from plantctl.clock import RealClock
from plantctl.paths import sites_dir
from plantctl.site import Site, load_site

from .app import create_app
from .server import HmiServer

log = logging.getLogger("hmi.demo")

DEMO_USERS = (
    ("operator1", "operator"),
    ("operator2", "operator"),
    ("supervisor", "supervisor"),
    ("engineer", "engineer"),
    ("admin", "admin"),
    ("viewer", "viewer"),
)


def _known_procedures(site: Site) -> tuple[Site, list[str]]:
    try:
        from plantctl.procedure_cli import load_definitions

        defs = load_definitions("sequences")
    except ImportError:
        defs = {}
    missing = [p for p in site.procedures if p not in defs]
    if missing:
        site = dataclasses.replace(site, procedures=[p for p in site.procedures if p in defs])
    return site, missing


def ensure_users(path: Path) -> list[tuple[str, str, str]]:
    """Create the demo users when the file is missing; returns (name, role, password) created."""
    if path.exists():
        return []
    store = UserStore(path)
    created = []
    for name, role in DEMO_USERS:
        password = secrets.token_urlsafe(12)
        store.add(name, parse_roles(role), password, wall=RealClock().wall())
        created.append((name, role, password))
    return created


def install_opcua_identity(site: Site, sim_cert_dir: Path, password: str | None) -> None:
    """Copy the simulator-trusted client certificate to each OPC-UA station's cert_dir; set the password."""
    from sim_plc.opcua_server import Pki

    pki = Pki(sim_cert_dir)
    for st in site.stations.values():
        if st.plc.protocol != "opcua":
            continue
        dest = Path(st.plc.options["cert_dir"])
        dest.mkdir(parents=True, exist_ok=True)
        for src, name in ((pki.client_cert, "plantctl-client-cert.der"), (pki.client_key, "plantctl-client-key.pem")):
            target = dest / name
            if not target.exists() or target.read_bytes() != src.read_bytes():
                shutil.copyfile(src, target)
        (dest / "plantctl-client-key.pem").chmod(0o600)
        env = st.plc.options.get("password_env") or "PLANTCTL_OPCUA_PASSWORD"
        if password and not os.environ.get(env):
            os.environ[env] = password


def _sim_ports(site: Site) -> tuple[dict[str, int], dict[str, int], bool]:
    modbus: dict[str, int] = {}
    opcua: dict[str, int] = {}
    for name, st in site.stations.items():
        if st.plc.protocol == "modbus":
            modbus[name] = int(st.plc.options["port"])
        elif st.plc.protocol == "opcua":
            opcua[name] = int(urlparse(st.plc.options["url"]).port or 4840)
    return modbus, opcua, bool(opcua)


async def run_demo(
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    site_path: str | Path | None = None,
    stop: asyncio.Event | None = None,
    certfile: str | Path | None = None,
    keyfile: str | Path | None = None,
    ready: Any = None,
) -> int:
    """Run simulator + controller + HMI until ``stop`` is set (or SIGINT/SIGTERM)."""
    from plantctl.runtime_cli import build_controller
    from sim_plc.runner import SimConfig, SimRunner

    site = load_site(site_path or sites_dir() / "demo.yaml")
    site, missing = _known_procedures(site)
    if missing:
        print(f"demo: procedures not written yet, left out: {', '.join(missing)} (the interlocks still trip)")
    var = site.journal_path.parent
    var.mkdir(parents=True, exist_ok=True)
    sim_pki = var / "pki" / "sim"
    modbus_ports, opcua_ports, want_opcua = _sim_ports(site)
    config = SimConfig(modbus_ports=modbus_ports, opcua_ports=opcua_ports, http_port=0, opcua=want_opcua,
                       cert_dir=sim_pki)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    async with SimRunner(config) as sim:
        install_opcua_identity(site, sim_pki, sim.opcua_password)
        users_path = site.users_path or var / "users.yaml"
        created = ensure_users(users_path)
        ctrl = build_controller(site, RealClock())
        app = create_app(ctrl, UserStore.load(users_path), sim_api_url=sim.http_url,
                         secure_cookies=certfile is not None)
        async with ctrl:
            server = HmiServer(app, host, port, certfile=certfile, keyfile=keyfile)
            await server.start()
            try:
                print(f"demo: simulator API {sim.http_url}; PLC ports {sim.ports()}")
                print(f"demo: HMI on {server.url}  (journal {site.journal_path.resolve()}, "
                      f"users {Path(users_path).resolve()})")
                if created:
                    print("demo: users created (passwords shown once; reset with `plantctl user passwd NAME "
                          f"--file {Path(users_path).resolve()}`):")
                    for name, role, password in created:
                        print(f"    {name:<11} {role:<11} {password}")
                else:
                    print(f"demo: users from {users_path} (passwords were printed when it was created)")
                if ready is not None:
                    ready(server.url, created)
                await stop.wait()
            finally:
                await server.stop()
    return 0


def main() -> int:
    logging.basicConfig(level=logging.WARNING)
    return asyncio.run(run_demo())


if __name__ == "__main__":
    raise SystemExit(main())
