"""Modbus TCP server of one station's PLC, built from its I/O list.

Theory of operation
-------------------
The register map is the I/O list: each signal owns one coil, discrete input,
input register or holding register at its 0-based wire ``offset``. Nothing else
exists, so a request touching any unmapped address gets exception 2 (illegal
data address), as a real PLC's mapped data blocks do.

pymodbus 3.16 offers two server datastores: the new ``SimData``/``SimDevice`` and
the deprecated ``ModbusServerContext``. Neither fits as is: SimDevice keeps its own
register copy (values must be pushed in), only checks bit addresses per 16-bit
word, and its ``action`` hook sees register counts rather than bit counts. So
``_StationContext`` below subclasses ``ModbusServerContext`` with
``old_simulator = True``: pymodbus 3.16 then hands every request straight to our
``async_getValues``/``async_setValues``, which answer from the plant's tag
snapshot and pass writes to the model. (pymodbus 4 removes that path: port it to a
``SimDevice(action=...)`` then; the tests in tests/sim_plc pin the behaviour.)

- Reads scale the snapshot's engineering values with ``Signal.to_raw``; the
  snapshot is recomputed once per plant step, so values are always current.
- Writes (function codes 5, 6, 15, 16, 22, 23) reach only coils and holding
  registers, by the function code's table; every address is checked first and
  every value decoded (``Signal.from_raw``) and range-checked before any is
  applied, so a bad request changes nothing (exception 2 or 3).
- Framing: pymodbus silently discards a frame whose MBAP header is wrong and
  keeps the connection, which leaves the byte stream out of step. A frame with a
  protocol id other than 0 or a length field outside 2..254 (unit id + the
  largest PDU), or more unframed bytes than pymodbus buffers, therefore closes
  that connection; the client reconnects in step.
  A request that frames correctly but does not decode gets an exception answer. Requests
  pipelined in one segment are answered one after the other (pymodbus alone parses one frame
  per receive and would leave the rest waiting for the client's next segment).
- Only the I/O list's unit id is served; another one gets exception 0x0B
  (gateway target failed to respond), like a gateway with no such slave.
- Link drop (fault F-X01): when the plant takes the station's link DOWN the
  listening socket and every connection are closed at once (clients see the
  connection drop and new connects refused); when the link comes back a new
  pymodbus server listens on the same port.
- TLS (Modbus/TCP Security): pass an ``ssl.SSLContext`` (``server_ssl_context``
  builds one from cert/key files, with client certificates required when a CA
  file is given); pymodbus's ``ModbusTlsServer`` then serves instead.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence
from pathlib import Path

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer, ModbusTlsServer
from pymodbus.server.requesthandler import ServerRequestHandler

from plantctl.iolist import CommandType, IOList, ModbusTable, Signal

from .errors import SimError, UnknownTag
from .plant import Plant

log = logging.getLogger(__name__)

# Function code -> the table it addresses, and whether it writes.
_READ_TABLE: dict[int, ModbusTable] = {
    1: ModbusTable.COIL,
    2: ModbusTable.DISCRETE_INPUT,
    3: ModbusTable.HOLDING_REGISTER,
    4: ModbusTable.INPUT_REGISTER,
    22: ModbusTable.HOLDING_REGISTER,  # mask write reads the register first
    23: ModbusTable.HOLDING_REGISTER,
}
_WRITE_TABLE: dict[int, ModbusTable] = {
    5: ModbusTable.COIL,
    15: ModbusTable.COIL,
    6: ModbusTable.HOLDING_REGISTER,
    16: ModbusTable.HOLDING_REGISTER,
    22: ModbusTable.HOLDING_REGISTER,
    23: ModbusTable.HOLDING_REGISTER,
}


def server_ssl_context(certfile: str | Path, keyfile: str | Path, cafile: str | Path | None = None) -> ssl.SSLContext:
    """A TLS 1.2+ server context; with ``cafile`` clients must present a certificate it signed
    (Modbus/TCP Security requires mutual authentication)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(certfile), str(keyfile))
    if cafile is not None:
        ctx.load_verify_locations(str(cafile))
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


