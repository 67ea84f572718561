"""Security of the HMI: every route's guard, CSRF, session fixation, brute force, privilege escalation.

The route test walks the OpenAPI schema itself, so a route added later without a
guard (or with the wrong one) fails here: every route but the public two must
refuse an anonymous caller (401), every role not named in its ``x-roles`` (403)
and, when it changes state, a missing, wrong or cross-site CSRF token (403).
"""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hmi.app import create_app
from hmi.server import HmiServer
from plantctl.auth import UserStore

PUBLIC = {("GET", "/api/health"), ("POST", "/api/login")}
BY_ROLE = {"viewer": "view", "operator": "op1", "supervisor": "sup1", "engineer": "eng1", "admin": "adm"}
PATH_VALUES = {"{pid}": "1-deadbeef", "{run_id}": "TEST-L5%231", "{name}": "op2", "{proc_id}": "TEST-L5"}


def _fill(path: str) -> str:
    for k, v in PATH_VALUES.items():
        path = path.replace(k, v)
    return path


def _routes(app: Any) -> list[tuple[str, str, dict[str, Any]]]:
    schema = app.openapi()
    return [(m.upper(), p, op) for p, ops in schema["paths"].items() for m, op in ops.items()]


async def test_every_route_in_the_openapi_schema_needs_session_role_and_csrf(app: Any, login: Any) -> None:
    routes = _routes(app)
    assert len(routes) >= 35, "the schema lists the API"
    sessions = {role: await login(user) for role, user in BY_ROLE.items()}
    anon = await login()
    checked = 0
    for method, path, op in routes:
        if (method, path) in PUBLIC:
            continue
        url = _fill(path)
        assert "x-roles" in op and op["x-roles"], f"{method} {path} declares no roles"
        assert op["x-csrf"] is (method != "GET"), f"{method} {path}: CSRF flag"
        r = await anon.client.request(method, url, json={})
        assert r.status_code == 401, f"{method} {path} without a session: {r.status_code}"
        allowed = set(op["x-roles"])
        for role, s in sessions.items():
            if role in allowed:
                continue
            r = await s.client.request(method, url, json={}, headers={"X-CSRF-Token": s.csrf})
            assert r.status_code == 403, f"{method} {path} as {role}: {r.status_code} {r.text}"
        if method != "GET":
            s = sessions[sorted(allowed)[0]]
            r = await s.client.request(method, url, json={})
            assert r.status_code == 403 and "CSRF" in r.text, f"{method} {path} without CSRF: {r.status_code}"
            r = await s.client.request(method, url, json={}, headers={"X-CSRF-Token": "x" * 43})
            assert r.status_code == 403, f"{method} {path} with a wrong CSRF token"
            r = await s.client.request(method, url, json={}, headers={"X-CSRF-Token": s.csrf,
                                                                      "Origin": "http://evil.example"})
            assert r.status_code == 403, f"{method} {path} cross-site"
        checked += 1
    assert checked >= 33


async def test_public_routes_are_only_health_and_login(app: Any) -> None:
    public = {(m, p) for m, p, op in _routes(app) if "x-roles" not in op}
    assert public == PUBLIC
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        assert (await c.get("/api/health")).json() == {"status": "ok"}
        r = await c.get("/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/login"
        page = await c.get("/login")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"


async def test_a_csrf_token_belongs_to_its_own_session(login: Any) -> None:
    op1, op2 = await login("op1"), await login("op2")
    r = await op2.client.post("/api/alarms/ack", json={"id": "x"}, headers={"X-CSRF-Token": op1.csrf})
    assert r.status_code == 403


async def test_login_never_promotes_a_planted_session_cookie(login: Any, app: Any) -> None:
    anon = await login()
    anon.client.cookies.set("plantctl_session", "attacker-chosen-token")
    r = await anon.client.post("/api/login", json={"user": "op1", "password": "amber-lantern-42-quartz"})
    assert r.status_code == 200
    new = r.cookies.get("plantctl_session")
    assert new and new != "attacker-chosen-token"
    attacker = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                                 cookies={"plantctl_session": "attacker-chosen-token"})
    async with attacker:
        assert (await attacker.get("/api/state")).status_code == 401
    # an attacker's own valid session planted before the victim logs in is replaced too
    atk = await login("op2")
    token = atk.client.cookies.get("plantctl_session")
    victim = await login()
    victim.client.cookies.set("plantctl_session", token)
    r = await victim.client.post("/api/login", json={"user": "op1", "password": "amber-lantern-42-quartz"})
    assert r.cookies.get("plantctl_session") != token
    assert (await atk.get("/api/state")).status_code == 401  # the old token was dropped at that login


async def test_logout_ends_the_session_on_the_server(login: Any, app: Any) -> None:
    s = await login("op1")
    token = s.client.cookies.get("plantctl_session")
    assert (await s.post("/api/logout")).status_code == 200
    replay = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver",
                               cookies={"plantctl_session": token})
    async with replay:
        assert (await replay.get("/api/state")).status_code == 401


