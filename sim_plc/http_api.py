"""The simulator's small HTTP API: health, stations, live tags, fault injection.

Routes (JSON in and out):
  GET    /health                     plant time and link states
  GET    /stations                   stations, their I/O-list facts, links and server ports
  GET    /tags?station=NAME          every tag in engineering units (one station, or all)
  GET    /faults                     the whole fault catalogue, with parameters and help
  GET    /faults/active              faults injected now
  POST   /faults                     {"station", "fault", "params": {...}} -> 200, or 400 with the reason
  DELETE /faults?station=&fault=     clear one fault kind, a station's faults, or everything
  POST   /link_drop                  {"station", "duration_s"}: cut a PLC's link (F-X01)

Every handler is ``async def`` on purpose: FastAPI runs plain ``def`` handlers in a
thread pool, and the plant must only ever be touched from the event loop that
steps it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, Field

from plantctl.iolist import IOList

from . import catalogue
from .errors import SimError
from .plant import Plant, TagValue

ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/health", "plant time and link states"),
    ("GET", "/stations", "stations, links and server ports"),
    ("GET", "/tags?station=NAME", "every tag in engineering units"),
    ("GET", "/faults", "the fault catalogue with parameters and help"),
    ("GET", "/faults/active", "faults injected now"),
    ("POST", "/faults", '{"station": S, "fault": F, "params": {...}} inject a fault'),
    ("DELETE", "/faults?station=S&fault=F", "clear faults (both optional: omit to clear all)"),
    ("POST", "/link_drop", '{"station": S, "duration_s": D} cut a PLC link (F-X01)'),
)


class InjectRequest(BaseModel):
    station: str
    fault: str
    params: dict[str, Any] = Field(default_factory=dict)


class LinkDropRequest(BaseModel):
    station: str
    duration_s: float = Field(gt=0)


def _message(exc: BaseException) -> str:
    # KeyError subclasses (UnknownFault, UnknownStation) would quote their message in str().
    return str(exc.args[0]) if exc.args else type(exc).__name__


def _plain(value: TagValue) -> bool | int | float:
    """Model values may be numpy scalars; JSON wants Python ones."""
    if isinstance(value, bool | int | float):
        return value
    item = getattr(value, "item", None)  # numpy scalars convert themselves
    if callable(item):
        converted: bool | int | float = item()
        return converted
    return float(value)


def create_app(
    plant: Plant,
    iolists: dict[str, IOList] | None = None,
    endpoints: Callable[[], dict[str, dict[str, Any]]] | None = None,
) -> FastAPI:
    """The API over one running plant. ``endpoints()`` adds per-station server facts (ports)."""
    app = FastAPI(
        title="plantctl simulator",
        description="Software PLC of the reference plants: live tags and fault injection.",
        version="0.1.0",
    )
    iols = iolists or {}

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "time": plant.time,
            "links": {name: link.state.value for name, link in plant.links.items()},
        }

    @app.get("/stations")
    async def stations() -> list[dict[str, Any]]:
        extra = endpoints() if endpoints is not None else {}
        out: list[dict[str, Any]] = []
        for name in plant.stations:
            link = plant.links[name]
            iol = iols.get(name)
            entry: dict[str, Any] = {
                "station": name,
                "title": iol.title if iol else "",
                "unit_id": iol.unit_id if iol else None,
                "namespace_uri": iol.namespace_uri if iol else None,
                "signals": len(iol.signals) if iol else None,
                "link": link.state.value,
                "link_down_until": link.down_until,
            }
            entry.update(extra.get(name, {}))
            out.append(entry)
        return out

    @app.get("/tags")
    async def tags(station: str | None = Query(default=None)) -> dict[str, Any]:
        names = [station] if station is not None else list(plant.stations)
        try:
            values = {name: {t: _plain(v) for t, v in plant.tags(name).items()} for name in names}
        except SimError as exc:
            raise HTTPException(status_code=404, detail=_message(exc)) from None
        return {"time": plant.time, "stations": values}

    @app.get("/faults")
    async def faults() -> list[dict[str, Any]]:
        return [catalogue.describe(spec) for spec in catalogue.all_faults()]

    @app.get("/faults/active")
    async def faults_active() -> list[dict[str, Any]]:
        return plant.active_faults()

    @app.post("/faults")
    async def inject(req: InjectRequest) -> dict[str, Any]:
        try:
            params = plant.inject(req.station, req.fault, req.params)
        except (SimError, ValueError) as exc:
            raise HTTPException(status_code=400, detail=_message(exc)) from None
        return {"station": req.station, "fault": req.fault, "params": params, "time": plant.time}

    @app.delete("/faults")
    async def clear(station: str | None = None, fault: str | None = None) -> dict[str, Any]:
        try:
            plant.clear(station, fault)
        except SimError as exc:
            raise HTTPException(status_code=400, detail=_message(exc)) from None
        return {"cleared": {"station": station, "fault": fault}, "active": plant.active_faults()}

    @app.post("/link_drop")
    async def link_drop(req: LinkDropRequest) -> dict[str, Any]:
        try:
            plant.link_drop(req.station, req.duration_s)
        except (SimError, ValueError) as exc:
            raise HTTPException(status_code=400, detail=_message(exc)) from None
        link = plant.links[req.station]
        return {"station": req.station, "link": link.state.value, "down_until": link.down_until}

    return app
