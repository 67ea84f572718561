"""``plantctl sim``: run the software PLC, and drive a running one's faults.

``plantctl sim [options]`` runs the simulator in the foreground until Ctrl-C.
``plantctl sim inject|clear|faults|link-drop`` talk to a running simulator over
its HTTP API (standard library urllib only, so they work from any shell).
The help epilog is generated from the fault catalogue, so it lists every fault
the installed station models accept, with parameters and help.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from . import catalogue

DEFAULT_URL = "http://127.0.0.1:8765"
URL_ENV = "PLANTCTL_SIM_URL"
HTTP_TIMEOUT_S = 5.0


def _epilog() -> str:
    from .http_api import ROUTES

    routes = "\n".join(f"  {method:<7}{path:<28}{text}" for method, path, text in ROUTES)
    try:
        faults = catalogue.help_text()
        example = catalogue.example_command()
    except Exception as exc:  # noqa: BLE001 - a broken model must not break --help
        faults = f"  (the fault catalogue could not be loaded: {exc})"
        example = "plantctl sim inject STATION FAULT key=value ..."
    return f"""\
Faults (plantctl sim inject STATION FAULT key=value ...):
{faults}

HTTP API of a running simulator (default {DEFAULT_URL}, or ${URL_ENV}):
{routes}

Examples:
  plantctl sim --http-port 8765
  {example}
  plantctl sim link-drop pump_station 60
  plantctl sim faults
  plantctl sim clear gas_station
"""


def add_cli(subparsers: Any) -> None:
    """Register ``sim`` and its actions on plantctl's sub-command parser."""
    sim = subparsers.add_parser(
        "sim",
        help="run the software PLC (Modbus TCP, OPC-UA, HTTP fault API) or drive its faults",
        description="Run the software PLC of the reference plants: one Modbus TCP server and one OPC-UA "
        "server per station, built from io/*.yaml, and an HTTP API for fault injection. Without an "
        "action it runs in the foreground until Ctrl-C. Port 0 picks a free port.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sim.add_argument("--host", default="127.0.0.1", help="address every server binds (default 127.0.0.1)")
    sim.add_argument("--modbus-port-gas", type=int, default=5020, metavar="PORT", help="default 5020")
    sim.add_argument("--modbus-port-pump", type=int, default=5021, metavar="PORT", help="default 5021")
    sim.add_argument("--opcua-port-gas", type=int, default=4840, metavar="PORT", help="default 4840")
    sim.add_argument("--opcua-port-pump", type=int, default=4841, metavar="PORT", help="default 4841")
    sim.add_argument("--http-port", type=int, default=8765, metavar="PORT", help="fault API port (default 8765)")
    sim.add_argument("--no-opcua", action="store_true", help="serve Modbus TCP only")
    sim.add_argument(
        "--insecure-opcua",
        action="store_true",
        help="also offer the unsecured OPC-UA endpoint (SecurityPolicy None, anonymous login): tests only",
    )
    sim.add_argument(
        "--cert-dir",
        type=Path,
        default=None,
        help="OPC-UA PKI folder: server certificates, trusted/ client certificates, and a generated "
        "trusted plantctl client certificate (default $XDG_DATA_HOME/plantctl/sim-pki)",
    )
    sim.add_argument("--opcua-user", default="plantctl", help="OPC-UA user name (default plantctl)")
    sim.add_argument(
        "--opcua-password",
        default=None,
        help="OPC-UA password (default: $PLANTCTL_SIM_OPCUA_PASSWORD, else generated once into the cert dir)",
    )
    sim.add_argument("--modbus-tls-cert", type=Path, help="serve Modbus/TCP Security (TLS) with this certificate")
    sim.add_argument("--modbus-tls-key", type=Path, help="private key of --modbus-tls-cert")
    sim.add_argument("--modbus-tls-ca", type=Path, help="require client certificates signed by this CA")
    sim.add_argument("--io-dir", type=Path, default=None, help="folder of the I/O lists (default: io/)")
    sim.add_argument("--seed", type=int, default=0, help="random seed of the models' noise (default 0)")
    sim.add_argument("--ports-file", type=Path, help="write the bound ports as JSON here once serving")
    sim.set_defaults(func=_run)

    actions = sim.add_subparsers(dest="sim_action", metavar="ACTION")

    def client_parser(name: str, help_text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=help_text, description=help_text)
        p.add_argument(
            "--url", default=os.environ.get(URL_ENV, DEFAULT_URL), help=f"simulator HTTP API (default {DEFAULT_URL})"
        )
        return p

    inject = client_parser("inject", "inject a fault into a running simulator")
    inject.add_argument("station", help="gas_station or pump_station")
    inject.add_argument("fault", help="fault name (see plantctl sim --help)")
    inject.add_argument("params", nargs="*", metavar="KEY=VALUE", help="fault parameters")
    inject.set_defaults(func=_inject)

    clear = client_parser("clear", "clear faults: one kind, a station's, or all")
    clear.add_argument("station", nargs="?", help="station (default: every station)")
    clear.add_argument("fault", nargs="?", help="fault name (default: every fault)")
    clear.set_defaults(func=_clear)

    faults = client_parser("faults", "list the active faults (or, with --all, the whole catalogue)")
    faults.add_argument("--all", action="store_true", help="the catalogue instead of the active faults")
    faults.add_argument("--json", action="store_true", help="print raw JSON")
    faults.set_defaults(func=_faults)

    drop = client_parser("link-drop", "cut a station PLC's network link for a while (F-X01)")
    drop.add_argument("station")
    drop.add_argument("duration_s", type=float, help="plant seconds")
    drop.set_defaults(func=_link_drop)


# -- running the simulator --------------------------------------------------------------------
def _run(args: argparse.Namespace) -> int:
    from .modbus_server import server_ssl_context
    from .runner import SimConfig, default_cert_dir

    modbus_ssl = None
    if args.modbus_tls_cert or args.modbus_tls_key:
        if not (args.modbus_tls_cert and args.modbus_tls_key):
            print("plantctl sim: --modbus-tls-cert and --modbus-tls-key go together", file=sys.stderr)
            return 2
        modbus_ssl = server_ssl_context(args.modbus_tls_cert, args.modbus_tls_key, args.modbus_tls_ca)
    config = SimConfig(
        host=args.host,
        modbus_ports={"gas_station": args.modbus_port_gas, "pump_station": args.modbus_port_pump},
        opcua_ports={"gas_station": args.opcua_port_gas, "pump_station": args.opcua_port_pump},
        http_port=args.http_port,
        opcua=not args.no_opcua,
        cert_dir=args.cert_dir or default_cert_dir(),
        opcua_user=args.opcua_user,
        opcua_password=args.opcua_password,
        allow_insecure_opcua=args.insecure_opcua,
        modbus_ssl=modbus_ssl,
        seed=args.seed,
        io_dir=args.io_dir,
    )
    return asyncio.run(_serve(config, args.ports_file))


async def _serve(config: Any, ports_file: Path | None) -> int:
    from .opcua_server import PASSWORD_ENV, Pki
    from .runner import SimRunner

    runner = SimRunner(config)
    loop = asyncio.get_running_loop()
    async with runner:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.request_stop)
        print("plantctl simulator running (Ctrl-C to stop)")
        for station, entry in runner.endpoints().items():
            line = f"  {station}: modbus {config.host}:{entry['modbus_port']} unit {entry['unit_id']}"
            if "opcua_url" in entry:
                line += f"; opc-ua {entry['opcua_url']}"
            print(line)
        if runner.opcua:
            where = (
                f"${PASSWORD_ENV}"
                if config.opcua_password is None and os.environ.get(PASSWORD_ENV)
                else ("--opcua-password" if config.opcua_password else str(Pki(config.cert_dir).password_file))
            )
            print(f"  opc-ua: Basic256Sha256 SignAndEncrypt, user {config.opcua_user}, password from {where}")
            print(f"  opc-ua PKI: {config.cert_dir} (client certificates go in trusted/)")
        if runner.http_url:
            print(f"  http api: {runner.http_url}  (plantctl sim --help lists the routes)")
        sys.stdout.flush()
        if ports_file is not None:
            ports_file.write_text(json.dumps(runner.ports(), indent=2) + "\n")
        await runner.serve_forever()
    return 0


