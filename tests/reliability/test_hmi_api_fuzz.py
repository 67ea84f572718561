"""The HMI API under schemathesis: no server error, and no state change without role and CSRF token.

schemathesis reads the HMI's own OpenAPI schema and generates requests for every operation, both
valid ones (``positive``) and ones that break the schema (``negative``: wrong types, missing
fields, strings where numbers go, odd path values). The app runs in-process over a VirtualRig with
sim_plc's real station models, as in tests/hmi (which also hold the hand-written security tests:
tests/hmi/test_security.py). For each generated request:

1. anonymous: every route but the public two is refused (401), whatever the body;
2. a role the route does not name (its ``x-roles``), with a valid CSRF token: refused (403);
3. the right role without the CSRF token (state-changing routes): refused (403);
4. the right role with the token: anything but a server error (never 5xx, never an exception).

After each refused request (1-3) the state is compared with the state before it: no operator
event was journaled (the rig is stepped once, so anything the request queued would show), the
users file is byte-for-byte the same, and no session or pending confirmation appeared or went.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from argon2 import PasswordHasher
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from hmi.app import HmiSettings, create_app
from hmi.faults import PlantFaultBackend
from hmi.rig import RigController
from plantctl.auth import UserStore, parse_roles
from plantctl.clock import VirtualClock
from plantctl.journal import Journal, canonical_payload
from plantctl.paths import sites_dir
from plantctl.procedure_cli import load_definitions
from plantctl.rig import VirtualRig
from plantctl.site import load_site

with warnings.catch_warnings():
    # starlette's TestClient (a synchronous ASGI client, for hypothesis' synchronous tests) warns on
    # import that it will move to httpx2; nothing to act on here.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

EXAMPLES = int(os.environ.get("PLANTCTL_API_FUZZ_EXAMPLES", "8"))  # per operation and mode
PUBLIC = {("GET", "/api/health"), ("POST", "/api/login")}
UNREADABLE = {400, 404, 405, 415, 422}
USERS = {"viewer": "quiet-pebble-71-saffron", "operator": "amber-lantern-42-quartz",
         "supervisor": "granite-meadow-88-plume", "engineer": "silver-thistle-63-orbit",
         "admin": "northern-canyon-55-lilac"}  # user name = role, test passwords only


@dataclasses.dataclass
class Rig:
    app: Any
    ctrl: RigController
    users_file: Path
    anon: TestClient


def _rig(tmp: Path) -> Rig:
    from sim_plc import catalogue
    from sim_plc.gas_station import GasStation
    from sim_plc.plant import Plant
    from sim_plc.pump_station import PumpStation

    site = load_site(sites_dir() / "demo.yaml")
    clock = VirtualClock()
    plant = Plant([GasStation(seed=0), PumpStation(seed=0)], clock)
    defs = load_definitions()
    rig = VirtualRig(site.iolists, plant, clock, interlocks=site.interlocks,
                     procedures=[defs[p] for p in site.procedures if p in defs], journal=Journal(tmp / "journal.db"))
    ctrl = RigController(rig)
    ctrl.tick(20)
    store = UserStore(tmp / "users.yaml", hasher=PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1))
    for role, pw in USERS.items():
        store.add(role, parse_roles(role), pw)
    app = create_app(ctrl, store, clock=VirtualClock(start=1000.0), settings=HmiSettings(title="api fuzz"),
                     fault_backend=PlantFaultBackend(plant, lambda: [catalogue.describe(s) for s in catalogue.all_faults()]))
    return Rig(app, ctrl, tmp / "users.yaml", TestClient(app, base_url="http://testserver"))


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    r = _rig(tmp_path_factory.mktemp("api-fuzz"))
    yield r
    r.anon.close()
    r.ctrl.journal.close()


_ADDRESSES = itertools.count(1)


def _login(rig: Rig, role: str) -> tuple[TestClient, str]:
    # each session from an address of its own: the fuzzed logins fail by the hundred, and the
    # HMI (rightly) locks an address after a few failures (tests/hmi/test_security.py)
    n = next(_ADDRESSES)
    c = TestClient(rig.app, base_url="http://testserver", client=(f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}", 1))
    r = c.post("/api/login", json={"user": role, "password": USERS[role]})
    assert r.status_code == 200, r.text
    return c, r.json()["csrf"]


def _state(rig: Rig) -> tuple[Any, ...]:
    """What a request could have changed (the rig is stepped once so queued notes are journaled)."""
    rig.ctrl.tick(1)
    hmi = rig.app.state.hmi
    human = [(e.kind, e.source, e.user, canonical_payload(e.payload)) for e in rig.ctrl.rig.events if e.user]
    return (len(human), rig.users_file.read_bytes(), len(hmi.sessions), len(hmi.pending.items()))


def _request(client: TestClient, kw: dict[str, Any], headers: dict[str, str]) -> Any:
    kw = dict(kw)
    kw.pop("cookies", None)  # the client's own session cookie, not a generated one
    kw["headers"] = {**kw.get("headers", {}), **headers}
    if isinstance(kw.get("data"), bytes | str):
        kw["content"] = kw.pop("data")  # raw bodies (httpx wants them as content)
    return client.request(**kw)


def _operations(rig: Rig) -> list[Any]:
    schema = schemathesis.openapi.from_dict(rig.app.openapi())
    return [r.ok() for r in schema.get_all_operations()]


def test_the_schema_lists_every_route(rig: Rig) -> None:
    ops = {(op.method.upper(), op.path) for op in _operations(rig)}
    assert len(ops) >= 35 and PUBLIC <= ops


def _fuzz(rig: Rig, op: Any, mode: GenerationMode, sessions: dict[str, tuple[TestClient, str]],
          calls: dict[str, int], examples: int) -> None:
    method, path = op.method.upper(), op.path
    spec = rig.app.openapi()["paths"][path][op.method.lower()]
    roles = set(spec.get("x-roles", []))
    mutating = method != "GET"
    public = (method, path) in PUBLIC
    wrong = sorted(set(USERS) - roles)
    allowed = sorted(roles)

    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        kw = case.as_transport_kwargs(base_url="http://testserver")
        where = f"{method} {path} ({mode.value}) {kw.get('url')}"
        refusals: list[tuple[str, TestClient, dict[str, str]]] = []
        if not public:
            refusals.append(("anonymous", rig.anon, {}))
            if wrong:
                c, token = sessions[wrong[0]]
                refusals.append(("wrong_role", c, {"X-CSRF-Token": token}))
            if mutating and allowed:
                c, _ = sessions[allowed[0]]
                refusals.append(("no_csrf", c, {}))
        for who, client, headers in refusals:
            before = _state(rig)
            r = _request(client, kw, headers)
            calls[who] += 1
            assert r.status_code < 500, f"{where} as {who}: {r.status_code} {r.text[:200]}"
            # refused: a 4xx; the guard's 401/403, unless the request could not even be read
            # (400 unparsable body, 404/405 no such route, 415, 422 invalid: FastAPI checks those first)
            assert 400 <= r.status_code < 500, f"{where} as {who}: {r.status_code} {r.text[:200]}"
            if r.status_code not in UNREADABLE:
                assert r.status_code == (401 if who == "anonymous" else 403), f"{where} as {who}: {r.status_code}"
            assert _state(rig) == before, f"{where} as {who} changed the state ({r.status_code})"
        # the right role with the token: anything but a server error
        role = allowed[0] if allowed else "viewer"
        c, token = _login(rig, role)  # fresh: the request may be a logout or a password change
        r = _request(c, kw, {"X-CSRF-Token": token})
        calls["allowed"] += 1
        assert r.status_code < 500, f"{where} as {role}: {r.status_code} {r.text[:300]}"
        c.close()

    try:
        run()
    except Unsatisfiable:
        # negative mode on an operation with nothing to break (no parameters, no body)
        assert mode is GenerationMode.NEGATIVE, where_of(method, path)
        calls["nothing_to_break"] += 1


def where_of(method: str, path: str) -> str:
    return f"{method} {path}"


MODES = pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["positive", "negative"])


def _all(rig: Rig, mode: GenerationMode, examples: int) -> None:
    sessions = {role: _login(rig, role) for role in USERS}
    calls = {"anonymous": 0, "wrong_role": 0, "no_csrf": 0, "allowed": 0, "nothing_to_break": 0}
    ops = _operations(rig)
    for op in ops:
        _fuzz(rig, op, mode, sessions, calls, examples)
    print(f"\nRELIABILITY hmi-api-fuzz {mode.value}: {len(ops)} operations, {examples} examples each, requests {calls}")
    assert all(v > 0 for k, v in calls.items() if k != "nothing_to_break"), calls


@pytest.mark.timeout(300)
@MODES
def test_no_server_error_and_no_change_without_role_and_csrf(rig: Rig, mode: GenerationMode) -> None:
    _all(rig, mode, EXAMPLES)


@pytest.mark.long
@pytest.mark.timeout(3600)
@MODES
def test_soak_200_examples_per_operation(rig: Rig, mode: GenerationMode) -> None:
    _all(rig, mode, 200)