class _StationContext(ModbusServerContext):
    """The datastore pymodbus calls for every request (see the module docstring)."""

    def __init__(self, plant: Plant, iol: IOList) -> None:
        # ModbusServerContext.__init__ is deliberately not called: it only builds the
        # deprecated block datastore we replace, and logs a deprecation warning.
        self.old_simulator = True
        self.simdevices = []
        self._plant = plant
        self._station = iol.station
        self._unit_id = iol.unit_id
        self._map: dict[ModbusTable, dict[int, Signal]] = {t: {} for t in ModbusTable}
        for sig in iol.signals:
            self._map[sig.table][sig.offset] = sig

    def device_ids(self) -> list[int]:
        return [self._unit_id]

    def _check_unit(self, device_id: int) -> None:
        if device_id != self._unit_id:
            raise NoSuchIdException(f"unit id {device_id} is not served (this PLC is unit {self._unit_id})")

    def _signals(self, table: ModbusTable, address: int, count: int) -> list[Signal] | None:
        block = self._map[table]
        out: list[Signal] = []
        for off in range(address, address + count):
            sig = block.get(off)
            if sig is None:
                return None
            out.append(sig)
        return out

    async def async_getValues(  # noqa: N802 - pymodbus's name
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        self._check_unit(device_id)
        table = _READ_TABLE.get(func_code) or _WRITE_TABLE.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        sigs = self._signals(table, address, count)
        if sigs is None:
            return ExcCodes.ILLEGAL_ADDRESS
        try:
            tags = self._plant.tags(self._station)
            raws = [sig.to_raw(tags[sig.tag]) for sig in sigs]
        except KeyError as exc:
            log.error("%s: the model did not report tag %s", self._station, exc)
            return ExcCodes.DEVICE_FAILURE
        if table in (ModbusTable.COIL, ModbusTable.DISCRETE_INPUT):
            return [bool(r) for r in raws]
        return raws

    async def async_setValues(  # noqa: N802 - pymodbus's name
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        self._check_unit(device_id)
        table = _WRITE_TABLE.get(func_code)
        if table is None:  # a write function code never reaches inputs; anything else is refused
            return ExcCodes.ILLEGAL_FUNCTION
        sigs = self._signals(table, address, len(values))
        if sigs is None:
            return ExcCodes.ILLEGAL_ADDRESS
        decoded: list[tuple[Signal, float | int | bool]] = []
        for sig, raw in zip(sigs, values, strict=True):
            value = _decode_command(sig, int(raw))
            if value is None:
                return ExcCodes.ILLEGAL_VALUE
            decoded.append((sig, value))
        for sig, value in decoded:
            try:
                self._plant.write(self._station, sig.tag, value)
            except UnknownTag:
                log.error("%s: model refused I/O-list command %s", self._station, sig.tag)
                return ExcCodes.ILLEGAL_ADDRESS
            except (SimError, ValueError) as exc:
                log.warning("%s: write %s=%r refused: %s", self._station, sig.tag, value, exc)
                return ExcCodes.ILLEGAL_VALUE
        return None


def _decode_command(sig: Signal, raw: int) -> float | int | bool | None:
    """The engineering value of a written raw value, or None when it is out of range."""
    if sig.is_bit:
        return bool(raw)
    if sig.type is CommandType.ENUM or sig.is_enum:
        return int(raw) if sig.states and 0 <= raw < len(sig.states) else None
    if sig.raw is not None and not sig.raw[0] <= raw <= sig.raw[1]:
        return None
    return sig.from_raw(raw)


# MBAP length field: unit id + PDU, the PDU being at most 253 bytes.
_MBAP_LENGTH_MIN, _MBAP_LENGTH_MAX = 2, 254


class _GuardedHandler(ServerRequestHandler):
    """A connection handler that drops the connection when the byte stream is out of step."""

    def datagram_received(self, data: bytes, addr: tuple[str, int] | None) -> None:
        # The receive buffer always starts on a frame boundary: pymodbus cuts consumed frames off.
        buf = self.recv_buffer + data
        reason = ""
        if len(buf) >= 6:
            protocol_id = int.from_bytes(buf[2:4], "big")
            length = int.from_bytes(buf[4:6], "big")
            if protocol_id != 0 or not _MBAP_LENGTH_MIN <= length <= _MBAP_LENGTH_MAX:
                reason = f"bad MBAP header (protocol {protocol_id}, length {length})"
        if not reason and len(buf) > self.max_buffer_size:
            reason = f"{len(buf)} bytes unframed"  # pymodbus would silently drop them
        if reason:
            log.warning("Modbus: %s; dropping the connection", reason)
            self.close()
            return
        super().datagram_received(data, addr)

    async def handle_request(self) -> None:
        # pymodbus parses one frame per receive, and sending the answer empties the receive buffer
        # (a client's habit): requests pipelined in one TCP segment would be lost. A PLC answers
        # each, so keep what followed this request and go on with it.
        pending = self.recv_buffer
        await super().handle_request()  # type: ignore[no-untyped-call]
        if pending and not self.recv_buffer and self.transport:
            self.recv_buffer = pending
            self.datagram_received(b"", None)


class _TcpServer(ModbusTcpServer):
    def callback_new_connection(self) -> ServerRequestHandler:
        return _GuardedHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)  # type: ignore[no-untyped-call]


class _TlsServer(ModbusTlsServer):
    def callback_new_connection(self) -> ServerRequestHandler:
        return _GuardedHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)  # type: ignore[no-untyped-call]