# -- talking to a running simulator -------------------------------------------------------------
class _ApiError(Exception):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _call(url: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url.rstrip("/") + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", exc.reason)
        except (ValueError, AttributeError):
            detail = exc.reason
        if isinstance(detail, list):  # pydantic validation errors
            detail = "; ".join(str(d.get("msg", d)) for d in detail)
        raise _ApiError(str(detail), exc.code) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise _ApiError(f"cannot reach the simulator at {url}: {reason}", 0) from None


def _client(func: Any) -> Any:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except _ApiError as exc:
            print(f"plantctl sim: {exc}", file=sys.stderr)
            return 2 if exc.status == 400 else 1

    return wrapped


def _parse_params(items: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _ApiError(f"parameter {item!r} is not KEY=VALUE", 400)
        out[key] = value
    return out


@_client
def _inject(args: argparse.Namespace) -> int:
    params = _parse_params(args.params)
    result = _call(args.url, "POST", "/faults", {"station": args.station, "fault": args.fault, "params": params})
    shown = " ".join(f"{k}={v}" for k, v in result["params"].items())
    print(f"injected {result['station']} {result['fault']} {shown}".rstrip())
    return 0


@_client
def _clear(args: argparse.Namespace) -> int:
    query = {k: v for k, v in (("station", args.station), ("fault", args.fault)) if v}
    path = "/faults" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    result = _call(args.url, "DELETE", path)
    left = result.get("active", [])
    print(f"cleared; {len(left)} fault(s) still active")
    return 0


@_client
def _faults(args: argparse.Namespace) -> int:
    result = _call(args.url, "GET", "/faults" if args.all else "/faults/active")
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    if not result:
        print("no active faults" if not args.all else "no faults in the catalogue")
    for entry in result:
        if args.all:
            params = ", ".join(p["name"] for p in entry["params"])
            print(f"{entry['station']} {entry['fault']}({params}): {entry['help']}")
        else:
            extra = " ".join(f"{k}={v}" for k, v in entry.items() if k not in ("station", "fault"))
            print(f"{entry['station']} {entry['fault']} {extra}".rstrip())
    return 0


@_client
def _link_drop(args: argparse.Namespace) -> int:
    result = _call(args.url, "POST", "/link_drop", {"station": args.station, "duration_s": args.duration_s})
    print(f"{result['station']} link {result['link']} until plant time {result['down_until']:.1f} s")
    return 0
