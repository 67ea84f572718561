"""OPC-UA driver for one station's PLC: subscriptions, security, supervision.

Theory of operation
-------------------
Session. The driver logs in with a user name and password over a secure
channel, Basic256Sha256 with SignAndEncrypt by default (``security="None"`` only
when explicitly asked). Its application instance certificate lives in
``cert_dir`` (``plantctl-client-cert.der`` / ``plantctl-client-key.pem``) and is
generated on first use with the same ``application_uri`` it connects with (a
server rejects a certificate whose URI differs). The server must trust it: copy
the certificate into the server's trust list once.

Data. Every signal of the I/O list is a node ``ns=<IOList.namespace_uri>;s=
<Signal.opcua_node>``; one subscription monitors them all and each data-change
notification becomes a Reading:

- the server's StatusCode sets the quality: Good -> the value's own checks
  (``reading_from_value``: NaN/Inf, range, 4-20 mA live zero); Uncertain* -> at
  best UNCERTAIN/DEVICE_STATUS; Bad* -> BAD/DEVICE_STATUS (the last value kept for
  display). A NaN or infinite number is BAD/SENSOR_FAULT whatever the status says;
- a notification that cannot be turned into a Reading (any exception while
  converting it) makes that tag BAD/DEVICE_STATUS, logged once per tag until it
  converts again. asyncua would otherwise log and swallow the exception, no
  reading would be emitted, and the tag would keep its last good value;
- ``Reading.t`` is the controller clock when the notification arrived, never
  the server's SourceTimestamp: staleness, deadlines and the Modbus readings
  must all be judged on one time base, and a PLC's clock can be wrong or jump.
  The SourceTimestamp is kept in ``source_timestamps`` for display only.

Supervision. A lost link must not look like a quiet plant (a subscription
sends nothing when nothing changes). Every ``keepalive`` seconds of the clock
the driver reads the server's ``ServerStatus/CurrentTime`` with a ``timeout``;
asyncua's connection-lost callback and a Bad subscription status cut that wait
short. A successful probe proves the session, not the values: it restamps only
the tags whose last notification converted to a non-BAD Reading (``_confirmed``);
a tag whose last update failed or was BAD is never restamped, so it goes stale
rather than staying fresh on an old value. (A server whose own data source froze
still answers the probe and keeps the values fresh: only a PLC I/O heartbeat tag
would catch that, which is not supervised yet, see docs/io-lists.md "Known limits".)
Any failure is an outage: every tag BAD/COMMS_LOST at once,
``on_link(False)`` once, the client torn down, and a *new* client, session and
subscription built after a capped exponential backoff (a restarted server has
forgotten the old session, so resubscribing from scratch is the only reliable
path). Notifications from a torn-down session carry an old generation number
and are dropped, so a late "Good" can never overwrite the outage's BAD.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
from dataclasses import replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asyncua import ua
from asyncua.client.client import Client
from asyncua.common.node import Node
from asyncua.common.subscription import DataChangeNotif, Subscription
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from asyncua.ua.object_ids import ObjectIds
from asyncua.ua.uaerrors import UaStatusCodeError
from cryptography.x509.oid import ExtendedKeyUsageOID

from ..clock import Clock
from ..errors import DriverError, DriverTimeout
from ..iolist import CommandType, IOList, Kind, Signal
from ..tags import Quality, Reading, Reason, Value
from .base import (
    Driver,
    LinkCallback,
    LinkStats,
    ReadingsCallback,
    cancel_and_wait,
    command_signal,
    is_non_finite,
    readable_signals,
    reading_from_value,
)

log = logging.getLogger(__name__)

CLIENT_APPLICATION_URI = "urn:plantctl:client"
CERT_FILE = "plantctl-client-cert.der"
KEY_FILE = "plantctl-client-key.pem"


async def ensure_client_certificate(
    cert_dir: str | Path, application_uri: str = CLIENT_APPLICATION_URI
) -> tuple[Path, Path]:
    """The client's certificate (DER) and key (PEM) in ``cert_dir``, created when missing or
    invalid (asyncua regenerates one whose URI or host name no longer matches)."""
    folder = Path(cert_dir)
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = folder / CERT_FILE, folder / KEY_FILE
    await setup_self_signed_certificate(
        key,
        cert,
        application_uri,
        socket.gethostname(),
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        {"commonName": "plantctl client", "organizationName": "plantctl"},
    )
    key.chmod(0o600)
    return cert, key


class _RedactSecrets(logging.Filter):
    """Takes the OPC-UA passwords out of asyncua's request log.

    asyncua logs every request it sends at DEBUG, ActivateSession included; inside a
    SignAndEncrypt channel the server asks for the password token unencrypted (the channel is),
    so that log line holds the password in clear. Whoever turns DEBUG on to diagnose a PLC link
    must not find the password in the log. A logger's filters run only when the record is logged
    at all, so this costs nothing unless DEBUG is on."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, secret: str) -> None:
        if secret:
            self.secrets.update({secret, repr(secret.encode())[2:-1]})  # as text, and as bytes print it

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            if any(s in text for s in self.secrets):
                for s in sorted(self.secrets, key=len, reverse=True):
                    text = text.replace(s, "***")
                record.msg, record.args = text, None
        return True


