"""Serving the HMI: an embedded uvicorn server, optionally HTTPS.

``serve(app, host, port)`` runs until cancelled (the demo's way). ``HmiServer``
is the same server as an object with ``start()``/``stop()`` and the bound port,
for tests and for programs that run other things on the same loop.

uvicorn waits for open WebSockets on shutdown; ``timeout_graceful_shutdown``
bounds that, and ``stop()`` forces the exit if even that does not finish.
The socket is bound before uvicorn starts, so the port is known at once (port
0 picks a free one) and early connections queue until uvicorn accepts them.
The embedded server installs no signal handlers: the owning program has them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn

log = logging.getLogger("hmi.server")


class _Embedded(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HmiServer:
    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        certfile: str | Path | None = None,
        keyfile: str | Path | None = None,
        graceful_s: float = 2.0,
        log_level: str = "warning",
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.certfile = certfile
        self.keyfile = keyfile
        self.graceful_s = graceful_s
        kw: dict[str, Any] = {}
        if certfile is not None:
            kw["ssl_certfile"] = str(certfile)
            kw["ssl_keyfile"] = str(keyfile) if keyfile is not None else None
        self.config = uvicorn.Config(
            app,
            log_level=log_level,
            access_log=False,
            lifespan="on",
            ws_ping_interval=10.0,
            ws_ping_timeout=10.0,
            timeout_graceful_shutdown=max(1, math.ceil(graceful_s)),
            **kw,
        )
        self._server: _Embedded | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.certfile is not None else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    async def start(self) -> None:
        sock = socket.create_server((self.host, self.port), reuse_port=False)
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        self._server = _Embedded(self.config)
        self._task = asyncio.get_running_loop().create_task(self._server.serve(sockets=[sock]), name="hmi-http")
        # wait until the app's lifespan ran (the hub is started) or the server failed
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("HMI server stopped while starting")
            await asyncio.sleep(0.01)

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self.graceful_s + 2.0)
        except TimeoutError:
            log.warning("HMI server did not stop gracefully; forcing it")
            self._server.force_exit = True
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        except asyncio.CancelledError:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            raise
        finally:
            if self._sock is not None:
                self._sock.close()
                self._sock = None
            self._server = None
            self._task = None

    async def __aenter__(self) -> HmiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


async def serve(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    certfile: str | Path | None = None,
    keyfile: str | Path | None = None,
    graceful_s: float = 2.0,
) -> None:
    """Serve ``app`` until cancelled; HTTPS when ``certfile`` (and ``keyfile``) are given."""
    server = HmiServer(app, host, port, certfile=certfile, keyfile=keyfile, graceful_s=graceful_s)
    await server.start()
    try:
        await server.wait()
    finally:
        await server.stop()
