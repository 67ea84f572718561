"""The WebSocket push against a real uvicorn server on a free port.

The rig ticks in real time in the background (RigController.start), the HMI's
hub pushes snapshot and diffs, and a websockets client reads them. Each wait is
a read with a deadline: nothing sleeps for the answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from hmi.app import HmiSettings, create_app
from hmi.server import HmiServer
from plantctl.auth import UserStore


@pytest.fixture()
async def server(ctrl: Any, users: UserStore, passwords: dict[str, str]) -> AsyncIterator[HmiServer]:
    app = create_app(ctrl, users, settings=HmiSettings(title="ws test"))
    app.state.passwords = passwords
    app.state.clients = []
    ctrl.start()
    srv = HmiServer(app, "127.0.0.1", 0)
    await srv.start()
    try:
        yield srv
    finally:
        for c in app.state.clients:
            await c.aclose()
        await srv.stop()
        await ctrl.stop()


async def _login(srv: HmiServer, user: str) -> tuple[httpx.AsyncClient, str, str]:
    c = httpx.AsyncClient(base_url=srv.url)
    srv.app.state.clients.append(c)
    r = await c.post("/api/login", json={"user": user, "password": srv.app.state.passwords[user]})
    assert r.status_code == 200
    return c, r.json()["csrf"], f"plantctl_session={c.cookies.get('plantctl_session')}"


async def _recv(ws: Any, until: Any, timeout: float = 5.0) -> dict[str, Any]:
    async def loop() -> dict[str, Any]:
        while True:
            msg = json.loads(await ws.recv())
            if until(msg):
                return msg

    return await asyncio.wait_for(loop(), timeout)


async def test_snapshot_then_diffs_with_live_values(server: HmiServer, ctrl: Any) -> None:
    c, _, cookie = await _login(server, "view")
    async with connect(f"ws://127.0.0.1:{server.port}/ws", additional_headers={"Cookie": cookie},
                          origin=server.url) as ws:
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello" and hello["user"] == "view" and hello["conn"]
        snap = json.loads(await ws.recv())
        assert snap["type"] == "snapshot"
        assert snap["values"]["gas_station:PT-101"][1] == 2
        first = await _recv(ws, lambda m: m["type"] == "diff" and "values" in m)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        n = 0
        while loop.time() - t0 < 1.0:
            await _recv(ws, lambda m: m["type"] == "diff")
            n += 1
        assert 3 <= n <= 11, f"{n} diffs in one second (push every 100-250 ms)"
        assert len(first["values"]) < len(snap["values"])  # a diff, not the whole table
        # a value change reaches the client
        ctrl.rig.plant.inject("gas_station", "leak", {"zone": "GC", "hole_mm": 5})
        msg = await _recv(ws, lambda m: m.get("values", {}).get("gas_station:GD-401A", [0])[0] > 5.0, timeout=30)
        assert msg["values"]["gas_station:GD-401A"][1] == 2


async def test_websocket_refuses_no_session_and_other_origins(server: HmiServer) -> None:
    with pytest.raises((InvalidStatus, ConnectionClosed)):
        async with connect(f"ws://127.0.0.1:{server.port}/ws", origin=server.url) as ws:
            await ws.recv()
    c, _, cookie = await _login(server, "view")
    with pytest.raises((InvalidStatus, ConnectionClosed)):
        async with connect(f"ws://127.0.0.1:{server.port}/ws", additional_headers={"Cookie": cookie},
                           origin="http://evil.example") as ws:
            await ws.recv()


async def test_commands_composed_on_a_dropped_connection_are_refused(server: HmiServer) -> None:
    c, csrf, cookie = await _login(server, "op1")
    body = {"station": "gas_station", "tag": "XY-411B", "value": True, "confirm": True}
    async with connect(f"ws://127.0.0.1:{server.port}/ws", additional_headers={"Cookie": cookie},
                       origin=server.url) as ws:
        conn = json.loads(await ws.recv())["conn"]
        r = await c.post("/api/commands", json=body, headers={"X-CSRF-Token": csrf, "X-HMI-Conn": conn})
        assert r.status_code == 200, r.text
    r = await c.post("/api/commands", json=body, headers={"X-CSRF-Token": csrf, "X-HMI-Conn": conn})
    assert r.status_code == 409 and "dropped" in r.json()["detail"]


async def test_controller_stop_and_logout_reach_the_client(server: HmiServer, ctrl: Any) -> None:
    c, csrf, cookie = await _login(server, "op1")
    async with connect(f"ws://127.0.0.1:{server.port}/ws", additional_headers={"Cookie": cookie},
                          origin=server.url) as ws:
        await _recv(ws, lambda m: m["type"] == "snapshot")
        await ctrl.stop()
        msg = await _recv(ws, lambda m: m.get("controller", {}).get("running") is False, timeout=6)
        assert msg["controller"]["stopped_for_s"] >= 2.0
        await c.post("/api/logout", headers={"X-CSRF-Token": csrf})
        with pytest.raises(ConnectionClosed) as closed:
            await _recv(ws, lambda m: False, timeout=3)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