_REDACT = _RedactSecrets()
for _name in ("asyncua.client.ua_client.UASocketProtocol", "asyncua.client.ua_client.UaClient",
              "asyncua.client.client"):
    logging.getLogger(_name).addFilter(_REDACT)


class OpcUaSecurity(StrEnum):
    BASIC256SHA256_SIGN_AND_ENCRYPT = "Basic256Sha256_SignAndEncrypt"
    NONE = "None"


class _LinkFailure(Exception):
    """Internal: the link failed; the message is the detail reported to on_link."""


def _raise_if_cancelled() -> None:
    """Re-raise a cancellation that was swallowed on its way in.

    Python 3.11's ``asyncio.wait_for`` drops a cancel that races with its inner result,
    and asyncua's own clean-up swallows a CancelledError that arrives while it awaits
    its tasks. Either would leave this driver's task running after ``stop()``. The task
    still counts the request (``Task.cancelling()``), so honour it at the next step.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def status_quality(code: ua.StatusCode) -> Quality:
    """OPC-UA StatusCode severity to Quality (Good, Uncertain*, Bad*)."""
    if code.is_good():
        return Quality.GOOD
    if code.is_uncertain():
        return Quality.UNCERTAIN
    return Quality.BAD


def _default_variant(sig: Signal) -> ua.VariantType:
    """The type sim_plc's server declares (Boolean / Int32 / Double); replaced at connect by
    the node's own DataType when the server tells it."""
    if sig.is_bit:
        return ua.VariantType.Boolean
    if sig.is_enum:
        return ua.VariantType.Int32
    return ua.VariantType.Double


def _coerce(sig: Signal, value: Any) -> Value | None:
    """A notification's value in the I/O list's terms, or None when it has the wrong type.
    A NaN or infinite float comes back as it is, for any non-bit signal (an enum too):
    ``reading_from_value`` judges it BAD/SENSOR_FAULT, and ``int()`` of it would raise."""
    if sig.is_bit:
        return value if isinstance(value, bool) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if is_non_finite(value):
        return float(value)
    if sig.is_enum:
        return int(value)
    return float(value)


class _SubHandler:
    """asyncua subscription callbacks, tagged with the session generation they belong to."""

    def __init__(self, driver: OpcUaDriver, generation: int) -> None:
        self._driver = driver
        self._gen = generation

    def datachange_notification(self, node: Node, val: Any, data: DataChangeNotif) -> None:
        self._driver._on_data(self._gen, node, val, data)

    def status_change_notification(self, status: ua.StatusChangeNotification) -> None:
        self._driver._on_sub_status(self._gen, status)