async def test_brute_force_locks_the_name_even_for_the_right_password_then_expires(login: Any,
                                                                                  hmi_clock: Any) -> None:
    anon = await login()
    for _ in range(5):
        r = await anon.client.post("/api/login", json={"user": "op1", "password": "guess-guess-guess"})
        assert r.status_code == 401
    r = await anon.client.post("/api/login", json={"user": "op1", "password": "amber-lantern-42-quartz"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    other = await login("op2")  # other names are not locked by op1's failures
    assert other.csrf
    hmi_clock.advance(301.0)
    r = await anon.client.post("/api/login", json={"user": "op1", "password": "amber-lantern-42-quartz"})
    assert r.status_code == 200


async def test_many_failures_from_one_address_lock_the_address(login: Any) -> None:
    anon = await login()
    for i in range(20):
        await anon.client.post("/api/login", json={"user": f"nobody{i}", "password": "guess-guess-guess"})
    r = await anon.client.post("/api/login", json={"user": "op2", "password": "velvet-harbor-17-cobalt"})
    assert r.status_code == 429


async def test_admin_can_unlock_a_locked_user(login: Any) -> None:
    anon = await login()
    for _ in range(5):
        await anon.client.post("/api/login", json={"user": "op1", "password": "guess-guess-guess"})
    adm = await login("adm")
    assert "op1" in (await adm.get("/api/users")).json()["locked"]
    assert (await adm.post("/api/users/op1/unlock")).status_code == 200
    r = await anon.client.post("/api/login", json={"user": "op1", "password": "amber-lantern-42-quartz"})
    assert r.status_code == 200


async def test_no_privilege_escalation(login: Any, users: UserStore, tmp_path: Path) -> None:
    op1, adm = await login("op1"), await login("adm")
    assert (await op1.post("/api/users/op1/roles", {"roles": ["admin"]})).status_code == 403
    assert (await op1.post("/api/users", {"name": "evil", "roles": ["admin"],
                                          "password": "long-enough-password-1"})).status_code == 403
    assert (await op1.post("/api/faults/inject", {"station": "gas_station", "fault": "fire"})).status_code == 403
    # the admin runs user administration, not the plant
    assert (await adm.post("/api/commands", {"station": "gas_station", "tag": "XY-411B", "value": True,
                                             "confirm": True})).status_code == 403
    # a demotion applies at the next request, without logging out
    assert (await adm.post("/api/users/op1/roles", {"roles": ["viewer"]})).status_code == 200
    r = await op1.post("/api/commands", {"station": "gas_station", "tag": "XY-411B", "value": True, "confirm": True})
    assert r.status_code == 403
    # a change made by `plantctl user disable` in another process reaches the running HMI
    other = UserStore.load(users.path, hasher=users.hasher)
    other.set_disabled("sup1", True)
    sup = await login("op2")
    assert (await sup.get("/api/state")).status_code == 200
    r = await sup.client.post("/api/login", json={"user": "sup1", "password": "granite-meadow-88-plume"})
    assert r.status_code == 401


async def test_own_password_change_needs_the_old_one_and_ends_other_sessions(login: Any) -> None:
    a, b = await login("op1"), await login("op1")
    assert (await a.post("/api/me/password", {"old": "wrong-old-password", "new": "brand-new-secret-77"})).status_code == 403
    assert (await a.post("/api/me/password", {"old": "amber-lantern-42-quartz", "new": "short"})).status_code == 400
    r = await a.post("/api/me/password", {"old": "amber-lantern-42-quartz", "new": "brand-new-secret-77"})
    assert r.status_code == 200
    assert (await a.get("/api/state")).status_code == 200
    assert (await b.get("/api/state")).status_code == 401


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    c, k = tmp / "hmi.crt", tmp / "hmi.key"
    c.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    k.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption()))
    return c, k


async def test_https_sets_secure_host_prefixed_cookies_and_hsts(ctrl: Any, users: UserStore, tmp_path: Path,
                                                                hmi_clock: Any) -> None:
    cert, key = _self_signed(tmp_path)
    app = create_app(ctrl, users, secure_cookies=True, clock=hmi_clock)
    async with HmiServer(app, "127.0.0.1", 0, certfile=cert, keyfile=key) as server:
        assert server.url.startswith("https://")
        async with httpx.AsyncClient(base_url=server.url, verify=ssl.create_default_context(cafile=str(cert))) as c:
            r = await c.post("/api/login", json={"user": "op1", "password": "amber-lantern-42-quartz"})
            assert r.status_code == 200
            cookie = r.headers["set-cookie"]
            assert cookie.startswith("__Host-plantctl_session=")
            low = cookie.lower()
            assert "secure" in low and "httponly" in low and "samesite=strict" in low
            assert r.headers["strict-transport-security"].startswith("max-age=")
            assert (await c.get("/api/session")).json()["user"] == "op1"
