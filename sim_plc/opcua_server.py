"""OPC-UA server of one station's PLC, built from its I/O list.

Theory of operation
-------------------
One asyncua server per station, as each real station PLC carries its own
embedded server: it has its own endpoint, application URI and certificate, and a
station's link drop (F-X01) silences that station alone. The address space is
``Objects/<station>`` (a folder, node id ``ns=<station ns>;s=<station>``) holding
one variable per I/O-list signal, node id ``ns=<station ns>;s=<opcua_node>``,
browse name the tag, description the I/O list's. Types: analog -> Double,
digital -> Boolean, enums -> Int32 index (with an ``EnumStrings`` property).

Values: ``refresh()`` pushes every value that changed since the last push, with
source and server timestamps from the plant clock's ``wall()`` (a virtual-time
run carries believable plant timestamps); ServerStatus.CurrentTime follows the
plant clock too, instead of asyncua's once-a-second wall-clock task. A plant listener wakes a background
task for it after every plant advance; tests await ``refresh()`` directly.

Writes: command_out variables are writable, inputs are not (AccessLevel, so a
write to an input gets BadUserAccessDenied). A PreWrite hook checks a command's
value (type, enum index, analog range) and fails the whole Write service with
BadOutOfRange/BadTypeMismatch when it is wrong; a PostWrite hook passes each
accepted value to ``Plant.write`` (the model). Values the server pushes itself go
through ``write_attribute_value`` and never reach those hooks.

Security (default): only Basic256Sha256 SignAndEncrypt, username/password login
checked in constant time, and a certificate validator with a trust store
(``<cert_dir>/trusted``): a client whose certificate is not there is refused.
The unsecured endpoint (SecurityPolicy None) and anonymous login exist only with
``allow_insecure=True`` (asyncua's identity tokens are server-wide, so anonymous
then works on the secure endpoint too). ``ensure_pki`` creates the server
certificates and a ready-trusted plantctl client certificate when missing; it
blocks for a moment, so it runs before serving starts.

Link drop: the listening socket and every connection close (sessions end);
when the link returns the server listens again on the same port.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import secrets
import shutil
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.callback import CallbackType, ServerItemCallback
from asyncua.common.utils import ServiceError
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.user_managers import UserManager
from cryptography.x509.oid import ExtendedKeyUsageOID

from plantctl.iolist import CommandType, IOList, Kind, Signal

from .errors import SimError
from .plant import Plant

log = logging.getLogger(__name__)

CLIENT_APP_URI = "urn:plantctl:client"
PASSWORD_ENV = "PLANTCTL_SIM_OPCUA_PASSWORD"


def server_app_uri(station: str) -> str:
    return f"urn:plantctl:sim:{station}"


# -- PKI ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pki:
    """Where the simulator keeps its OPC-UA certificates.

    ``server/<station>-cert.der`` and ``-key.pem``: each station server's identity.
    ``trusted/``: client certificates (DER or PEM) allowed to connect.
    ``client/plantctl-client-cert.der`` and ``-key.pem``: a client identity for
    plantctl, generated and trusted on first use (application URI ``urn:plantctl:client``).
    """

    root: Path

    @property
    def trusted(self) -> Path:
        return self.root / "trusted"

    def server_cert(self, station: str) -> Path:
        return self.root / "server" / f"{station}-cert.der"

    def server_key(self, station: str) -> Path:
        return self.root / "server" / f"{station}-key.pem"

    @property
    def client_cert(self) -> Path:
        return self.root / "client" / "plantctl-client-cert.der"

    @property
    def client_key(self) -> Path:
        return self.root / "client" / "plantctl-client-key.pem"

    @property
    def password_file(self) -> Path:
        return self.root / "sim-opcua-password"


async def ensure_pki(cert_dir: str | Path, stations: list[str], host_name: str | None = None) -> Pki:
    """Create any missing certificate: one per station server, and the trusted plantctl client's."""
    pki = Pki(Path(cert_dir))
    host = host_name or socket.gethostname()
    for sub in (pki.root / "server", pki.root / "client", pki.trusted):
        sub.mkdir(parents=True, exist_ok=True)
    for station in stations:
        await setup_self_signed_certificate(
            pki.server_key(station),
            pki.server_cert(station),
            server_app_uri(station),
            host,
            [ExtendedKeyUsageOID.SERVER_AUTH],
            {"commonName": f"plantctl sim {station}", "organizationName": "plantctl"},
        )
    if not pki.client_cert.exists():
        await setup_self_signed_certificate(
            pki.client_key,
            pki.client_cert,
            CLIENT_APP_URI,
            host,
            [ExtendedKeyUsageOID.CLIENT_AUTH],
            {"commonName": "plantctl client", "organizationName": "plantctl"},
        )
        shutil.copyfile(pki.client_cert, pki.trusted / pki.client_cert.name)
    for key in [pki.client_key, *(pki.server_key(s) for s in stations)]:
        key.chmod(0o600)
    return pki