class OpcUaDriver:
    """Subscribes to one station's PLC over OPC-UA; see the module docstring."""

    def __init__(
        self,
        iolist: IOList,
        url: str,
        clock: Clock,
        on_readings: ReadingsCallback,
        on_link: LinkCallback,
        *,
        user: str,
        password: str,
        cert_dir: str | Path,
        server_cert: str | Path | None = None,
        security: OpcUaSecurity | str = OpcUaSecurity.BASIC256SHA256_SIGN_AND_ENCRYPT,
        publishing_interval_ms: float = 100.0,
        timeout: float = 2.0,
        keepalive: float = 0.5,
        connect_timeout: float | None = None,
        backoff_initial: float = 0.5,
        backoff_max: float = 10.0,
        application_uri: str = CLIENT_APPLICATION_URI,
    ) -> None:
        if not timeout > 0 or not keepalive > 0 or not publishing_interval_ms > 0:
            raise ValueError("timeout, keepalive and publishing_interval_ms must be positive")
        if not 0 < backoff_initial <= backoff_max:
            raise ValueError("need 0 < backoff_initial <= backoff_max")
        self.iolist = iolist
        self.station = iolist.station
        self.url = url
        self.user = user
        self._password = password
        _REDACT.add(password)
        self.cert_dir = Path(cert_dir)
        self.server_cert = Path(server_cert) if server_cert is not None else None
        self.security = OpcUaSecurity(security)
        self.publishing_interval_ms = publishing_interval_ms
        self.timeout = timeout
        self.keepalive = keepalive
        self.connect_timeout = connect_timeout if connect_timeout is not None else 4 * timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.application_uri = application_uri
        self.stats = LinkStats()
        # Display only: Reading.t is the controller clock (see the module docstring).
        self.source_timestamps: dict[str, datetime] = {}
        self._clock = clock
        self._on_readings = on_readings
        self._on_link = on_link
        self._signals = readable_signals(iolist)
        self._by_node: dict[str, Signal] = {}  # NodeId.to_string() -> signal (filled per session)
        self._variants: dict[str, ua.VariantType] = {s.tag: _default_variant(s) for s in self._signals}
        self._nodes: dict[str, Node] = {}
        self._last: dict[str, Value] = {s.tag: (False if s.is_bit else 0.0) for s in self._signals}
        # The last reading of each tag that a notification of the current session confirmed
        # (converted, not BAD): the only ones a keepalive may restamp (see _confirm_unchanged).
        self._confirmed: dict[str, Reading] = {}
        self._failing: set[str] = set()  # tags whose conversion failed (logged once per streak)
        self._client: Client | None = None
        self._sub: Subscription | None = None
        self._generation = 0
        self._lost: asyncio.Event | None = None
        self._lost_detail = ""
        self._task: asyncio.Task[None] | None = None
        self._link_up = False
        self._ever_up = False
        self._down_reported = False

    @property
    def link_up(self) -> bool:
        return self._link_up

    @property
    def cert_path(self) -> Path:
        return self.cert_dir / CERT_FILE

    @property
    def key_path(self) -> Path:
        return self.cert_dir / KEY_FILE

    async def ensure_certificate(self) -> Path:
        """Create the client certificate and key in ``cert_dir`` when missing or invalid
        (blocks the loop for a moment: call before scanning starts). Returns the certificate."""
        cert, _ = await ensure_client_certificate(self.cert_dir, self.application_uri)
        return cert

    # -- lifecycle ----------------------------------------------------------
    async def start(self) -> None:
        if self._task is not None and not self._task.done():
            return
        if self.security is not OpcUaSecurity.NONE:
            await self.ensure_certificate()
        self._lost = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"opcua:{self.station}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        await self._teardown()
        self._link_up = False

    async def __aenter__(self) -> OpcUaDriver:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- writes -------------------------------------------------------------
    async def write(self, tag: str, value: Value) -> None:
        """Write one command_out with the node's data type; returns once the server accepted it."""
        sig = command_signal(self.iolist, self.station, tag)
        node = self._nodes.get(tag)
        if node is None or not self._link_up:
            raise DriverError(f"{self.station}: link down, {tag} not written")
        vtype = self._variants[tag]
        variant = ua.Variant(_write_value(sig, value, vtype), vtype)
        self.stats.requests += 1
        try:
            await asyncio.wait_for(node.write_value(ua.DataValue(variant)), self.timeout)
            _raise_if_cancelled()
        except TimeoutError as exc:
            self.stats.failures += 1
            raise DriverTimeout(f"{self.station}: no answer writing {tag} within {self.timeout} s") from exc
        except UaStatusCodeError as exc:
            self.stats.failures += 1
            raise DriverError(f"{self.station}: server refused {tag}={value!r}: {exc}") from exc
        except Exception as exc:  # ConnectionError, OSError, asyncua's own errors
            self.stats.failures += 1
            raise DriverError(f"{self.station}: writing {tag} failed: {exc!r}") from exc

    # -- the link task ------------------------------------------------------------
    async def _run(self) -> None:
        delay = self.backoff_initial
        while True:
            try:
                await self._session()
            except _LinkFailure as exc:
                if self._link_up:
                    delay = self.backoff_initial  # the link had been healthy: start the backoff afresh
                # BAD first, clean-up after: closing a session over a dead link can take a timeout.
                self._outage(str(exc))
            finally:
                await self._teardown()
            _raise_if_cancelled()
            await self._clock.sleep_until(self._clock.now() + delay)
            delay = min(delay * 2, self.backoff_max)

    async def _session(self) -> None:
        """Connect, subscribe, then watch the link; returns only by raising _LinkFailure."""
        assert self._lost is not None
        self._lost.clear()
        self._lost_detail = ""
        self._generation += 1
        try:
            await asyncio.wait_for(self._connect_and_subscribe(self._generation), self.connect_timeout)
        except TimeoutError:
            raise _LinkFailure(f"connect to {self.url} timed out after {self.connect_timeout} s") from None
        except _LinkFailure:
            raise
        except UaStatusCodeError as exc:
            # BadUserAccessDenied, BadIdentityTokenRejected, BadSecurityChecksFailed...: name the code.
            raise _LinkFailure(f"server refused the session: {type(exc).__name__}: {exc}") from None
        except Exception as exc:
            raise _LinkFailure(f"connect to {self.url} failed: {exc!r}") from None
        _raise_if_cancelled()
        self._set_up()
        await self._watch()

    async def _connect_and_subscribe(self, generation: int) -> None:
        self._confirmed.clear()  # a new session confirms its values afresh
        client = Client(self.url, timeout=self.timeout, auto_reconnect=False)
        self._client = client
        client.application_uri = self.application_uri
        client.set_user(self.user)
        client.set_password(self._password)
        if self.security is OpcUaSecurity.BASIC256SHA256_SIGN_AND_ENCRYPT:
            await client.set_security(
                SecurityPolicyBasic256Sha256,
                str(self.cert_path),
                str(self.key_path),
                server_certificate=str(self.server_cert) if self.server_cert is not None else None,
                mode=ua.MessageSecurityMode.SignAndEncrypt,
            )
        client.connection_lost_callback = self._connection_lost
        await client.connect()
        ns = await client.get_namespace_index(self.iolist.namespace_uri)
        nodes = {s.tag: client.get_node(ua.NodeId(ua.String(s.opcua_node), ua.Int16(ns))) for s in self._signals}
        self._by_node = {nodes[s.tag].nodeid.to_string(): s for s in self._signals}
        for sig in self._signals:
            if sig.kind is Kind.COMMAND_OUT:
                try:
                    self._variants[sig.tag] = await nodes[sig.tag].read_data_type_as_variant_type()
                except Exception:  # keep the I/O list's default; the write will tell if it is wrong
                    log.warning("%s: cannot read the data type of %s", self.station, sig.tag, exc_info=True)
        sub = await client.create_subscription(self.publishing_interval_ms, _SubHandler(self, generation))
        self._sub = sub
        handles = await sub.subscribe_data_change(
            [nodes[s.tag] for s in self._signals], sampling_interval=ua.Double(self.publishing_interval_ms)
        )
        t = self._clock.now()
        refused: list[tuple[str, Reading]] = []
        for sig, handle in zip(self._signals, handles, strict=True):
            if isinstance(handle, ua.StatusCode):
                log.error("%s: cannot monitor %s (%s): %s", self.station, sig.tag, sig.opcua_node, handle)
                refused.append((sig.tag, Reading(self._last[sig.tag], Quality.BAD, t, Reason.DEVICE_STATUS)))
                self._confirmed.pop(sig.tag, None)
        self._nodes = nodes
        self._emit(refused)

    async def _watch(self) -> None:
        """The keepalive: a light read on the clock, cut short when asyncua reports a loss."""
        assert self._lost is not None
        client = self._client
        assert client is not None
        probe = client.get_node(ua.NodeId(ua.Int32(ObjectIds.Server_ServerStatus_CurrentTime)))
        while True:
            await self._sleep_or_lost(self._clock.now() + self.keepalive)
            if self._lost.is_set():
                raise _LinkFailure(self._lost_detail or "connection lost")
            self.stats.requests += 1
            try:
                await asyncio.wait_for(probe.read_value(), self.timeout)
                _raise_if_cancelled()
            except TimeoutError:
                raise _LinkFailure(f"keepalive: no answer within {self.timeout} s") from None
            except Exception as exc:
                raise _LinkFailure(f"keepalive failed: {exc!r}") from None
            self._confirm_unchanged()

    def _confirm_unchanged(self) -> None:
        """A subscription is silent while nothing changes. After a keepalive proves the
        session alive, every value the subscription confirmed and did not report otherwise
        is still current: restamp it, so an unchanging good value does not go stale in the
        tag table while a dead link still does (its keepalive fails and the outage marks
        everything BAD). Only ``_confirmed`` is restamped: a tag whose last notification
        was BAD or failed to convert keeps its old time and goes stale."""
        if not self._link_up:
            return
        t = self._clock.now()
        fresh = [(tag, replace(r, t=t)) for tag, r in self._confirmed.items()]
        self._confirmed.update(fresh)
        self._emit(fresh)

    async def _sleep_or_lost(self, deadline: float) -> None:
        assert self._lost is not None
        loop = asyncio.get_running_loop()
        sleeper = loop.create_task(self._clock.sleep_until(deadline))
        waiter = loop.create_task(self._lost.wait())
        try:
            await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waiter):
                task.cancel()
            await asyncio.gather(sleeper, waiter, return_exceptions=True)

    async def _teardown(self) -> None:
        client, self._client = self._client, None
        self._sub = None
        self._nodes = {}
        self._confirmed.clear()  # nothing is confirmed without a session
        if client is None:
            return
        self._generation += 1  # anything the old session still delivers is dropped
        try:
            # disconnect() closes the session, the channel and the socket, and ends
            # asyncua's own tasks; on a dead server it fails fast or times out.
            await asyncio.wait_for(client.disconnect(), self.timeout)
        except Exception:
            log.debug("%s: disconnect after a failure raised", self.station, exc_info=True)
            client.disconnect_socket()

    async def _connection_lost(self, exc: Exception) -> None:
        self._signal_lost(f"connection lost: {exc!r}")

    def _signal_lost(self, detail: str) -> None:
        if self._lost is not None and not self._lost.is_set():
            self._lost_detail = detail
            self._lost.set()

    # -- notifications -----------------------------------------------------------
    def _on_data(self, generation: int, node: Node, val: Any, data: DataChangeNotif) -> None:
        if generation != self._generation:
            return  # from a session already torn down
        sig = self._by_node.get(node.nodeid.to_string())
        if sig is None:
            return
        # The first notifications can overtake the end of the connect sequence: report the
        # link up first, so nobody sees GOOD values on a link still marked down.
        self._set_up()
        # The controller's clock at receipt, not dv.SourceTimestamp: staleness is judged on
        # one time base for every driver, and a PLC's clock may be wrong or jump.
        t = self._clock.now()
        try:
            reading = self._convert(sig, val, data, t)
        except Exception:
            # Whatever the cause (a value no check foresaw, a malformed notification), this
            # tag's state is unknown now. Raised out of this handler, asyncua would log and
            # swallow it, and the tag would keep its last good reading, restamped fresh by
            # every keepalive: say BAD instead, and log once until it converts again.
            if sig.tag not in self._failing:
                self._failing.add(sig.tag)
                log.exception("%s: cannot convert a notification of %s (%s): BAD until it converts",
                              self.station, sig.tag, sig.opcua_node)
            self._confirmed.pop(sig.tag, None)
            self._emit([(sig.tag, Reading(self._last[sig.tag], Quality.BAD, t, Reason.DEVICE_STATUS))])
            return
        self._failing.discard(sig.tag)
        if reading.quality is Quality.BAD:
            self._confirmed.pop(sig.tag, None)
        else:
            self._confirmed[sig.tag] = reading
        self._emit([(sig.tag, reading)])

    def _convert(self, sig: Signal, val: Any, data: DataChangeNotif, t: float) -> Reading:
        """One notification as a Reading; may raise on anything unforeseen (see _on_data)."""
        dv = data.monitored_item.Value
        code = dv.StatusCode if dv is not None and dv.StatusCode is not None else ua.StatusCode()
        if dv is not None and dv.SourceTimestamp is not None:
            self.source_timestamps[sig.tag] = dv.SourceTimestamp
        return self._reading(sig, val, code, t)

    def _reading(self, sig: Signal, val: Any, code: ua.StatusCode, t: float) -> Reading:
        quality = status_quality(code)
        value = _coerce(sig, val)
        if quality is Quality.BAD or value is None:
            # The server says the value is bad, or sent something that is not this signal's type.
            return Reading(self._last[sig.tag], Quality.BAD, t, Reason.DEVICE_STATUS)
        if is_non_finite(value):
            # BAD/SENSOR_FAULT (reading_from_value), shown with the last finite value: a NaN
            # is not a value to display, nor to keep for a later BAD status.
            return replace(reading_from_value(sig, value, t), value=self._last[sig.tag])
        self._last[sig.tag] = value
        r = reading_from_value(sig, value, t)
        if quality is Quality.UNCERTAIN and r.quality is Quality.GOOD:
            return Reading(value, Quality.UNCERTAIN, t, Reason.DEVICE_STATUS)
        return r

    def _on_sub_status(self, generation: int, status: ua.StatusChangeNotification) -> None:
        if generation != self._generation:
            return
        if not status.Status.is_good():
            self._signal_lost(f"subscription status {status.Status}")

    # -- link state and callbacks ---------------------------------------------------
    def _set_up(self) -> None:
        if self._link_up:
            return
        if self._ever_up:
            self.stats.reconnects += 1
        self._link_up = self._ever_up = True
        self._down_reported = False
        log.info("%s: OPC-UA link up (%s)", self.station, self.url)
        self._call_link(True, self._clock.now(), f"subscribed at {self.url}")

    def _outage(self, detail: str) -> None:
        self.stats.failures += 1
        self.stats.last_error = detail
        if self._down_reported:
            return
        self._link_up = False
        self._down_reported = True
        self._confirmed.clear()
        t = self._clock.now()
        reason = Reason.COMMS_LOST if self._ever_up else Reason.NOT_CONNECTED
        self._emit([(s.tag, Reading(self._last[s.tag], Quality.BAD, t, reason)) for s in self._signals])
        log.warning("%s: OPC-UA link down: %s", self.station, detail)
        self._call_link(False, t, detail)

    def _emit(self, readings: list[tuple[str, Reading]]) -> None:
        if not readings:
            return
        try:
            self._on_readings(readings)
        except Exception:
            log.exception("%s: on_readings callback failed", self.station)

    def _call_link(self, up: bool, t: float, detail: str) -> None:
        try:
            self._on_link(up, t, detail)
        except Exception:
            log.exception("%s: on_link callback failed", self.station)


