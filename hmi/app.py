"""The HMI web app: REST API, WebSocket push and the static front-end.

Theory of operation
-------------------
``create_app(controller, users)`` builds a FastAPI app around a controller-like
object (see ``hmi.live.ControllerLike``). Reading is pull (REST) and push (the
``/ws`` WebSocket, diffs every 100-250 ms from ``hmi.live.Hub``); every change
goes through REST, never through the WebSocket, so that each one passes the same
checks: a session, the role (from the users file, at every request), the CSRF
token, and for critical actions the two-person rule (``hmi.security``).

Every route is declared with ``_route(method, path, perm)``, which attaches the
permission check as the route's first dependency and writes the required roles
into the OpenAPI schema (``x-roles``, ``x-csrf``); the route-enumeration test
walks that schema and proves each route refuses the wrong role and a missing
token, so no route can be added without a guard.

Handlers that touch the controller are ``async def`` on purpose: they then run
on the event loop between two scans of the controller, never in a thread while
a scan runs. Slow work (argon2 hashing, journal reads) goes to a thread.

Operator actions the engine does not journal itself (login, shelving, pending
confirmations, fault injection, user administration) are queued with
``engine.note`` and journaled with the next scan, with the user and address.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response, WebSocket
from fastapi.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from plantctl.auth import AuthError, User, UserStore, check_password, parse_roles
from plantctl.clock import RealClock
from plantctl.engine import Action, Actor, Outcome, Role
from plantctl.engine import Request as EngineRequest
from plantctl.iolist import CommandType, Kind, Signal
from plantctl.journal import Event, EventKind, Record
from plantctl.procedures import Refusal, Refused, describe, mermaid

from .faults import FaultBackend, FaultError, HttpFaultBackend
from .live import (
    MANUAL_THRESHOLDS_S,
    AlarmShelf,
    Client,
    ControllerLike,
    HistoryQuery,
    Hub,
    LiveView,
    RingHistory,
)
from .security import (
    ClockLike,
    ConfirmError,
    LoginThrottle,
    PendingStore,
    Perm,
    Session,
    SessionStore,
    ThrottleSettings,
    csrf_ok,
    permissions,
)

log = logging.getLogger("hmi")

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "plantctl_session"
SECURE_COOKIE = "__Host-plantctl_session"  # the prefix makes browsers insist on Secure, Path=/ and no Domain
CSRF_HEADER = "x-csrf-token"
CONN_HEADER = "x-hmi-conn"
PUBLIC_ROUTES = frozenset({("GET", "/api/health"), ("POST", "/api/login")})

# Commands that give gas back to a part of the plant that was isolated: a second person confirms.
DEFAULT_CRITICAL_COMMANDS = (
    "gas_station:XY-201=true", "gas_station:XY-205=true", "gas_station:XY-301=true", "gas_station:XY-320=true",
    "gas_station:XY-211A=true", "gas_station:XY-211B=true", "gas_station:XY-216A=true", "gas_station:XY-216B=true",
    "gas_station:XY-311A=true", "gas_station:XY-311B=true", "gas_station:XY-313A=true", "gas_station:XY-313B=true",
    "gas_station:XY-400=true", "gas_station:HS-213A=true", "gas_station:HS-213B=true",
)

_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)


@dataclass
class HmiSettings:
    title: str = "plantctl"
    push_min_ms: float = 100.0
    push_max_ms: float = 150.0  # a tag change reaches every client within ~150 ms (bench/bench_ws.py)
    confirm_ttl_s: float = 120.0
    shelve_max_s: float = 8 * 3600.0
    session_idle_s: float = 8 * 3600.0
    session_absolute_s: float = 14 * 3600.0
    throttle: ThrottleSettings = field(default_factory=ThrottleSettings)
    critical_commands: tuple[str, ...] = DEFAULT_CRITICAL_COMMANDS
    history_capacity: int = 7200
    history_resolution_s: float = 0.5

    @classmethod
    def from_site(cls, hmi: dict[str, Any] | None, title: str = "") -> HmiSettings:
        d = dict(hmi or {})
        s = cls(title=title or "plantctl")
        for key in ("title", "push_min_ms", "push_max_ms", "confirm_ttl_s", "shelve_max_s", "session_idle_s",
                    "session_absolute_s", "history_capacity", "history_resolution_s"):
            if key in d:
                setattr(s, key, type(getattr(s, key))(d[key]))
        if "critical_commands" in d:
            s.critical_commands = tuple(str(x) for x in d["critical_commands"])
        th = d.get("login") or {}
        for key in ("window_s", "max_user_failures", "max_address_failures", "lockout_s"):
            if key in th:
                setattr(s.throttle, key, type(getattr(s.throttle, key))(th[key]))
        return s


@dataclass
class Ctx:
    session: Session
    user: User
    address: str

    @property
    def actor(self) -> Actor:
        return self.user.actor(self.address)


# -- request bodies -------------------------------------------------------------------------


class LoginBody(BaseModel):
    user: str = Field(max_length=64)
    password: str = Field(max_length=256)


class AlarmBody(BaseModel):
    id: str = Field(max_length=200)


class ShelveBody(BaseModel):
    id: str = Field(max_length=200)
    duration_s: float = Field(gt=0)
    reason: str = Field(min_length=1, max_length=500)


class CommandBody(BaseModel):
    station: str
    tag: str
    value: bool | int | float | str
    confirm: bool = False  # the operator went through the confirm step


class InterlockBody(BaseModel):
    interlock: str


class BypassBody(BaseModel):
    interlock: str
    tag: str
    reason: str = Field(min_length=1, max_length=500)
    duration_s: float = Field(gt=0)


class OverrideBody(BaseModel):
    interlock: str
    mode: str  # startup | force_trip | force_normal
    reason: str = Field(min_length=1, max_length=500)
    duration_s: float = Field(gt=0)


class StartBody(BaseModel):
    procedure: str
    reason: str = Field(default="started from the HMI", max_length=500)


class AnswerBody(BaseModel):
    key: str
    answer: str
    values: dict[str, Any] = Field(default_factory=dict)


class FaultBody(BaseModel):
    station: str
    fault: str
    params: dict[str, Any] = Field(default_factory=dict)


class ClearFaultBody(BaseModel):
    station: str | None = None
    fault: str | None = None


class NewUserBody(BaseModel):
    name: str
    roles: list[str]
    password: str = Field(max_length=256)


class PasswordBody(BaseModel):
    password: str = Field(max_length=256)


class OwnPasswordBody(BaseModel):
    old: str = Field(max_length=256)
    new: str = Field(max_length=256)


class RolesBody(BaseModel):
    roles: list[str]


class DisableBody(BaseModel):
    disabled: bool


# -- the app state ------------------------------------------------------------------------------


class Hmi:
    """Everything the routes share; ``app.state.hmi``."""

    def __init__(self, ctrl: ControllerLike, users: UserStore, *, clock: ClockLike, settings: HmiSettings,
                 secure_cookies: bool, faults: FaultBackend | None, history: HistoryQuery | None) -> None:
        self.ctrl = ctrl
        self.users = users
        self.clock = clock
        self.settings = settings
        self.secure = secure_cookies
        self.cookie = SECURE_COOKIE if secure_cookies else COOKIE
        self.faults = faults
        self.perms = permissions(getattr(ctrl.engine.config, "permissions", None))
        self.sessions = SessionStore(clock, idle_s=settings.session_idle_s, absolute_s=settings.session_absolute_s)
        self.throttle = LoginThrottle(clock, settings.throttle)
        self.pending = PendingStore(clock, settings.confirm_ttl_s)
        self.shelf = AlarmShelf(clock)
        self.view = LiveView(ctrl, self.pending, self.shelf, clock)
        ring = RingHistory(settings.history_capacity, settings.history_resolution_s)
        self.ring = ring
        self.history: HistoryQuery = history if history is not None else ring
        self.hub = Hub(self.view, ring, min_interval=settings.push_min_ms / 1000.0,
                       max_interval=settings.push_max_ms / 1000.0, session_valid=self._session_valid)
        self.live_conns: dict[str, str] = {}  # WebSocket connection id -> session token
        self.two_person = bool(getattr(ctrl.engine.config, "two_person", True))
        self.critical_commands = self._parse_critical(settings.critical_commands)

    def _parse_critical(self, items: tuple[str, ...]) -> set[tuple[str, str, str]]:
        out: set[tuple[str, str, str]] = set()
        for item in items:
            m = re.match(r"^([^:]+):([^=]+)=(.+)$", item.strip())
            if m is None:
                raise ValueError(f"hmi.critical_commands: {item!r} is not station:TAG=value")
            out.add((m.group(1), m.group(2), m.group(3).strip().lower()))
        return out

    def _session_valid(self, token: str) -> bool:
        s = self.sessions.peek(token)
        if s is None:
            return False
        u = self.users.get(s.user)
        return u is not None and not u.disabled

    # time of the controller (plant) for engine calls
    def now(self) -> float:
        return float(self.ctrl.clock.now())

    def wall(self) -> float:
        return float(self.ctrl.clock.wall())

    def note(self, ctx_or_user: Ctx | str, payload: dict[str, Any], *, station: str = "",
             kind: EventKind = EventKind.OPERATOR_ACTION, address: str = "") -> None:
        if isinstance(ctx_or_user, Ctx):
            user, address = ctx_or_user.user.name, ctx_or_user.address
        else:
            user = ctx_or_user
        note = getattr(self.ctrl.engine, "note", None)
        if note is not None:
            note(Event(kind, self.now(), self.wall(), station, "hmi", user, address, payload))
        self.hub.wake()

    def engine_request(self, req: EngineRequest) -> Outcome:
        out: Outcome = self.ctrl.engine.request(req, self.now(), self.wall())
        self.hub.wake()
        return out


# A journal sequence number is an SQLite INTEGER: a bigger one in a query is a 422, not a crash.
SEQ_MAX = 2**63 - 1


def _address(request: Request | WebSocket) -> str:
    return request.client.host if request.client else ""


def _outcome(out: Outcome, ok_status: int = 200) -> JSONResponse:
    if not out.accepted:
        # a malformed request (an answer the task does not offer, values it does not ask for) is the
        # client's error; any other refusal conflicts with the plant's or the procedure's state
        invalid = isinstance(out, Refused) and out.reason is Refusal.INVALID
        raise HTTPException(400 if invalid else 409, out.message)
    body: dict[str, Any] = {"accepted": True, "message": out.message}
    if out.command is not None:
        body["command"] = {"id": out.command.id, "tag": out.command.tag, "value": out.command.value}
    return JSONResponse(body, status_code=ok_status)


def _signal_json(sig: Signal) -> dict[str, Any]:
    return {
        "tag": sig.tag,
        "description": sig.description,
        "kind": sig.kind.value,
        "type": sig.type.value if sig.type else None,
        "units": sig.units,
        "range": list(sig.range) if sig.range else None,
        "alarms": dict(sig.alarms),
        "states": list(sig.states) if sig.states else None,
        "feedback": sig.feedback,
        "true_means": sig.true_means,
        "alarm_on": sig.alarm_on,
    }


def _coerce_command(sig: Signal, value: bool | int | float | str) -> bool | int | float:
    if sig.kind is not Kind.COMMAND_OUT:
        raise HTTPException(400, f"{sig.tag} is not a command output")
    if sig.type is CommandType.ENUM or sig.states:
        states = sig.states or []
        if isinstance(value, str):
            if value not in states:
                raise HTTPException(400, f"{sig.tag}: {value!r} is not one of {', '.join(states)}")
            return states.index(value)
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(states):
            return value
        raise HTTPException(400, f"{sig.tag}: give a state name ({', '.join(states)})")
    if sig.type is CommandType.BOOL or sig.is_bit:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
            return value.lower() in ("true", "1")
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        raise HTTPException(400, f"{sig.tag}: give true or false")
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise HTTPException(400, f"{sig.tag}: give a number") from None
    if sig.range is not None and not sig.range[0] <= f <= sig.range[1]:
        raise HTTPException(400, f"{sig.tag}: {f} is outside {sig.range[0]}..{sig.range[1]} {sig.units}")
    return f


def _value_text(v: bool | int | float) -> str:
    return str(v).lower() if isinstance(v, bool) else str(v)


# -- the factory ----------------------------------------------------------------------------------


def create_app(
    controller_like: ControllerLike,
    users: UserStore | str | Path,
    *,
    sim_api_url: str | None = None,
    secure_cookies: bool = False,
    fault_backend: FaultBackend | None = None,
    history: HistoryQuery | None = None,
    clock: ClockLike | None = None,
    settings: HmiSettings | None = None,
) -> FastAPI:
    """The HMI over one controller. ``users``: a UserStore or the users file's path.

    ``sim_api_url`` points the engineer's fault panel at the simulator's HTTP API
    (``fault_backend`` may give another back end, e.g. an in-process plant);
    ``secure_cookies`` when served over HTTPS; ``history`` replaces the in-memory
    trend ring (the historian's query); ``clock`` times sessions, lockouts and
    confirmations (RealClock by default).
    """
    store = users if isinstance(users, UserStore) else UserStore.load(users)
    if settings is None:
        site = getattr(controller_like, "site", None)
        settings = HmiSettings.from_site(getattr(site, "hmi", None), getattr(site, "title", "") or "")
    faults = fault_backend or (HttpFaultBackend(sim_api_url) if sim_api_url else None)
    hmi = Hmi(controller_like, store, clock=clock or RealClock(), settings=settings, secure_cookies=secure_cookies,
              faults=faults, history=history)

    # journaled events tell the exact time a link went down and wake the push early
    controller_like.subscribers.append(hmi.hub.on_events)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await hmi.hub.start()
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):
                controller_like.subscribers.remove(hmi.hub.on_events)
            await hmi.hub.stop()
            if hmi.faults is not None:
                await hmi.faults.aclose()

    app = FastAPI(
        title="plantctl HMI",
        version="0.1.0",
        description="Control-room HMI of plantctl. Every route but /api/health and /api/login needs a session "
        "cookie; every state-changing route also needs the session's CSRF token in X-CSRF-Token. "
        "The roles each route needs are in its x-roles extension.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.hmi = hmi

    @app.middleware("http")
    async def headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        response.headers["Content-Security-Policy"] = _CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Referrer-Policy"] = "no-referrer"
        if request.url.path.startswith("/api/"):
            response.headers["Cache-Control"] = "no-store"
        if hmi.secure:
            response.headers["Strict-Transport-Security"] = "max-age=31536000"
        return response

    # -- guards -----------------------------------------------------------------------------
    def _session_of(request: Request) -> Session | None:
        return hmi.sessions.get(request.cookies.get(hmi.cookie))

    def _check_origin(request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is not None:
            host = request.headers.get("host", "")
            if origin.split("://", 1)[-1] != host:
                raise HTTPException(403, "cross-origin request refused")

    def guard(perm: Perm, mutating: bool) -> Callable[[Request], Ctx]:
        roles = hmi.perms[perm]

        def check(request: Request) -> Ctx:
            hmi.users.reload_if_changed()
            session = _session_of(request)
            if session is None:
                raise HTTPException(401, "log in first")
            user = hmi.users.get(session.user)
            if user is None or user.disabled:
                hmi.sessions.drop_user(session.user)
                raise HTTPException(401, "account disabled or removed")
            if mutating:
                _check_origin(request)
                if not csrf_ok(session, request.headers.get(CSRF_HEADER)):
                    raise HTTPException(403, "missing or wrong CSRF token")
                conn = request.headers.get(CONN_HEADER)
                if conn and hmi.live_conns.get(conn) != session.token:
                    # composed on a view whose live connection has since dropped: never replay it
                    raise HTTPException(409, "your live connection dropped since this was entered; check and redo")
            if not user.roles & roles:
                raise HTTPException(403, f"{user.name} may not {perm.value} (needs {', '.join(sorted(roles))})")
            ctx = Ctx(session, user, _address(request))
            request.state.ctx = ctx
            return ctx

        return check

    def route(method: str, path: str, perm: Perm, **kw: Any) -> Callable[[Any], Any]:
        mutating = method != "GET"
        extra = {"x-permission": perm.value, "x-roles": sorted(r.value for r in hmi.perms[perm]), "x-csrf": mutating}
        add = getattr(app, method.lower())
        return add(path, dependencies=[Depends(guard(perm, mutating))], openapi_extra=extra, **kw)  # type: ignore[no-any-return]

    def ctx_of(request: Request) -> Ctx:
        ctx: Ctx = request.state.ctx
        return ctx

    C = Depends(ctx_of)

    # -- pages and assets ---------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    async def index(request: Request) -> Response:
        if _session_of(request) is None:
            return RedirectResponse("/login", status_code=303)
        return FileResponse(STATIC / "index.html")

    @app.get("/login", include_in_schema=False)
    async def login_page() -> Response:
        return FileResponse(STATIC / "login.html")

    @app.get("/static/vendor/plotly.min.js", include_in_schema=False)
    async def plotly_js() -> Response:
        try:
            import plotly

            path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
        except ImportError:
            path = Path("/nonexistent")
        if not path.exists():
            return PlainTextResponse("// plotly is not installed: pip install plotly\n", status_code=404)
        return FileResponse(path, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    # -- session --------------------------------------------------------------------------------
    @app.get("/api/health")
    async def health() -> dict[str, Any]:
        """Liveness only: tells nothing about the plant."""
        return {"status": "ok"}

    @app.post("/api/login")
    async def login(body: LoginBody, request: Request) -> JSONResponse:
        """Log in. Always issues a new session (a cookie sent before login is never promoted)."""
        _check_origin(request)
        addr = _address(request)
        name = body.user.strip().lower()
        wait = hmi.throttle.retry_after(name, addr)
        if wait > 0:
            raise HTTPException(429, f"too many failed logins; try again in {int(wait) + 1} s",
                                headers={"Retry-After": str(int(wait) + 1)})
        hmi.users.reload_if_changed()
        user = await run_in_threadpool(hmi.users.authenticate, name, body.password)
        if user is None:
            locked = hmi.throttle.failed(name, addr)
            hmi.note(name, {"action": "login", "accepted": False, "locked": locked}, address=addr)
            raise HTTPException(401, "wrong user name or password")
        hmi.throttle.succeeded(name)
        old = request.cookies.get(hmi.cookie)
        if old:
            hmi.sessions.drop(old)
        s = hmi.sessions.create(user.name, addr)
        hmi.note(user.name, {"action": "login", "accepted": True}, address=addr)
        resp = JSONResponse({"user": user.name, "roles": sorted(r.value for r in user.roles), "csrf": s.csrf})
        resp.set_cookie(hmi.cookie, s.token, httponly=True, samesite="strict", secure=hmi.secure, path="/",
                        max_age=int(hmi.settings.session_absolute_s))
        return resp

    @route("POST", "/api/logout", Perm.SELF)
    async def logout(ctx: Ctx = C) -> JSONResponse:
        hmi.sessions.drop(ctx.session.token)
        hmi.note(ctx, {"action": "logout"})
        resp = JSONResponse({"ok": True})
        resp.delete_cookie(hmi.cookie, path="/", secure=hmi.secure, httponly=True, samesite="strict")
        return resp

    @route("GET", "/api/session", Perm.VIEW)
    async def session_info(ctx: Ctx = C) -> dict[str, Any]:
        """Who is logged in, their roles and the CSRF token for state-changing requests."""
        perms = {p.value: bool(ctx.user.roles & r) for p, r in hmi.perms.items()}
        return {"user": ctx.user.name, "roles": sorted(r.value for r in ctx.user.roles), "csrf": ctx.session.csrf,
                "may": perms}

    @route("POST", "/api/me/password", Perm.SELF)
    async def own_password(body: OwnPasswordBody, ctx: Ctx = C) -> dict[str, Any]:
        ok = await run_in_threadpool(hmi.users.authenticate, ctx.user.name, body.old)
        if ok is None:
            raise HTTPException(403, "the current password is wrong")
        try:
            await run_in_threadpool(hmi.users.passwd, ctx.user.name, body.new, wall=hmi.clock.wall())
        except AuthError as exc:
            raise HTTPException(400, str(exc)) from None
        hmi.sessions.drop_user(ctx.user.name, keep=ctx.session.token)
        hmi.note(ctx, {"action": "password changed", "target": ctx.user.name})
        return {"ok": True}

    # -- configuration and state -------------------------------------------------------------------
    @route("GET", "/api/config", Perm.VIEW)
    async def config() -> dict[str, Any]:
        eng = hmi.ctrl.engine
        mgr = getattr(hmi.ctrl, "procedures", None)
        stations = [
            {"name": st, "title": iol.title, "signals": [_signal_json(s) for s in iol.signals]}
            for st, iol in eng.config.iolists.items()
        ]
        interlocks = [
            {"id": s.spec.id, "station": s.spec.station, "description": s.spec.description,
             "architecture": s.spec.architecture, "trip_group": s.spec.trip_group or s.spec.id,
             "members": [{"tag": c.tag, "op": c.op.value, "value": c.value} for c in s.spec.members],
             "effects": [e.describe() for e in s.spec.effects], "latch": s.spec.latch}
            for s in eng.interlocks.values()
        ]
        procs = []
        if mgr is not None:
            for d in mgr.defs.values():
                procs.append({"id": d.id, "title": d.title, "station": d.station, "source": d.source,
                              "trigger": d.trigger.describe() if d.trigger is not None else d.trigger_text,
                              "steps": describe(d)})
        return {
            "title": hmi.settings.title,
            "stations": stations,
            "interlocks": interlocks,
            "procedures": procs,
            "critical_commands": sorted(f"{s}:{t}={v}" for s, t, v in hmi.critical_commands),
            "two_person": hmi.two_person,
            "confirm_ttl_s": hmi.settings.confirm_ttl_s,
            "shelve_max_s": hmi.settings.shelve_max_s,
            "bypass_max_s": getattr(eng.config, "bypass_max_s", 8 * 3600.0),
            "override_max_s": getattr(eng.config, "override_max_s", 3600.0),
            "manual_thresholds_s": list(MANUAL_THRESHOLDS_S),
            "push_ms": [hmi.settings.push_min_ms, hmi.settings.push_max_ms],
            "faults_panel": hmi.faults is not None,
            "journal": getattr(hmi.ctrl, "journal", None) is not None,
            "roles": [r.value for r in Role],
            "permissions": {p.value: sorted(r.value for r in roles) for p, roles in hmi.perms.items()},
        }

    @route("GET", "/api/state", Perm.VIEW)
    async def state() -> dict[str, Any]:
        """The whole live state (what the WebSocket's first message carries)."""
        return hmi.view.state()

    @route("GET", "/api/alarms", Perm.VIEW)
    async def alarms() -> dict[str, Any]:
        active, shelved = hmi.view.alarms()
        return {"active": active, "shelved": shelved, "first_out": hmi.view.interlocks()["first_out"]}

    # -- alarms -----------------------------------------------------------------------------------
    def _alarm(aid: str) -> Any:
        a = hmi.ctrl.engine.alarms.alarms.get(aid)
        if a is None:
            raise HTTPException(404, f"no alarm {aid}")
        return a

    @route("POST", "/api/alarms/ack", Perm.ACK)
    async def ack(body: AlarmBody, ctx: Ctx = C) -> JSONResponse:
        a = _alarm(body.id)
        return _outcome(hmi.engine_request(EngineRequest(Action.ACK, ctx.actor, station=a.station, tag=body.id)))

    @route("POST", "/api/alarms/shelve", Perm.SHELVE)
    async def shelve(body: ShelveBody, ctx: Ctx = C) -> dict[str, Any]:
        a = _alarm(body.id)
        if int(a.priority) == 1:
            raise HTTPException(409, "critical alarms (trips, lost links) cannot be shelved; deal with the cause")
        if body.duration_s > hmi.settings.shelve_max_s:
            raise HTTPException(400, f"shelve at most {hmi.settings.shelve_max_s:.0f} s")
        s = hmi.shelf.shelve(body.id, ctx.user.name, body.reason, body.duration_s)
        hmi.note(ctx, {"action": "shelve", "alarm": body.id, "reason": body.reason, "duration_s": body.duration_s,
                       "until_wall": s.until_wall}, station=a.station)
        return {"accepted": True, "until_wall": s.until_wall}

    @route("POST", "/api/alarms/unshelve", Perm.SHELVE)
    async def unshelve(body: AlarmBody, ctx: Ctx = C) -> dict[str, Any]:
        s = hmi.shelf.unshelve(body.id)
        if s is None:
            raise HTTPException(404, f"{body.id} is not shelved")
        hmi.note(ctx, {"action": "unshelve", "alarm": body.id, "how": "by hand", "shelved_by": s.user})
        return {"accepted": True}

    # -- two-person confirmations ---------------------------------------------------------------
    def _critical(ctx: Ctx, kind: str, summary: str, roles: frozenset[Role], params: dict[str, Any],
                  execute: Callable[[Actor, Actor | None], Outcome], *, always: bool = False) -> JSONResponse:
        if always or hmi.two_person:
            p = hmi.pending.create(kind, summary, ctx.actor, roles, execute, params)
            hmi.note(ctx, {"action": "confirmation requested", "kind": kind, "summary": summary, "pending": p.id,
                           **params}, station=str(params.get("station", "")))
            return JSONResponse({"accepted": True, "pending": p.public(hmi.clock.now()),
                                 "message": f"waiting for a second person to confirm within "
                                            f"{hmi.settings.confirm_ttl_s:.0f} s"}, status_code=202)
        return _outcome(execute(ctx.actor, None))

    @route("GET", "/api/confirmations", Perm.VIEW)
    async def confirmations() -> list[dict[str, Any]]:
        for p in hmi.pending.expire():
            hmi.note(p.requested_by.user, {"action": "confirmation expired", "kind": p.kind, "summary": p.summary,
                                           "pending": p.id})
        return hmi.pending.public()

    @route("POST", "/api/confirmations/{pid}/confirm", Perm.VIEW)
    async def confirm(pid: str, ctx: Ctx = C) -> JSONResponse:
        """The second person confirms (must differ from the requester, with a permitted role)."""
        for p in hmi.pending.expire():
            hmi.note(p.requested_by.user, {"action": "confirmation expired", "kind": p.kind, "pending": p.id})
        try:
            p = hmi.pending.take_for_confirm(pid, ctx.actor)
        except ConfirmError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        hmi.note(ctx, {"action": "confirmed", "kind": p.kind, "summary": p.summary, "pending": p.id,
                       "requested_by": p.requested_by.user})
        out = p.execute(p.requested_by, ctx.actor)
        hmi.hub.wake()
        return _outcome(out)

    @route("POST", "/api/confirmations/{pid}/cancel", Perm.VIEW)
    async def cancel(pid: str, ctx: Ctx = C) -> dict[str, Any]:
        try:
            p = hmi.pending.cancel(pid, ctx.actor)
        except ConfirmError as exc:
            raise HTTPException(exc.status, str(exc)) from None
        hmi.note(ctx, {"action": "confirmation cancelled", "kind": p.kind, "summary": p.summary, "pending": p.id,
                       "requested_by": p.requested_by.user})
        return {"accepted": True}

    # -- commands to final elements ----------------------------------------------------------------
    @route("POST", "/api/commands", Perm.COMMAND)
    async def command(body: CommandBody, ctx: Ctx = C) -> JSONResponse:
        """A manual command to a final element; ``confirm`` must be true (the operator's confirm step)."""
        iol = hmi.ctrl.engine.config.iolists.get(body.station)
        if iol is None or body.tag not in iol.by_tag:
            raise HTTPException(404, f"unknown tag {body.station}:{body.tag}")
        value = _coerce_command(iol.by_tag[body.tag], body.value)
        if not body.confirm:
            raise HTTPException(400, "a command to a final element needs the confirm step (confirm: true)")
        st, tag = body.station, body.tag

        def execute(actor: Actor, confirmer: Actor | None) -> Outcome:
            return hmi.engine_request(EngineRequest(Action.COMMAND, actor, station=st, tag=tag, value=value,
                                                    confirmed_by=confirmer))

        if (st, tag, _value_text(value)) in hmi.critical_commands:
            return _critical(ctx, "restore", f"{st}:{tag} := {_value_text(value)} (restores gas supply)",
                             hmi.perms[Perm.COMMAND], {"station": st, "tag": tag, "value": value}, execute)
        return _outcome(execute(ctx.actor, None))

    # -- interlocks: reset, bypass, override, force -------------------------------------------------
    def _interlock(iid: str) -> Any:
        st = hmi.ctrl.engine.interlocks.get(iid)
        if st is None:
            raise HTTPException(404, f"unknown interlock {iid}")
        return st

    def _engine_exec(req_of: Callable[[Actor, Actor | None], EngineRequest]) -> Callable[[Actor, Actor | None], Outcome]:
        def run(actor: Actor, confirmer: Actor | None) -> Outcome:
            return hmi.engine_request(req_of(actor, confirmer))

        return run

    @route("POST", "/api/interlocks/reset", Perm.RESET)
    async def reset(body: InterlockBody, ctx: Ctx = C) -> JSONResponse:
        st = _interlock(body.interlock)
        if st.state.value != "tripped":
            raise HTTPException(409, f"{body.interlock} is not tripped")
        iid, station = body.interlock, st.spec.station
        return _critical(ctx, "reset", f"reset trip {iid}", hmi.perms[Perm.RESET],
                         {"interlock": iid, "station": station},
                         _engine_exec(lambda a, c: EngineRequest(Action.RESET, a, interlock=iid, station=station,
                                                                 confirmed_by=c)))

    @route("POST", "/api/interlocks/bypass", Perm.BYPASS)
    async def bypass(body: BypassBody, ctx: Ctx = C) -> JSONResponse:
        st = _interlock(body.interlock)
        if body.tag not in {c.tag for c in st.spec.members}:
            raise HTTPException(400, f"{body.tag} is not a member of {body.interlock}")
        if st.bypass is not None:
            raise HTTPException(409, f"{body.interlock} already has {st.bypass.tag} bypassed (one member at a time)")
        b = body
        station = st.spec.station
        return _critical(ctx, "bypass", f"bypass {b.tag} in {b.interlock} for {b.duration_s:.0f} s: {b.reason}",
                         hmi.perms[Perm.BYPASS],
                         {"interlock": b.interlock, "tag": b.tag, "reason": b.reason, "duration_s": b.duration_s,
                          "station": station},
                         _engine_exec(lambda a, c: EngineRequest(Action.BYPASS, a, interlock=b.interlock,
                                                                 station=station, tag=b.tag, reason=b.reason,
                                                                 duration_s=b.duration_s, confirmed_by=c)))

    @route("POST", "/api/interlocks/bypass/remove", Perm.BYPASS)
    async def bypass_remove(body: InterlockBody, ctx: Ctx = C) -> JSONResponse:
        st = _interlock(body.interlock)
        if st.bypass is None:
            raise HTTPException(409, f"{body.interlock} has no bypass")
        iid, station, tag = body.interlock, st.spec.station, st.bypass.tag
        return _critical(ctx, "bypass", f"remove the bypass of {tag} in {iid}", hmi.perms[Perm.BYPASS],
                         {"interlock": iid, "tag": tag, "station": station, "remove": True},
                         _engine_exec(lambda a, c: EngineRequest(Action.BYPASS, a, interlock=iid, station=station,
                                                                 value="off", confirmed_by=c)))

    @route("POST", "/api/interlocks/override", Perm.OVERRIDE)
    async def override(body: OverrideBody, ctx: Ctx = C) -> JSONResponse:
        """Startup override (mode startup, role override) or force (force_trip/force_normal, role force)."""
        st = _interlock(body.interlock)
        action = Action.OVERRIDE if body.mode == "startup" else Action.FORCE
        if body.mode not in ("startup", "force_trip", "force_normal"):
            raise HTTPException(400, "mode must be startup, force_trip or force_normal")
        perm = Perm.OVERRIDE if action is Action.OVERRIDE else Perm.FORCE
        if not ctx.user.roles & hmi.perms[perm]:
            raise HTTPException(403, f"{ctx.user.name} may not {perm.value}")
        if st.override is not None:
            raise HTTPException(409, f"{body.interlock} already has an override ({st.override.kind})")
        b, station = body, st.spec.station
        return _critical(ctx, "force" if action is Action.FORCE else "override",
                         f"{b.mode.replace('_', ' ')} {b.interlock} for {b.duration_s:.0f} s: {b.reason}",
                         hmi.perms[perm],
                         {"interlock": b.interlock, "mode": b.mode, "reason": b.reason, "duration_s": b.duration_s,
                          "station": station},
                         _engine_exec(lambda a, c: EngineRequest(action, a, interlock=b.interlock, station=station,
                                                                 mode=b.mode, reason=b.reason,
                                                                 duration_s=b.duration_s, confirmed_by=c)))

    @route("POST", "/api/interlocks/override/remove", Perm.OVERRIDE)
    async def override_remove(body: InterlockBody, ctx: Ctx = C) -> JSONResponse:
        st = _interlock(body.interlock)
        if st.override is None:
            raise HTTPException(409, f"{body.interlock} has no override")
        action = Action.OVERRIDE if st.override.kind == "startup" else Action.FORCE
        iid, station = body.interlock, st.spec.station
        # Removing an override gives protection back: one person may do it (unless the engine says otherwise).
        execute = _engine_exec(lambda a, c: EngineRequest(action, a, interlock=iid, station=station, value="off",
                                                          confirmed_by=c))
        if action is Action.FORCE and hmi.two_person:
            return _critical(ctx, "force", f"remove the force on {iid}", hmi.perms[Perm.FORCE],
                             {"interlock": iid, "station": station, "remove": True}, execute)
        return _outcome(execute(ctx.actor, None))

    # -- procedures ------------------------------------------------------------------------------
    def _mgr() -> Any:
        mgr = getattr(hmi.ctrl, "procedures", None)
        if mgr is None:
            raise HTTPException(404, "this controller runs no procedures")
        return mgr

    @route("GET", "/api/procedures", Perm.VIEW)
    async def procedures() -> dict[str, Any]:
        mgr = getattr(hmi.ctrl, "procedures", None)
        defs = [] if mgr is None else [{"id": d.id, "title": d.title, "station": d.station, "source": d.source,
                                        "steps": describe(d)} for d in mgr.defs.values()]
        return {"definitions": defs, "runs": hmi.view.procedures()}

    @route("GET", "/api/procedures/{proc_id}/mermaid", Perm.VIEW)
    async def procedure_mermaid(proc_id: str, current: str | None = None) -> PlainTextResponse:
        """The procedure's state diagram as Mermaid stateDiagram-v2 text."""
        defn = _mgr().defs.get(proc_id)
        if defn is None:
            raise HTTPException(404, f"unknown procedure {proc_id}")
        text = await run_in_threadpool(mermaid, defn, current)
        return PlainTextResponse(text)

    @route("POST", "/api/procedures/start", Perm.PROCEDURE)
    async def procedure_start(body: StartBody, ctx: Ctx = C) -> dict[str, Any]:
        mgr = _mgr()
        if body.procedure not in mgr.defs:
            raise HTTPException(404, f"unknown procedure {body.procedure}")
        run = mgr.start(body.procedure, f"{body.reason} ({ctx.user.name})", hmi.now(), hmi.wall(), ctx.user.name)
        hmi.note(ctx, {"action": "start procedure", "procedure": body.procedure, "run": run.run_id if run else None})
        return {"accepted": run is not None, "run": run.run_id if run else None}

    def _proc_action(action: str) -> Callable[..., Any]:
        async def handler(run_id: str, ctx: Ctx = C) -> JSONResponse:
            mgr = _mgr()
            run = mgr.runs.get(run_id)
            if run is None or run.finished:
                raise HTTPException(404, f"no running procedure {run_id}")
            if action == "abort":
                def execute(actor: Actor, confirmer: Actor | None) -> Outcome:
                    out: Outcome = mgr.request("abort", run_id, actor, hmi.now(), hmi.wall(), confirmed_by=confirmer)
                    hmi.hub.wake()
                    return out

                return _critical(ctx, "abort", f"abort {run_id} ({run.defn.title}) at step {run.state}",
                                 hmi.perms[Perm.PROCEDURE], {"run": run_id, "station": run.defn.station}, execute,
                                 always=True)
            out = mgr.request(action, run_id, ctx.actor, hmi.now(), hmi.wall())
            hmi.hub.wake()
            return _outcome(out)

        handler.__name__ = f"procedure_{action}"
        return handler

    for _action in ("hold", "resume", "abort"):
        route("POST", f"/api/procedures/{{run_id}}/{_action}", Perm.PROCEDURE,
              summary=f"{_action.capitalize()} a running procedure"
              + (" (needs a second person)" if _action == "abort" else ""))(_proc_action(_action))

    @route("POST", "/api/procedures/{run_id}/answer", Perm.ANSWER)
    async def procedure_answer(run_id: str, body: AnswerBody, ctx: Ctx = C) -> JSONResponse:
        """Answer a task; an answer the task marks two-person waits for a second person (202)."""
        mgr = _mgr()
        key, answer, values = body.key, body.answer, dict(body.values)
        roles = mgr.confirm_roles_for(run_id, key, answer)
        if roles is not None and mgr.check_answer(run_id, key, answer, ctx.actor, values) is None:
            # e.g. GAS-R's restore authorisation: it sets the critical line-up commands going, so it
            # takes the same two-person confirmation as those commands given by hand. The manager
            # checks the confirmer again (distinct user, permitted role) when it takes the answer.
            run = mgr.runs[run_id]
            title = run.tasks[key].title

            def execute(actor: Actor, confirmer: Actor | None) -> Outcome:
                out: Outcome = mgr.answer(run_id, key, answer, actor, hmi.now(), hmi.wall(), values,
                                          confirmed_by=confirmer)
                hmi.hub.wake()
                return out

            return _critical(ctx, "answer", f"{run_id} {key} ({title}): '{answer}'", roles,
                             {"run": run_id, "task": key, "answer": answer, "station": run.defn.station},
                             execute, always=True)
        # refusals (role, answer, values the task does not ask for) come from the manager, journaled
        out = mgr.answer(run_id, key, answer, ctx.actor, hmi.now(), hmi.wall(), values)
        hmi.hub.wake()
        return _outcome(out)

    @route("POST", "/api/procedures/{run_id}/confirm-local", Perm.PROCEDURE)
    async def procedure_confirm_local(run_id: str, ctx: Ctx = C) -> JSONResponse:
        """A field check stands in for a confirmation the instruments cannot read (BAD or missing signal).

        Refused (409, with the reason) when the instruments read and say no, or the step is a task or
        a decision: a person may vouch for what nobody can read, never overrule a good reading.
        """
        mgr = _mgr()
        out = mgr.confirm_locally(run_id, ctx.actor, hmi.now(), hmi.wall())
        hmi.hub.wake()
        return _outcome(out)

    # -- trends ----------------------------------------------------------------------------------
    @route("GET", "/api/trends", Perm.VIEW)
    async def trends(keys: str = Query(..., description="comma-separated station:TAG keys"),
                     window_s: float = Query(600.0, gt=0, le=7 * 86400.0),
                     end_wall: float | None = None, max_points: int = Query(2000, ge=10, le=20000)) -> dict[str, Any]:
        """Recent values of the chosen signals: [[wall seconds, value or null], ...] per key."""
        wanted = [k for k in keys.split(",") if k][:12]
        end = end_wall if end_wall is not None else hmi.wall()
        if hmi.history is hmi.ring:  # in memory, written by the hub on this loop
            data = hmi.history.query(wanted, end - window_s, end, max_points)
        else:  # a historian does I/O: keep it off the event loop
            data = await run_in_threadpool(hmi.history.query, wanted, end - window_s, end, max_points)
        return {"start": end - window_s, "end": end, "series": {k: [list(p) for p in v] for k, v in data.items()}}

    # -- journal ---------------------------------------------------------------------------------
    def _journal() -> Any:
        j = getattr(hmi.ctrl, "journal", None)
        if j is None:
            raise HTTPException(404, "this controller keeps no journal")
        return j

    def _filtered(kinds: str | None, station: str | None, user: str | None, text: str | None,
                  since_seq: int, before_seq: int | None, limit: int) -> list[Record]:
        j = _journal()
        kind_list = [k for k in (kinds or "").split(",") if k]
        try:
            kind_enums = [EventKind(k) for k in kind_list] or None
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        head = j.head[0]
        start = since_seq if since_seq > 0 else max(0, head - 50_000)
        out: deque[Record] = deque(maxlen=limit)
        needle = (text or "").lower()
        for rec in j.records(start, kind_enums, station or None):
            if before_seq is not None and rec.seq >= before_seq:
                break
            e = rec.event
            if user and e.user != user:
                continue
            if needle and needle not in json.dumps(e.payload).lower() and needle not in e.source.lower():
                continue
            out.append(rec)
        return list(out)

    def _record_json(r: Record) -> dict[str, Any]:
        e = r.event
        return {"seq": r.seq, "t_plant": e.t_plant, "t_wall": e.t_wall, "kind": e.kind.value, "station": e.station,
                "source": e.source, "user": e.user, "address": e.address, "payload": e.payload}

    @route("GET", "/api/journal", Perm.VIEW)
    async def journal(kinds: str | None = None, station: str | None = None, user: str | None = None,
                      text: str | None = None, since_seq: int = Query(0, ge=0, le=SEQ_MAX),
                      before_seq: int | None = Query(None, ge=0, le=SEQ_MAX),
                      limit: int = Query(200, ge=1, le=5000)) -> dict[str, Any]:
        """Journal records, newest first, filtered by kinds (comma-separated), station, user and text."""
        recs = await run_in_threadpool(_filtered, kinds, station, user, text, since_seq, before_seq, limit)
        return {"head": _journal().head[0], "records": [_record_json(r) for r in reversed(recs)],
                "kinds": [k.value for k in EventKind]}

    @route("GET", "/api/journal/export", Perm.VIEW)
    async def journal_export(format: str = "csv", kinds: str | None = None, station: str | None = None,
                             user: str | None = None, text: str | None = None,
                             since_seq: int = Query(0, ge=0, le=SEQ_MAX)) -> Response:
        """The journal as CSV or JSON lines, with hashes (plantctl.journal.export when unfiltered)."""
        if format not in ("csv", "jsonl"):
            raise HTTPException(400, "format must be csv or jsonl")
        j = _journal()
        buf = io.StringIO()
        if not (kinds or station or user or text):
            from plantctl.journal import export

            await run_in_threadpool(export, j.path, format, buf, since_seq)
        else:
            recs = await run_in_threadpool(_filtered, kinds, station, user, text, since_seq, None, 1_000_000)
            _write_export(recs, format, buf)
        media = "text/csv" if format == "csv" else "application/x-ndjson"
        name = f"journal.{format}"
        return StreamingResponse(iter([buf.getvalue()]), media_type=media,
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # -- faults (engineer) ------------------------------------------------------------------------
    def _faults() -> FaultBackend:
        if hmi.faults is None:
            raise HTTPException(404, "no simulator configured (start the HMI with sim_api_url)")
        return hmi.faults

    async def _fault_call(coro: Any) -> Any:
        try:
            return await coro
        except FaultError as exc:
            raise HTTPException(exc.status, str(exc)) from None

    @route("GET", "/api/faults/catalogue", Perm.FAULTS)
    async def fault_catalogue() -> list[dict[str, Any]]:
        return list(await _fault_call(_faults().catalogue()))

    @route("GET", "/api/faults/active", Perm.FAULTS)
    async def fault_active() -> list[dict[str, Any]]:
        return list(await _fault_call(_faults().active()))

    @route("POST", "/api/faults/inject", Perm.FAULTS)
    async def fault_inject(body: FaultBody, ctx: Ctx = C) -> dict[str, Any]:
        out = await _fault_call(_faults().inject(body.station, body.fault, body.params))
        hmi.note(ctx, {"action": "inject fault (simulator)", "fault": body.fault, "params": body.params},
                 station=body.station, kind=EventKind.SYSTEM)
        return dict(out)

    @route("POST", "/api/faults/clear", Perm.FAULTS)
    async def fault_clear(body: ClearFaultBody, ctx: Ctx = C) -> dict[str, Any]:
        out = await _fault_call(_faults().clear(body.station, body.fault))
        hmi.note(ctx, {"action": "clear faults (simulator)", "fault": body.fault}, station=body.station or "",
                 kind=EventKind.SYSTEM)
        return dict(out)

    # -- users (admin) --------------------------------------------------------------------------
    def _user_json(u: User) -> dict[str, Any]:
        return {"name": u.name, "roles": sorted(r.value for r in u.roles), "disabled": u.disabled,
                "created": u.created, "changed": u.changed}

    @route("GET", "/api/users", Perm.USERS)
    async def users_list() -> dict[str, Any]:
        hmi.users.reload_if_changed()
        return {"users": [_user_json(u) for u in hmi.users.users()], "locked": hmi.throttle.locked_users()}

    @route("POST", "/api/users", Perm.USERS)
    async def users_add(body: NewUserBody, ctx: Ctx = C) -> dict[str, Any]:
        try:
            roles = parse_roles(body.roles)
            u = await run_in_threadpool(hmi.users.add, body.name, roles, body.password, wall=hmi.clock.wall())
        except AuthError as exc:
            raise HTTPException(400, str(exc)) from None
        hmi.note(ctx, {"action": "user add", "target": u.name, "roles": sorted(r.value for r in u.roles)})
        return _user_json(u)

    @route("POST", "/api/users/{name}/password", Perm.USERS)
    async def users_password(name: str, body: PasswordBody, ctx: Ctx = C) -> dict[str, Any]:
        try:
            check_password(name, body.password)
            u = await run_in_threadpool(hmi.users.passwd, name, body.password, wall=hmi.clock.wall())
        except AuthError as exc:
            raise HTTPException(404 if "no user" in str(exc) else 400, str(exc)) from None
        hmi.sessions.drop_user(name, keep=ctx.session.token if name == ctx.user.name else None)
        hmi.note(ctx, {"action": "user passwd", "target": name})
        return _user_json(u)

    @route("POST", "/api/users/{name}/roles", Perm.USERS)
    async def users_roles(name: str, body: RolesBody, ctx: Ctx = C) -> dict[str, Any]:
        try:
            u = hmi.users.set_roles(name, parse_roles(body.roles), wall=hmi.clock.wall())
        except AuthError as exc:
            raise HTTPException(404 if "no user" in str(exc) else 400, str(exc)) from None
        hmi.note(ctx, {"action": "user roles", "target": name, "roles": sorted(r.value for r in u.roles)})
        return _user_json(u)

    @route("POST", "/api/users/{name}/disabled", Perm.USERS)
    async def users_disable(name: str, body: DisableBody, ctx: Ctx = C) -> dict[str, Any]:
        try:
            u = hmi.users.set_disabled(name, body.disabled, wall=hmi.clock.wall())
        except AuthError as exc:
            raise HTTPException(404 if "no user" in str(exc) else 400, str(exc)) from None
        if body.disabled:
            hmi.sessions.drop_user(name)
        hmi.note(ctx, {"action": "user disable" if body.disabled else "user enable", "target": name})
        return _user_json(u)

    @route("POST", "/api/users/{name}/unlock", Perm.USERS)
    async def users_unlock(name: str, ctx: Ctx = C) -> dict[str, Any]:
        hmi.throttle.unlock(name)
        hmi.note(ctx, {"action": "user unlock", "target": name})
        return {"accepted": True}

    # -- the WebSocket -----------------------------------------------------------------------------
    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        """Server push only: a snapshot, then diffs. Needs the session cookie and a same-origin Origin."""
        origin = websocket.headers.get("origin")
        host = websocket.headers.get("host", "")
        token = websocket.cookies.get(hmi.cookie) or ""
        session = hmi.sessions.get(token)
        user = hmi.users.get(session.user) if session else None
        if origin is not None and origin.split("://", 1)[-1] != host:
            await websocket.close(code=4403)
            return
        if session is None or user is None or user.disabled:
            await websocket.close(code=4401)
            return
        await websocket.accept()
        conn_id = f"{id(websocket):x}-{len(hmi.live_conns)}-{session.csrf[:6]}"
        hmi.live_conns[conn_id] = token

        async def send(text: str) -> None:
            await websocket.send_text(text)

        async def close(code: int, reason: str) -> None:
            await websocket.close(code=code, reason=reason)

        client = Client(send, close, token, user.name)
        await websocket.send_text(json.dumps({"type": "hello", "conn": conn_id, "user": user.name,
                                              "roles": sorted(r.value for r in user.roles)}))
        await hmi.hub.attach(client)
        try:
            while True:
                msg = await websocket.receive_text()  # clients only ping; nothing they send is acted upon
                if msg == "ping":
                    await websocket.send_text('{"type":"pong"}')
        except (WebSocketDisconnect, RuntimeError, asyncio.CancelledError):
            pass
        finally:
            hmi.live_conns.pop(conn_id, None)
            await hmi.hub.detach(client)

    return app


def _write_export(recs: list[Record], fmt: str, out: io.StringIO) -> None:
    fields = ("seq", "t_plant", "t_wall", "kind", "station", "source", "user", "address", "payload", "prev_hash", "hash")
    if fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(fields)
        for r in recs:
            e = r.event
            w.writerow((r.seq, repr(e.t_plant), repr(e.t_wall), e.kind.value, e.station, e.source, e.user, e.address,
                        json.dumps(e.payload, sort_keys=True, separators=(",", ":")), r.prev_hash, r.hash))
    else:
        for r in recs:
            e = r.event
            out.write(json.dumps({"seq": r.seq, "t_plant": e.t_plant, "t_wall": e.t_wall, "kind": e.kind.value,
                                  "station": e.station, "source": e.source, "user": e.user, "address": e.address,
                                  "payload": e.payload, "prev_hash": r.prev_hash, "hash": r.hash},
                                 separators=(",", ":")) + "\n")