def load_or_create_password(cert_dir: str | Path) -> str:
    """The OPC-UA password: $PLANTCTL_SIM_OPCUA_PASSWORD, else the one stored in the PKI
    folder, else a new random one stored there (mode 0600) for the controller to use."""
    env = os.environ.get(PASSWORD_ENV)
    if env:
        return env
    path = Pki(Path(cert_dir)).password_file
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password


@dataclass(frozen=True)
class OpcuaSecurity:
    cert_dir: Path
    username: str = "plantctl"
    password: str = ""
    allow_insecure: bool = False

    def __post_init__(self) -> None:
        if not self.password:
            raise ValueError("an OPC-UA password is required (see load_or_create_password)")


class _PasswordUserManager(UserManager):
    """One configured user; anonymous only when the insecure endpoint is enabled."""

    def __init__(self, username: str, password: str, allow_anonymous: bool) -> None:
        self._user = username.encode()
        self._password = password.encode()
        self._allow_anonymous = allow_anonymous

    def get_user(
        self, iserver: Any, username: str | None = None, password: str | None = None, certificate: Any = None
    ) -> User | None:
        if username is None:
            return User(role=UserRole.User, name="anonymous") if self._allow_anonymous else None
        ok_user = hmac.compare_digest(username.encode(), self._user)
        ok_pass = hmac.compare_digest((password or "").encode(), self._password)
        if ok_user and ok_pass:
            # Never Admin: asyncua skips the AccessLevel check for admins, which would
            # let a client write to inputs.
            return User(role=UserRole.User, name=username)
        log.warning("OPC-UA login refused for user %r", username)
        return None


# -- the server -------------------------------------------------------------------------------
def _variant_type(sig: Signal) -> ua.VariantType:
    if sig.kind is Kind.DIGITAL_IN or sig.type is CommandType.BOOL:
        return ua.VariantType.Boolean
    if sig.is_enum:
        return ua.VariantType.Int32
    return ua.VariantType.Double


def _coerce(vtype: ua.VariantType, value: Any) -> Any:
    if vtype is ua.VariantType.Boolean:
        return bool(value)
    if vtype is ua.VariantType.Int32:
        return int(value)
    return float(value)