class StationModbusServer:
    """One station PLC's Modbus TCP (or TLS) server, following the plant's link state."""

    def __init__(
        self,
        plant: Plant,
        iol: IOList,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.plant = plant
        self.iol = iol
        self.station = iol.station
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._ssl = ssl_context
        self._context = _StationContext(plant, iol)
        self._server: ModbusTcpServer | None = None
        self._remove_listener: Callable[[], None] | None = None
        self._lock = asyncio.Lock()
        self._pending: set[asyncio.Task[None]] = set()
        self._running = False

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server not started")
        return self._port

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def start(self) -> None:
        self._running = True
        self._remove_listener = self.plant.add_listener(self._on_plant)
        if self.plant.link(self.station).is_up:
            await self._listen()
        elif self._requested_port == 0:
            # A station that starts with its link down still needs a known port to come back on.
            await self._listen()
            self._close()
        else:
            self._port = self._requested_port

    async def stop(self) -> None:
        self._running = False
        if self._remove_listener is not None:
            self._remove_listener()
            self._remove_listener = None
        for task in list(self._pending):
            task.cancel()
        await asyncio.gather(*self._pending, return_exceptions=True)
        async with self._lock:
            if self._server is not None:
                await self._server.shutdown()  # type: ignore[no-untyped-call]
                self._server = None

    async def settled(self) -> None:
        """Wait until the server's listening state matches the link (tests, runners)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    async def __aenter__(self) -> StationModbusServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- link following -------------------------------------------------------
    def _on_plant(self, plant: Plant) -> None:
        if not self._running:
            return
        up = plant.link(self.station).is_up
        if not up and self._server is not None:
            # Synchronous on purpose: no request may be answered once the link is down.
            self._close()
        elif up and self._server is None:
            task = asyncio.get_running_loop().create_task(self._reopen())
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)

    async def _reopen(self) -> None:
        async with self._lock:
            if self._running and self._server is None and self.plant.link(self.station).is_up:
                await self._listen()

    def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()  # closes the listening socket and every open connection
            log.info("%s Modbus server: link down, port %s closed", self.station, self._port)

    async def _listen(self) -> None:
        port = self._port if self._port is not None else self._requested_port
        address = (self.host, port)
        server: ModbusTcpServer
        if self._ssl is not None:
            server = _TlsServer(self._context, address=address, sslctx=self._ssl)
        else:
            server = _TcpServer(self._context, address=address)
        await server.serve_forever(background=True)
        transport = server.transport
        sockets = getattr(transport, "sockets", None)
        if sockets:
            self._port = int(sockets[0].getsockname()[1])
        self._server = server
        log.info("%s Modbus server listening on %s:%s (unit %s)", self.station, self.host, self._port,
                 self.iol.unit_id)
