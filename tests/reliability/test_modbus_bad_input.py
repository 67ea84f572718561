"""Bad input on Modbus, both ends: the simulator's server never dies, the driver never crashes.

Beyond what tests/sim_plc/test_servers.py (a few malformed frames, unmapped addresses, one wrong
unit id, TLS) and tests/plantctl/fieldbus/test_modbus.py (exception, garbage, short and silent
answers) already cover:

Server (sim_plc.modbus_server, in a thread of its own, reached through plain blocking sockets):
- hypothesis sends arbitrary bytes, and well-framed MBAP frames around arbitrary PDUs (every
  function code, every length up to the protocol's), with any unit id: each gets an answer or the
  connection is dropped, or, for a frame that is not complete yet, the server waits for the rest;
  after every example a fresh client is served correctly;
- every unit id but the PLC's own is refused (exception 0x0B), none is ever answered with data;
- oversized requests (more than 125 registers or 2000 bits, a byte count that disagrees with the
  count) get an exception; requests pipelined in one packet are all answered, in order; a request
  cut into one-byte pieces is answered;
- 50 connections that each send half a frame and hold it do not stop the server serving others.

Driver (plantctl.fieldbus.modbus): a server that answers six reads in ten with a randomly corrupted
frame (transaction id, unit id, function code, byte count, length field changed; the frame cut
short, padded, doubled, or preceded by garbage; or 64 kB of noise) drives the driver through
hundreds of bad answers: its task never ends, a tag is never GOOD with a value the PLC did not
send, every bad spell is BAD/COMMS_LOST, and when the answers are right again it recovers alone.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plantctl.clock import RealClock, VirtualClock
from plantctl.fieldbus.modbus import ModbusDriver
from plantctl.iolist import IOList, load_io_list
from plantctl.paths import io_dir
from plantctl.tags import Quality, Reading, Reason
from sim_plc.gas_station import GasStation
from sim_plc.modbus_server import StationModbusServer
from sim_plc.plant import Plant

GAS = "gas_station"


# -- the server, on a loop in its own thread -----------------------------------------------------------
class ServerThread:
    def __init__(self, iol: IOList) -> None:
        self.iol = iol
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="modbus-server", daemon=True)
        self.server: StationModbusServer | None = None

    def __enter__(self) -> ServerThread:
        self.thread.start()
        plant = Plant([GasStation(seed=0)], VirtualClock())

        async def start() -> StationModbusServer:
            srv = StationModbusServer(plant, self.iol)
            await srv.start()
            return srv

        self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.server is not None
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    @property
    def alive(self) -> bool:
        return self.thread.is_alive() and self.server is not None and self.server.listening


@pytest.fixture(scope="module")
def iol() -> IOList:
    return load_io_list(io_dir() / f"{GAS}.yaml")


@pytest.fixture(scope="module")
def server(iol: IOList) -> Iterator[ServerThread]:
    with ServerThread(iol) as srv:
        yield srv


def _mbap(tid: int, unit: int, pdu: bytes, length: int | None = None) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1 if length is None else length, unit) + pdu


def _exchange(port: int, data: bytes, wait: float = 0.15) -> tuple[str, bytes]:
    """('answer', bytes) | ('dropped', b'') | ('silent', b'')."""
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.settimeout(wait)
        try:
            s.sendall(data)
            got = s.recv(65536)
        except TimeoutError:
            return "silent", b""
        except (ConnectionResetError, BrokenPipeError):
            return "dropped", b""
        return ("answer", got) if got else ("dropped", b"")


def _healthy(port: int, iol: IOList) -> None:
    """A fresh client reads PT-101 correctly (function 4, one register)."""
    sig = iol.by_tag["PT-101"]
    kind, got = _exchange(port, _mbap(0x4242, iol.unit_id, struct.pack(">BHH", 4, sig.offset, 1)), wait=2)
    assert kind == "answer" and got[:2] == b"\x42\x42" and got[7] == 4 and got[8] == 2, (kind, got.hex())
    assert 4.0 < float(sig.from_raw(struct.unpack(">H", got[9:11])[0])) < 5.0


PDU = st.one_of(
    st.binary(min_size=0, max_size=253),
    st.builds(lambda fc, rest: bytes([fc]) + rest, st.integers(0, 255), st.binary(max_size=20)),
    st.builds(lambda fc, a, n: struct.pack(">BHH", fc, a, n), st.sampled_from([1, 2, 3, 4, 5, 6, 15, 16, 22, 23]),
              st.integers(0, 65535), st.integers(0, 65535)),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    how=st.sampled_from(["framed", "framed_any_unit", "wrong_length", "raw"]),
    pdu=PDU,
    unit=st.integers(0, 255),
    length=st.integers(0, 65535),
    raw=st.binary(min_size=1, max_size=600),
)
def test_any_bytes_get_an_answer_or_a_drop_and_the_server_lives(
    server: ServerThread, iol: IOList, how: str, pdu: bytes, unit: int, length: int, raw: bytes
) -> None:
    if how == "framed":
        data = _mbap(7, iol.unit_id, pdu)
    elif how == "framed_any_unit":
        data = _mbap(7, unit, pdu)
    elif how == "wrong_length":
        data = _mbap(7, iol.unit_id, pdu, length)
    else:
        data = raw
    kind, got = _exchange(server.port, data)
    header_ok = len(data) < 6 or (data[2:4] == b"\x00\x00" and 2 <= struct.unpack(">H", data[4:6])[0] <= 254)
    if not header_ok:
        assert kind == "dropped", (how, data[:16].hex(), kind)  # out of step: the connection goes
    elif how in ("framed", "framed_any_unit"):
        # a complete frame gets an answer or a drop; only a broadcast (unit 0) may get nothing
        assert kind != "silent" or (how == "framed_any_unit" and unit == 0), (how, data.hex())
    if kind == "answer":
        assert len(got) >= 9 and got[2:4] == b"\x00\x00", got.hex()  # a well-formed MBAP answer
        if how in ("framed", "framed_any_unit"):
            assert got[:2] == b"\x00\x07"
        if how == "framed_any_unit" and unit != iol.unit_id and pdu[:1] and pdu[0] in (1, 2, 3, 4, 5, 6, 15, 16, 22, 23):
            assert got[7] & 0x80, got.hex()  # plant data is never read or written for another unit
    assert server.alive
    _healthy(server.port, iol)


def test_every_other_unit_id_is_refused(server: ServerThread, iol: IOList) -> None:
    pt = iol.by_tag["PT-101"]
    for unit in range(256):
        if unit == iol.unit_id:
            continue
        kind, got = _exchange(server.port, _mbap(unit, unit, struct.pack(">BHH", 4, pt.offset, 1)), wait=0.5)
        if unit == 0 and kind == "silent":
            continue  # broadcast: no answer is a correct answer
        assert kind == "answer" and got[7] == 0x84 and got[8] == 0x0B, (unit, kind, got.hex())
    _healthy(server.port, iol)


def test_oversized_pipelined_and_fragmented_requests(server: ServerThread, iol: IOList) -> None:
    u = iol.unit_id
    ir0 = min(s.offset for s in iol.signals if s.table.value == "input_register")
    coil0 = min(s.offset for s in iol.signals if s.table.value == "coil")
    hr0 = min(s.offset for s in iol.signals if s.table.value == "holding_register")
    over = [
        struct.pack(">BHH", 4, ir0, 126),  # more registers than one request may read
        struct.pack(">BHH", 3, hr0, 0),  # none
        struct.pack(">BHH", 2, 0, 2001),  # more bits than one request may read
        struct.pack(">BHH", 1, coil0, 0),
        struct.pack(">BHHB", 16, hr0, 2, 9) + b"\x00" * 9,  # byte count disagrees with the count
        struct.pack(">BHHB", 15, coil0, 16, 1) + b"\xff",  # 16 coils in 1 byte
        struct.pack(">BHH", 6, hr0, 0)[:3],  # write single register cut short
    ]
    for pdu in over:
        kind, got = _exchange(server.port, _mbap(9, u, pdu), wait=1.0)
        # an exception answer (pymodbus answers a request it cannot decode with 0x80, code 1) or a drop
        assert kind == "dropped" or (kind == "answer" and got[7] & 0x80), (pdu.hex(), kind, got.hex())
    # 20 requests in one packet: 20 answers, in order
    pt = iol.by_tag["PT-101"]
    batch = b"".join(_mbap(100 + i, u, struct.pack(">BHH", 4, pt.offset, 1)) for i in range(20))
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
        s.sendall(batch)
        buf = b""
        while len(buf) < 20 * 11:
            chunk = s.recv(65536)
            assert chunk, f"dropped after {len(buf)} bytes"
            buf += chunk
    tids = [struct.unpack(">H", buf[i:i + 2])[0] for i in range(0, 20 * 11, 11)]
    assert tids == list(range(100, 120))
    # one request in one-byte pieces
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in _mbap(77, u, struct.pack(">BHH", 4, pt.offset, 1)):
            s.sendall(bytes([b]))
        got = s.recv(64)
    assert got[:2] == b"\x00\x4d" and got[7] == 4
    _healthy(server.port, iol)


def test_half_frames_held_open_do_not_block_others(server: ServerThread, iol: IOList) -> None:
    held = []
    try:
        for _ in range(50):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=2)
            s.sendall(_mbap(1, iol.unit_id, struct.pack(">BHH", 4, 0, 1))[:9])  # 9 of 12 bytes, then nothing
            held.append(s)
        for _ in range(5):
            _healthy(server.port, iol)
    finally:
        for s in held:
            s.close()
    _healthy(server.port, iol)


# -- the driver against a server that corrupts its answers ---------------------------------------------------
REGISTER = 12000  # inside every live-zero band: scales to a GOOD value


class CorruptingServer:
    """Answers reads correctly (every register REGISTER, every bit 0), or, while ``corrupt`` is set,
    with the correct answer broken one way drawn from ``rng`` (six answers in ten), so the link
    goes down and comes back many times."""

    WAYS = ("tid", "unit", "fc", "bytecount", "length", "cut", "pad", "double", "garbage_before", "noise",
            "exception", "close", "silent")

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.corrupt = False
        self.used: dict[str, int] = {}
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in list(self.writers):
            w.close()
        await self.server.wait_closed()

    def _good(self, tid: int, uid: int, pdu: bytes) -> bytes:
        fc = pdu[0]
        _addr, count = struct.unpack(">HH", pdu[1:5])
        if fc in (1, 2):
            n = (count + 7) // 8
            body = bytes([fc, n]) + bytes(n)
        elif fc in (3, 4):
            body = bytes([fc, 2 * count]) + struct.pack(f">{count}H", *([REGISTER] * count))
        else:
            body = pdu[:5]
        return struct.pack(">HHHB", tid, 0, len(body) + 1, uid) + body

    def _bad(self, frame: bytes) -> tuple[str, bytes | None]:
        way = self.rng.choice(self.WAYS)
        self.used[way] = self.used.get(way, 0) + 1
        b = bytearray(frame)
        if way == "tid":
            b[0:2] = struct.pack(">H", (struct.unpack(">H", frame[:2])[0] + 1 + self.rng.randrange(65534)) % 65536)
        elif way == "unit":
            b[6] = (b[6] + 1 + self.rng.randrange(254)) % 256
        elif way == "fc":
            b[7] = self.rng.choice([x for x in range(1, 128) if x != b[7]])
        elif way == "bytecount":
            b[8] = (b[8] + 1 + self.rng.randrange(254)) % 256
        elif way == "length":
            b[4:6] = struct.pack(">H", self.rng.choice([0, 1, len(frame) - 7, 255, 65535]))
        elif way == "cut":
            return way, bytes(b[: self.rng.randrange(1, len(b))])
        elif way == "pad":
            return way, bytes(b) + bytes(self.rng.randrange(1, 64))
        elif way == "double":
            return way, bytes(b) + bytes(b)
        elif way == "garbage_before":
            return way, bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 16))) + bytes(b)
        elif way == "noise":
            return way, self.rng.randbytes(1 << 16)
        elif way == "exception":
            return way, bytes(b[:4]) + struct.pack(">H", 3) + bytes([b[6], b[7] | 0x80, self.rng.choice([1, 2, 3, 4, 6])])
        elif way in ("close", "silent"):
            return way, None
        return way, bytes(b)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        try:
            while True:
                head = await reader.readexactly(7)
                tid, _pid, length, uid = struct.unpack(">HHHB", head)
                pdu = await reader.readexactly(length - 1)
                frame = self._good(tid, uid, pdu)
                if self.corrupt and self.rng.random() < 0.6:
                    way, bad = self._bad(frame)
                    if way == "close":
                        break
                    if bad is None:
                        continue
                    frame = bad
                writer.write(frame)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.writers.discard(writer)
            writer.close()


DRIVERS = 4  # side by side against the same server: four times the bad answers per second


@pytest.mark.timeout(120)
async def test_drivers_survive_two_hundred_corrupted_answers(iol: IOList) -> None:
    srv = CorruptingServer(seed=20260611)
    await srv.start()
    readings: list[list[tuple[str, Reading]]] = [[] for _ in range(DRIVERS)]
    links: list[list[bool]] = [[] for _ in range(DRIVERS)]
    drivers = [
        ModbusDriver(iol, "127.0.0.1", srv.port, RealClock(), readings[i].extend,
                     lambda up, t, d, i=i: links[i].append(up),
                     timeout=0.1, period=0.02, backoff_initial=0.02, backoff_max=0.05)
        for i in range(DRIVERS)
    ]
    good_value = {s.tag: s.from_raw(REGISTER if not s.is_bit else 0) for s in iol.signals}
    loop = asyncio.get_running_loop()

    async def until(cond: Any, wall_s: float, what: str) -> None:
        deadline = loop.time() + wall_s
        while not cond():
            assert loop.time() < deadline, f"timed out waiting for {what}"
            assert all(d._task is not None and not d._task.done() for d in drivers), "a driver's task ended"
            await asyncio.sleep(0.01)

    for d in drivers:
        await d.start()
    try:
        await until(lambda: all(ln == [True] for ln in links), 10, "links up")
        srv.corrupt = True
        await until(lambda: sum(srv.used.values()) >= 200, 90, "200 corrupted answers")
        srv.corrupt = False
        n_bad = [len(r) for r in readings]
        await until(lambda: all(ln[-1] is True and len(r) > n + 3 * len(iol.signals)
                                for ln, r, n in zip(links, readings, n_bad, strict=True)), 20, "recovery")
        assert all(d._task is not None and not d._task.done() for d in drivers)
    finally:
        for d in drivers:
            await d.stop()
        await srv.stop()
    every = [x for r in readings for x in r]
    wrong = [(t, r) for t, r in every if r.quality is Quality.GOOD and r.value != good_value[t]]
    assert not wrong, wrong[:5]  # never a GOOD value the PLC did not send
    bad = [r for _, r in every if r.quality is Quality.BAD]
    assert bad and all(r.reason is Reason.COMMS_LOST for r in bad)
    outages = sum(ln.count(False) for ln in links)
    assert outages >= 5 and all(ln[-1] is True for ln in links)
    assert set(srv.used) == set(CorruptingServer.WAYS), srv.used
    print(f"\nRELIABILITY modbus-driver-fuzz: corrupted answers {srv.used}, outages {outages}")