def _write_value(sig: Signal, value: Value, vtype: ua.VariantType) -> bool | int | float:
    """The Python value for ``vtype``, refusing what the server would refuse anyway."""
    if vtype is ua.VariantType.Boolean:
        if not isinstance(value, bool | int) or value not in (0, 1):
            raise DriverError(f"{sig.tag}: a bool command takes true/false, got {value!r}")
        return bool(value)
    if sig.type is CommandType.ENUM or vtype in _INTEGER_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            raise DriverError(f"{sig.tag}: an enum command takes a state index, got {value!r}")
        n = len(sig.states or [])
        if sig.states is not None and not 0 <= value < n:
            raise DriverError(f"{sig.tag}: state index {value} outside 0..{n - 1}")
        return value
    v = float(value)
    if not math.isfinite(v) or (sig.range is not None and not sig.range[0] <= v <= sig.range[1]):
        raise DriverError(f"{sig.tag}: {value!r} outside the range {sig.range}")
    return v


_INTEGER_TYPES = frozenset(
    {
        ua.VariantType.SByte,
        ua.VariantType.Byte,
        ua.VariantType.Int16,
        ua.VariantType.UInt16,
        ua.VariantType.Int32,
        ua.VariantType.UInt32,
        ua.VariantType.Int64,
        ua.VariantType.UInt64,
    }
)


if TYPE_CHECKING:  # mypy proves the class satisfies the Driver protocol of base.py

    def _is_a_driver(d: OpcUaDriver) -> Driver:
        return d
