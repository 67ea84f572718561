"""Fixtures of the HMI tests: users, a rig-backed controller, logged-in clients.

tests/ is not a package, so helpers reach the test modules as fixtures. The API
tests drive the HMI app in-process (httpx's ASGI transport) over a
``VirtualRig`` with sim_plc's real station models: the test steps the plant
(``ctrl.tick()``), so every value is known and nothing sleeps. Security timing
(sessions, lockouts, two-minute confirmations) runs on a ``VirtualClock`` of its
own that the tests advance.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from hmi.app import HmiSettings, create_app
from hmi.faults import PlantFaultBackend
from hmi.rig import RigController
from plantctl.auth import UserStore, parse_roles
from plantctl.clock import VirtualClock
from plantctl.engine import Role
from plantctl.expr import T
from plantctl.interlocks import Effect, Interlock
from plantctl.journal import Journal
from plantctl.paths import sites_dir
from plantctl.procedures import ProcedureDef, Step, StepKind, Task
from plantctl.rig import VirtualRig
from plantctl.site import load_site

# name -> (roles, password). Test passwords only; a real site has none of these.
USERS: dict[str, tuple[str, str]] = {
    "op1": ("operator", "amber-lantern-42-quartz"),
    "op2": ("operator", "velvet-harbor-17-cobalt"),
    "sup1": ("supervisor", "granite-meadow-88-plume"),
    "eng1": ("engineer", "silver-thistle-63-orbit"),
    "eng2": ("engineer", "copper-willow-29-ember"),
    "adm": ("admin", "northern-canyon-55-lilac"),
    "view": ("viewer", "quiet-pebble-71-saffron"),
    "lead": ("operator,supervisor", "hollow-summit-36-garnet"),
}
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)


def make_test_procedure() -> ProcedureDef:
    """A stand-in for GAS-L5 (plant-reference 4.6) with a task, a wait and a second task."""
    return ProcedureDef(
        id="TEST-L5",
        title="Compartment gas (HMI test procedure)",
        station="gas_station",
        source="plant-reference.md 4.6 (test stand-in)",
        steps=(
            Step("L5.1", "Detector alarm: verify it is real: compare with the other two channels, check fault "
                 "status and that ventilation is running. Keep the compartment closed to people.",
                 StepKind.TASK, next="L5.3", on_fail="L5.3", timeout_s=120,
                 task=Task("Verify the gas alarm", Role.OPERATOR,
                           ("Compare GD-401A/B/C", "Check channel faults XA-401x", "Ventilation FS-411 running"),
                           {"valid": "", "not valid": "ESCALATED"})),
            Step("L5.3", "2oo3 >= 25 %LEL: automatic GT trip, SRV-320 closes.", StepKind.WAIT, next="L5.4",
                 on_fail="ESCALATED", timeout_s=60, confirm=T("ZSC-320").on()),
            Step("L5.4", "After the stop: keep ventilation running, isolate with XV-301, no entry until all "
                 "channels < 5 % and the compartment has been gas-tested.", StepKind.TASK, next="DONE",
                 on_fail="ESCALATED", timeout_s=1800,
                 task=Task("Gas-test the compartment", Role.OPERATOR, ("Portable detector reading",),
                           {"done": ""}, fields=("reading",))),
        ),
    )


def _plant(clock: VirtualClock) -> Any:
    from sim_plc.gas_station import GasStation
    from sim_plc.plant import Plant
    from sim_plc.pump_station import PumpStation

    return Plant([GasStation(seed=0), PumpStation(seed=0)], clock)


def fault_catalogue() -> list[dict[str, Any]]:
    from sim_plc import catalogue

    return [catalogue.describe(s) for s in catalogue.all_faults()]


def site_interlocks(proc_id: str) -> list[Interlock]:
    """The demo site's cause-and-effect matrix, its GAS-L5 start pointed at ``proc_id``."""
    site = load_site(sites_dir() / "demo.yaml")
    out = []
    for il in site.interlocks:
        effects = tuple(Effect(e.command, e.value, proc_id if e.procedure == "GAS-L5" else e.procedure)
                        for e in il.effects if e.procedure in (None, "GAS-L5"))
        out.append(dataclasses.replace(il, effects=effects))
    return out


@pytest.fixture()
def users(tmp_path: Path) -> UserStore:
    store = UserStore(tmp_path / "users.yaml", hasher=CHEAP_HASHER)
    for name, (roles, pw) in USERS.items():
        store.add(name, parse_roles(roles), pw)
    return store


@pytest.fixture()
def hmi_clock() -> VirtualClock:
    return VirtualClock(start=1000.0, epoch=1_767_225_600.0)


@pytest.fixture()
def ctrl(tmp_path: Path) -> RigController:
    clock = VirtualClock()
    plant = _plant(clock)
    defn = make_test_procedure()
    rig = VirtualRig(
        {name: st.iolist for name, st in load_site(sites_dir() / "demo.yaml").stations.items()},
        plant,
        clock,
        interlocks=site_interlocks(defn.id),
        procedures=[defn],
        journal=Journal(tmp_path / "journal.db"),
    )
    c = RigController(rig)
    c.tick(20)  # 2 s: links up, every value read
    return c


@pytest.fixture()
def app(ctrl: RigController, users: UserStore, hmi_clock: VirtualClock) -> Any:
    return create_app(ctrl, users, clock=hmi_clock, settings=HmiSettings(title="test site"),
                      fault_backend=PlantFaultBackend(ctrl.rig.plant, fault_catalogue))


@dataclasses.dataclass
class Session:
    client: httpx.AsyncClient
    csrf: str
    user: str

    async def get(self, path: str, **kw: Any) -> httpx.Response:
        return await self.client.get(path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> httpx.Response:
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}
        return await self.client.post(path, json=body if body is not None else {}, headers=headers, **kw)


@pytest.fixture()
async def login(app: Any) -> AsyncIterator[Callable[..., Any]]:
    clients: list[httpx.AsyncClient] = []

    async def make(user: str | None = None) -> Session:
        c = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
        clients.append(c)
        if user is None:
            return Session(c, "", "")
        r = await c.post("/api/login", json={"user": user, "password": USERS[user][1]})
        assert r.status_code == 200, r.text
        return Session(c, r.json()["csrf"], user)

    yield make
    for c in clients:
        await c.aclose()


@pytest.fixture()
def passwords() -> dict[str, str]:
    return {name: pw for name, (_, pw) in USERS.items()}


@pytest.fixture()
def procedure_def() -> ProcedureDef:
    return make_test_procedure()