class StationOpcuaServer:
    """One station PLC's OPC-UA server, following the plant (values and link)."""

    def __init__(
        self,
        plant: Plant,
        iol: IOList,
        security: OpcuaSecurity,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.plant = plant
        self.iol = iol
        self.station = iol.station
        self.security = security
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self.server: Server | None = None
        self.ns: int = 0
        self._nodes: dict[str, ua.NodeId] = {}  # tag -> node id
        self._by_node: dict[ua.NodeId, Signal] = {}
        self._vtypes: dict[str, ua.VariantType] = {}
        self._last: dict[str, Any] = {}
        self._listening = False
        self._running = False
        self._wake = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        self._remove_listener: Callable[[], None] | None = None
        self._lock = asyncio.Lock()

    # -- properties -------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/plantctl/{self.station}"

    @property
    def application_uri(self) -> str:
        return server_app_uri(self.station)

    @property
    def listening(self) -> bool:
        return self._listening

    def node_id(self, tag: str) -> ua.NodeId:
        return self._nodes[tag]

    # -- life cycle ---------------------------------------------------------------
    async def start(self) -> None:
        sec = self.security
        pki = await ensure_pki(sec.cert_dir, [self.station])
        server = Server(
            user_manager=_PasswordUserManager(sec.username, sec.password, allow_anonymous=sec.allow_insecure)
        )
        await server.init()
        # The server's own clock task would stamp ServerStatus.CurrentTime from the wall
        # clock once a second (and makes stop() wait up to a second for it); refresh()
        # stamps it with plant time instead.
        server.disable_clock(True)
        server.set_server_name(f"plantctl sim {self.station}")
        server.set_endpoint(f"opc.tcp://{self.host}:{self._requested_port}/plantctl/{self.station}")
        await server.set_application_uri(self.application_uri)
        server.product_uri = "urn:plantctl:sim"
        await server.load_certificate(str(pki.server_cert(self.station)))
        await server.load_private_key(str(pki.server_key(self.station)))
        policies = [ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt]
        tokens: list[type] = [ua.UserNameIdentityToken]
        if sec.allow_insecure:
            policies.append(ua.SecurityPolicyType.NoSecurity)
            tokens.append(ua.AnonymousIdentityToken)
        server.set_security_policy(policies)
        server.set_identity_tokens(tokens)
        trust = TrustStore([pki.trusted], [])
        await trust.load()
        validator = CertificateValidator(
            CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_CLIENT, trust
        )
        server.set_certificate_validator(validator)
        self.server = server
        await self._build_address_space(server)
        server.subscribe_server_callback(CallbackType.PreWrite, self._pre_write)
        server.subscribe_server_callback(CallbackType.PostWrite, self._post_write)
        await self.refresh()
        await server.start()
        bserver = server.bserver
        assert bserver is not None
        self._port = int(bserver.port)
        self._listening = True
        self._running = True
        if not self.plant.link(self.station).is_up:
            await self._go_down()
        self._remove_listener = self.plant.add_listener(self._on_plant)
        self._pump = asyncio.get_running_loop().create_task(self._pump_loop())
        log.info("%s OPC-UA server at %s", self.station, self.endpoint_url)

    async def stop(self) -> None:
        self._running = False
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        if self._pump is not None:
            self._pump.cancel()
            await asyncio.gather(self._pump, return_exceptions=True)
            self._pump = None
        if self.server is not None:
            async with self._lock:
                await self.server.stop()
            self.server = None
        self._listening = False

    async def __aenter__(self) -> StationOpcuaServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _build_address_space(self, server: Server) -> None:
        self.ns = await server.register_namespace(self.iol.namespace_uri)
        ns = self.ns
        folder = await server.nodes.objects.add_folder(
            ua.NodeId(self.station, ns), ua.QualifiedName(self.station, ns)
        )
        if self.iol.title:
            await folder.write_attribute(
                ua.AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(self.iol.title)))
            )
        tags = self.plant.tags(self.station)
        for sig in self.iol.signals:
            vtype = _variant_type(sig)
            initial = _coerce(vtype, tags.get(sig.tag, False if vtype is ua.VariantType.Boolean else 0))
            node_id = ua.NodeId(sig.opcua_node, ns)
            var = await folder.add_variable(node_id, ua.QualifiedName(sig.tag, ns), ua.Variant(initial, vtype))
            await var.write_attribute(
                ua.AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(sig.description)))
            )
            if sig.is_enum and sig.states:
                await var.add_property(
                    ua.NodeId(f"{sig.opcua_node}.EnumStrings", ns),
                    ua.QualifiedName("EnumStrings", 0),
                    ua.Variant([ua.LocalizedText(s) for s in sig.states], ua.VariantType.LocalizedText),
                )
            if sig.kind is Kind.COMMAND_OUT:
                await var.set_writable()
            self._nodes[sig.tag] = node_id
            self._by_node[node_id] = sig
            self._vtypes[sig.tag] = vtype

    # -- values ---------------------------------------------------------------------
    async def refresh(self) -> int:
        """Push every value that changed since the last push; returns how many."""
        server = self.server
        if server is None:
            return 0
        tags = self.plant.tags(self.station)
        stamp = datetime.fromtimestamp(self.plant.wall(), UTC)
        await server.write_attribute_value(
            ua.NodeId(ua.ObjectIds.Server_ServerStatus_CurrentTime),
            ua.DataValue(ua.Variant(stamp, ua.VariantType.DateTime), SourceTimestamp=stamp, ServerTimestamp=stamp),
        )
        pushed = 0
        for tag, node_id in self._nodes.items():
            if tag not in tags:
                continue
            value = _coerce(self._vtypes[tag], tags[tag])
            if tag in self._last and self._last[tag] == value:
                continue
            self._last[tag] = value
            dv = ua.DataValue(
                ua.Variant(value, self._vtypes[tag]),
                StatusCode=ua.StatusCode(ua.StatusCodes.Good),
                SourceTimestamp=stamp,
                ServerTimestamp=stamp,
            )
            await server.write_attribute_value(node_id, dv)
            pushed += 1
        return pushed

    async def _pump_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self._follow_link()
            await self.refresh()

    def _on_plant(self, plant: Plant) -> None:
        self._wake.set()

    async def settled(self) -> None:
        """Bring the listening state and the values in line with the plant now."""
        await self._follow_link()
        await self.refresh()

    async def _follow_link(self) -> None:
        async with self._lock:
            if not self._running or self.server is None:
                return
            up = self.plant.link(self.station).is_up
            if up and not self._listening:
                bserver = self.server.bserver
                assert bserver is not None
                await bserver.start()  # same host and port as before
                self._listening = True
                log.info("%s OPC-UA server: link up again on port %s", self.station, self._port)
            elif not up and self._listening:
                await self._go_down()

    async def _go_down(self) -> None:
        assert self.server is not None and self.server.bserver is not None
        await self.server.bserver.stop()  # closes every connection and the listening socket
        self._listening = False
        log.info("%s OPC-UA server: link down, port %s closed", self.station, self._port)

    # -- client writes ----------------------------------------------------------------
    def _command_writes(self, event: ServerItemCallback) -> list[tuple[int, Signal, Any]]:
        out: list[tuple[int, Signal, Any]] = []
        for i, wv in enumerate(event.request_params.NodesToWrite):
            sig = self._by_node.get(wv.NodeId)
            if sig is None or sig.kind is not Kind.COMMAND_OUT or wv.AttributeId != ua.AttributeIds.Value:
                continue
            variant = wv.Value.Value if wv.Value is not None else None
            out.append((i, sig, None if variant is None else variant.Value))
        return out

    async def _pre_write(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        if not event.is_external:
            return
        for _, sig, value in self._command_writes(event):
            vtype = self._vtypes[sig.tag]
            if vtype is ua.VariantType.Boolean:
                if not isinstance(value, bool):
                    raise ServiceError(ua.StatusCodes.BadTypeMismatch)
            elif isinstance(value, bool) or not isinstance(value, int | float):
                raise ServiceError(ua.StatusCodes.BadTypeMismatch)
            elif vtype is ua.VariantType.Int32:
                if not sig.states or not 0 <= int(value) < len(sig.states):
                    raise ServiceError(ua.StatusCodes.BadOutOfRange)
            elif sig.range is not None and not sig.range[0] <= float(value) <= sig.range[1]:
                raise ServiceError(ua.StatusCodes.BadOutOfRange)

    async def _post_write(self, event: ServerItemCallback, _dispatcher: Any) -> None:
        if not event.is_external:
            return
        results = event.response_params or []
        for i, sig, value in self._command_writes(event):
            if i < len(results) and not results[i].is_good():
                continue
            try:
                self.plant.write(self.station, sig.tag, _coerce(self._vtypes[sig.tag], value))
            except (SimError, ValueError) as exc:
                log.warning("%s: OPC-UA write %s=%r refused by the model: %s", self.station, sig.tag, value, exc)
        self._wake.set()
