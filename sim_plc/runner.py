"""Run the whole simulator in-process: plant, Modbus and OPC-UA servers, HTTP API.

Theory of operation
-------------------
``SimRunner`` is an async context manager. Entering it loads the stations' I/O
lists (``plantctl.iolist``, the same files the controller reads), builds the
station models and a ``Plant`` on the given clock, makes the OPC-UA certificates
if missing (before anything serves, as that blocks the loop for a moment), then
starts, per station, a Modbus TCP server and an OPC-UA server, and finally the
HTTP API in an embedded uvicorn server. Leaving it stops all of them, the HTTP
server with a bounded graceful shutdown and then a forced one.

Time: on a ``RealClock`` (the default) a task runs ``Plant.run_realtime``. On a
``VirtualClock`` nothing moves by itself: the test or scenario runner calls
``runner.plant.advance_to(t)`` and then ``await runner.sync()`` so that the
servers' link state and OPC-UA values catch up before it reads them.

Every server binds ``config.host`` (127.0.0.1 by default); port 0 picks a free
port, and ``ports()`` reports what was bound. The embedded uvicorn server does not
install signal handlers: the process that owns the runner (the CLI) owns them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from plantctl.clock import Clock, RealClock, VirtualClock
from plantctl.iolist import IOList, load_io_list
from plantctl.paths import io_dir

from . import catalogue
from .errors import SimError
from .http_api import create_app
from .modbus_server import StationModbusServer
from .opcua_server import OpcuaSecurity, StationOpcuaServer, load_or_create_password
from .plant import Plant, PlantParams, StationModel

log = logging.getLogger(__name__)


def default_cert_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "plantctl" / "sim-pki"


@dataclass
class SimConfig:
    host: str = "127.0.0.1"
    stations: tuple[str, ...] = ("gas_station", "pump_station")
    modbus_ports: dict[str, int] = field(default_factory=dict)  # station -> port; missing or 0 = free
    opcua_ports: dict[str, int] = field(default_factory=dict)
    http_port: int | None = 0  # None: no HTTP API
    opcua: bool = True
    cert_dir: Path = field(default_factory=default_cert_dir)
    opcua_user: str = "plantctl"
    opcua_password: str | None = None  # None: $PLANTCTL_SIM_OPCUA_PASSWORD or the one stored in cert_dir
    allow_insecure_opcua: bool = False
    modbus_ssl: ssl.SSLContext | None = None
    seed: int = 0
    io_dir: Path | None = None  # default: plantctl.paths.io_dir()
    plant: PlantParams = field(default_factory=PlantParams)
    http_graceful_s: float = 2.0  # uvicorn takes whole seconds


class _EmbeddedUvicorn(uvicorn.Server):
    """uvicorn without its own signal handling (the runner's owner has it)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class SimRunner:
    """The simulator, as an async context manager."""

    def __init__(
        self,
        config: SimConfig | None = None,
        clock: Clock | None = None,
        models: dict[str, StationModel] | None = None,
    ) -> None:
        self.config = config or SimConfig()
        self.clock: Clock = clock or RealClock()
        self._models = models
        self.iolists: dict[str, IOList] = {}
        self.plant: Plant | None = None
        self.modbus: dict[str, StationModbusServer] = {}
        self.opcua: dict[str, StationOpcuaServer] = {}
        self.opcua_password: str | None = None
        self._http: _EmbeddedUvicorn | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._http_socket: socket.socket | None = None
        self._http_port: int | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    # -- building -----------------------------------------------------------------
    def _load(self) -> tuple[list[StationModel], dict[str, IOList]]:
        folder = self.config.io_dir or io_dir()
        iolists: dict[str, IOList] = {}
        models: list[StationModel] = []
        for name in self.config.stations:
            iol = load_io_list(folder / f"{name}.yaml")
            if iol.station != name:
                raise SimError(f"{iol.path}: declares station {iol.station!r}, expected {name!r}")
            iolists[name] = iol
            if self._models is not None and name in self._models:
                model = self._models[name]
            else:
                if name not in catalogue.STATION_MODELS:
                    raise SimError(f"no model is known for station {name!r}")
                cls = catalogue.station_class(name)
                if cls is None:
                    raise SimError(f"the model of {name} ({catalogue.STATION_MODELS[name][0]}) is not installed")
                model = cls(seed=self.config.seed)
            models.append(model)
        return models, iolists

    async def start(self) -> None:
        cfg = self.config
        models, self.iolists = self._load()
        plant = Plant(models, self.clock, cfg.plant)
        self.plant = plant
        try:
            if cfg.opcua:
                self.opcua_password = cfg.opcua_password or load_or_create_password(cfg.cert_dir)
                security = OpcuaSecurity(
                    cfg.cert_dir, cfg.opcua_user, self.opcua_password, allow_insecure=cfg.allow_insecure_opcua
                )
            for name, iol in self.iolists.items():
                mb = StationModbusServer(
                    plant, iol, host=cfg.host, port=cfg.modbus_ports.get(name, 0), ssl_context=cfg.modbus_ssl
                )
                await mb.start()
                self.modbus[name] = mb
                if cfg.opcua:
                    ua_srv = StationOpcuaServer(plant, iol, security, host=cfg.host, port=cfg.opcua_ports.get(name, 0))
                    await ua_srv.start()
                    self.opcua[name] = ua_srv
            if cfg.http_port is not None:
                await self._start_http(cfg.http_port)
            if not isinstance(self.clock, VirtualClock):
                self._loop_task = asyncio.get_running_loop().create_task(plant.run_realtime())
        except BaseException:
            await self.stop()
            raise

    async def _start_http(self, port: int) -> None:
        assert self.plant is not None
        app = create_app(self.plant, self.iolists, self.endpoints)
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=max(1, math.ceil(self.config.http_graceful_s)),
        )
        # Binding the socket ourselves gives the port at once and queues early
        # connections until uvicorn accepts them: no polling for "started".
        sock = socket.create_server((self.config.host, port))
        self._http_socket = sock
        self._http_port = int(sock.getsockname()[1])
        self._http = _EmbeddedUvicorn(config)
        self._http_task = asyncio.get_running_loop().create_task(self._http.serve(sockets=[sock]))

    async def stop(self) -> None:
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            try:
                await asyncio.wait_for(asyncio.shield(self._http_task), self.config.http_graceful_s + 2.0)
            except TimeoutError:
                log.warning("HTTP API did not stop gracefully; forcing it")
                self._http.force_exit = True
                self._http_task.cancel()
                await asyncio.gather(self._http_task, return_exceptions=True)
            self._http = None
            self._http_task = None
        if self._http_socket is not None:
            self._http_socket.close()
            self._http_socket = None
        for ua_srv in self.opcua.values():
            await ua_srv.stop()
        for mb in self.modbus.values():
            await mb.stop()
        self.opcua.clear()
        self.modbus.clear()

    async def __aenter__(self) -> SimRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- running ------------------------------------------------------------------
    async def sync(self) -> None:
        """Let every server catch up with the plant (links, OPC-UA values)."""
        for mb in self.modbus.values():
            await mb.settled()
        for ua_srv in self.opcua.values():
            await ua_srv.settled()

    def request_stop(self) -> None:
        self._stop.set()

    async def serve_forever(self) -> None:
        """Wait until ``request_stop()``; a crash of the plant loop or the HTTP server ends it too."""
        stop = asyncio.ensure_future(self._stop.wait())
        waiters: list[asyncio.Future[Any]] = [stop]
        waiters.extend(t for t in (self._loop_task, self._http_task) if t is not None)
        done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        await asyncio.gather(stop, return_exceptions=True)
        for fut in done:
            if fut is stop or fut.cancelled():
                continue
            exc = fut.exception()
            if exc is not None:
                raise exc

    # -- reporting ------------------------------------------------------------------
    @property
    def http_port(self) -> int | None:
        return self._http_port

    @property
    def http_url(self) -> str | None:
        return None if self._http_port is None else f"http://{self.config.host}:{self._http_port}"

    def endpoints(self) -> dict[str, dict[str, Any]]:
        """Per station: Modbus port and unit id, OPC-UA endpoint and namespace."""
        out: dict[str, dict[str, Any]] = {}
        for name, iol in self.iolists.items():
            entry: dict[str, Any] = {"unit_id": iol.unit_id, "namespace_uri": iol.namespace_uri}
            if name in self.modbus:
                entry["modbus_port"] = self.modbus[name].port
                entry["modbus_tls"] = self.config.modbus_ssl is not None
            if name in self.opcua:
                entry["opcua_port"] = self.opcua[name].port
                entry["opcua_url"] = self.opcua[name].endpoint_url
            out[name] = entry
        return out

    def ports(self) -> dict[str, Any]:
        """Bound ports: {"http": p, "<station>": {"modbus": p, "opcua": p}}."""
        out: dict[str, Any] = {"http": self._http_port}
        for name, entry in self.endpoints().items():
            out[name] = {"modbus": entry.get("modbus_port"), "opcua": entry.get("opcua_port")}
        return out
