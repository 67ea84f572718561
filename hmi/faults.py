"""Back ends of the engineer's fault-injection panel.

The panel talks to a ``FaultBackend``. ``HttpFaultBackend`` proxies to the
simulator's HTTP API (``sim_plc.http_api``: ``GET /faults``, ``GET
/faults/active``, ``POST /faults``, ``DELETE /faults``), which is what a running
demo uses (``create_app(..., sim_api_url=...)``). ``PlantFaultBackend`` calls an
in-process plant object with the same methods (``inject``, ``clear``,
``active_faults``): fast tests and the virtual rig use it. The HMI never imports
the simulator: the plant and its catalogue are handed in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import httpx


class FaultError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class FaultBackend(Protocol):
    async def catalogue(self) -> list[dict[str, Any]]: ...

    async def active(self) -> list[dict[str, Any]]: ...

    async def inject(self, station: str, fault: str, params: dict[str, Any]) -> dict[str, Any]: ...

    async def clear(self, station: str | None, fault: str | None) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...


class HttpFaultBackend:
    def __init__(self, base_url: str, timeout_s: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(base_url=self.base_url, timeout=timeout_s)

    async def _call(self, method: str, path: str, **kw: Any) -> Any:
        try:
            resp = await self._client.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise FaultError(f"simulator API unreachable at {self.base_url}: {exc}", 502) from None
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            raise FaultError(str(detail), 400 if resp.status_code < 500 else 502)
        return resp.json()

    async def catalogue(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = await self._call("GET", "/faults")
        return out

    async def active(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = await self._call("GET", "/faults/active")
        return out

    async def inject(self, station: str, fault: str, params: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = await self._call("POST", "/faults", json={"station": station, "fault": fault,
                                                                        "params": params})
        return out

    async def clear(self, station: str | None, fault: str | None) -> dict[str, Any]:
        q = {k: v for k, v in (("station", station), ("fault", fault)) if v}
        out: dict[str, Any] = await self._call("DELETE", "/faults", params=q)
        return out

    async def aclose(self) -> None:
        await self._client.aclose()


class PlantFaultBackend:
    """An in-process plant (sim_plc.plant.Plant or anything with the same methods)."""

    def __init__(self, plant: Any, catalogue: Callable[[], list[dict[str, Any]]]) -> None:
        self.plant = plant
        self._catalogue = catalogue

    async def catalogue(self) -> list[dict[str, Any]]:
        return self._catalogue()

    async def active(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self.plant.active_faults()
        return out

    async def inject(self, station: str, fault: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            coerced = self.plant.inject(station, fault, params)
        except (KeyError, ValueError, LookupError) as exc:
            raise FaultError(str(exc.args[0]) if exc.args else type(exc).__name__) from None
        except Exception as exc:  # the simulator's own error root  # noqa: BLE001
            raise FaultError(str(exc)) from None
        return {"station": station, "fault": fault, "params": coerced}

    async def clear(self, station: str | None, fault: str | None) -> dict[str, Any]:
        try:
            self.plant.clear(station, fault)
        except Exception as exc:  # noqa: BLE001
            raise FaultError(str(exc.args[0]) if exc.args else type(exc).__name__) from None
        return {"cleared": {"station": station, "fault": fault}, "active": self.plant.active_faults()}

    async def aclose(self) -> None:
        return None
