"""The simulator's runtime against real clients: pymodbus, asyncua, HTTP, the CLI.

Both ends of every conversation are real: the station models (GasStation,
PumpStation) behind the real servers on free loopback ports, and the real client
libraries in front. Time is virtual: the tests move the plant with
``advance_to`` and then let the servers catch up (``settled``/``sync``), so
nothing here sleeps for an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from asyncua import Client, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID
from pymodbus.client import AsyncModbusTcpClient, ModbusBaseClient
from pymodbus.exceptions import ModbusException

from plantctl.clock import VirtualClock
from plantctl.iolist import IOList, ModbusTable, Signal, load_io_list
from plantctl.paths import io_dir
from sim_plc import catalogue
from sim_plc.faults import FaultSpec
from sim_plc.gas_station import GasStation
from sim_plc.http_api import create_app
from sim_plc.modbus_server import StationModbusServer
from sim_plc.opcua_server import CLIENT_APP_URI, OpcuaSecurity, Pki, StationOpcuaServer, ensure_pki
from sim_plc.plant import LINK_DROP, LinkState, Plant
from sim_plc.pump_station import PumpStation
from sim_plc.runner import SimConfig, SimRunner

pytestmark = pytest.mark.timeout(60)

GAS = "gas_station"
PUMP = "pump_station"
USER = "plantctl"
PASSWORD = "correct horse battery staple"


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def iolists() -> dict[str, IOList]:
    return {name: load_io_list(io_dir() / f"{name}.yaml") for name in (GAS, PUMP)}


@pytest.fixture
def plant() -> Plant:
    return Plant([GasStation(seed=0), PumpStation(seed=0)], VirtualClock())


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves tasks running (servers must be shut down completely)."""
    before = set(asyncio.all_tasks())
    yield
    for _ in range(20):  # let closing callbacks run their last turn
        await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if t is not asyncio.current_task() and not t.done()]
    assert not leaked, f"leaked tasks: {leaked}"


@pytest.fixture
async def modbus(plant: Plant, iolists: dict[str, IOList]) -> AsyncIterator[dict[str, StationModbusServer]]:
    servers = {name: StationModbusServer(plant, iol) for name, iol in iolists.items()}
    for srv in servers.values():
        await srv.start()
    try:
        yield servers
    finally:
        for srv in servers.values():
            await srv.stop()


ClientFactory = Callable[[int], Awaitable[AsyncModbusTcpClient]]


@pytest.fixture
async def mb_client() -> AsyncIterator[ClientFactory]:
    made: list[AsyncModbusTcpClient] = []

    async def connect(port: int) -> AsyncModbusTcpClient:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
        made.append(client)
        assert await client.connect()
        return client

    yield connect
    for client in made:
        client.close()


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pki")
    asyncio.run(ensure_pki(root, [GAS, PUMP]))
    return root


@pytest.fixture
async def opcua_gas(plant: Plant, iolists: dict[str, IOList], pki_dir: Path) -> AsyncIterator[StationOpcuaServer]:
    srv = StationOpcuaServer(plant, iolists[GAS], OpcuaSecurity(pki_dir, USER, PASSWORD))
    await srv.start()
    try:
        yield srv
    finally:
        await srv.stop()


def secure_client(url: str, pki_dir: Path, password: str = PASSWORD, cert: Path | None = None,
                  key: Path | None = None) -> tuple[Client, Callable[[], Awaitable[None]]]:
    """An asyncua client set up for Basic256Sha256 SignAndEncrypt and user login."""
    pki = Pki(pki_dir)
    client = Client(url, timeout=5)
    client.application_uri = CLIENT_APP_URI
    client.set_user(USER)
    client.set_password(password)

    async def secure() -> None:
        await client.set_security(
            SecurityPolicyBasic256Sha256,
            str(cert or pki.client_cert),
            str(key or pki.client_key),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )

    return client, secure


async def read_analog(client: ModbusBaseClient, sig: Signal, unit: int) -> tuple[int, float]:
    assert sig.table is ModbusTable.INPUT_REGISTER
    rr = await client.read_input_registers(sig.offset, count=1, device_id=unit)
    assert not rr.isError(), rr
    raw = rr.registers[0]
    return raw, float(sig.from_raw(raw))


def unmapped_offset(iol: IOList, table: ModbusTable) -> int:
    used = {s.offset for s in iol.signals if s.table is table}
    return next(off for off in range(0, 70000) if off not in used)


# -- the plant ----------------------------------------------------------------------------------
def test_plant_steps_in_fixed_dt_and_carries_the_virtual_clock(plant: Plant) -> None:
    clock = plant.clock
    assert isinstance(clock, VirtualClock)
    assert plant.advance_to(0.35) == 3  # whole steps only
    assert plant.time == pytest.approx(0.3)
    assert clock.now() == pytest.approx(0.3)
    assert all(st.time == pytest.approx(0.3) for st in plant.stations.values())
    assert plant.advance_to(0.3) == 0
    plant.advance(60.0)
    assert plant.time == pytest.approx(60.3)
    assert plant.stations[GAS].time == pytest.approx(60.3)


def test_link_drop_comes_back_by_itself(plant: Plant) -> None:
    seen: list[LinkState] = []
    plant.add_listener(lambda p: seen.append(p.link(GAS).state))
    plant.link_drop(GAS, 2.0)
    assert plant.link(GAS).state is LinkState.DOWN and plant.link(PUMP).is_up
    assert any(f["fault"] == LINK_DROP.name for f in plant.active_faults())
    plant.advance(1.9)
    assert not plant.link(GAS).is_up
    plant.advance(0.1)
    assert plant.link(GAS).is_up
    assert seen[0] is LinkState.DOWN and seen[-1] is LinkState.UP


async def test_run_realtime_follows_the_clock(plant: Plant) -> None:
    """The real-time loop steps as its clock moves; here a VirtualClock jumping on its own."""
    clock = plant.clock
    assert isinstance(clock, VirtualClock)
    plant.advance(1.0)  # time already simulated is kept, not re-done
    loop = asyncio.get_running_loop().create_task(plant.run_realtime())
    try:
        await clock.autojump(limit=clock.now() + 5.0)
        for _ in range(5):  # the step due exactly at the limit runs on the next loop turns
            await asyncio.sleep(0)
        assert plant.time == pytest.approx(6.0)
        assert plant.stations[GAS].time == pytest.approx(6.0)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


def test_plant_inject_checks_the_catalogue(plant: Plant) -> None:
    from sim_plc.errors import BadFaultParameter, UnknownFault
    from sim_plc.plant import UnknownStation

    spec, params = compartment_leak_3mm()
    assert plant.inject(GAS, spec.name, {"zone": "GC", "hole_mm": "3"}) == params  # strings coerced
    assert plant.active_faults() == [{"station": GAS, "fault": "leak", **params}]
    with pytest.raises(BadFaultParameter):
        plant.inject(GAS, spec.name, {"zone": "GC"})
    with pytest.raises(UnknownFault):
        plant.inject(PUMP, spec.name, params)
    with pytest.raises(UnknownStation):
        plant.inject("nowhere", spec.name, params)
    plant.inject(PUMP, "link_drop", {"duration_s": "2.5"})
    assert plant.link(PUMP).down_until == pytest.approx(2.5)
    plant.clear()
    assert plant.active_faults() == [] and plant.link(PUMP).is_up


# -- Modbus TCP -------------------------------------------------------------------------------
async def test_modbus_reads_match_the_models_after_scaling(
    plant: Plant, iolists: dict[str, IOList], modbus: dict[str, StationModbusServer], mb_client: ClientFactory
) -> None:
    plant.advance(1.0)
    gas = await mb_client(modbus[GAS].port)
    pt101 = iolists[GAS].by_tag["PT-101"]
    raw, value = await read_analog(gas, pt101, iolists[GAS].unit_id)
    model = plant.tags(GAS)["PT-101"]
    assert raw == pt101.to_raw(model)
    assert value == pytest.approx(model, abs=2 * (7.0 / 16000))  # within the scaling's resolution
    assert 4.0 < value < 5.0  # normal pipeline pressure 4.5 MPa, plant-reference 1.4

    pump = await mb_client(modbus[PUMP].port)
    pt720 = iolists[PUMP].by_tag["PT-720"]
    raw, value = await read_analog(pump, pt720, iolists[PUMP].unit_id)
    assert raw == pt720.to_raw(plant.tags(PUMP)["PT-720"])
    assert value == pytest.approx(0.59, abs=0.05)  # normal header pressure

    # A block read of every input register in one request, as the controller does.
    regs = sorted((s for s in iolists[GAS].signals if s.table is ModbusTable.INPUT_REGISTER), key=lambda s: s.offset)
    first, last = regs[0].offset, regs[-1].offset
    assert [s.offset for s in regs] == list(range(first, last + 1)), "the gas I/O list packs its registers"
    rr = await gas.read_input_registers(first, count=last - first + 1, device_id=iolists[GAS].unit_id)
    assert not rr.isError()
    tags = plant.tags(GAS)
    assert rr.registers == [s.to_raw(tags[s.tag]) for s in regs]


async def test_modbus_coil_write_reaches_the_model(
    plant: Plant, iolists: dict[str, IOList], modbus: dict[str, StationModbusServer], mb_client: ClientFactory
) -> None:
    iol = iolists[GAS]
    xy201 = iol.by_tag["XY-201"]
    client = await mb_client(modbus[GAS].port)
    rr = await client.read_coils(xy201.offset, count=1, device_id=iol.unit_id)
    assert rr.bits[0] is True  # XV-201 open in normal operation

    wr = await client.write_coil(xy201.offset, False, device_id=iol.unit_id)
    assert not wr.isError()
    assert plant.tags(GAS)["XY-201"] is False or plant.tags(GAS)["XY-201"] == 0

    # The command is a real one: the valve strokes and its closed limit switch makes
    # within the I/O list's verification deadline.
    assert xy201.feedback is not None
    zsc = iol.by_tag[xy201.feedback["false"]["tag"]]
    plant.advance(float(xy201.feedback["within_s"]))
    rr = await client.read_discrete_inputs(zsc.offset, count=1, device_id=iol.unit_id)
    assert rr.bits[0] is True


async def test_modbus_unmapped_address_is_exception_2_and_service_continues(
    iolists: dict[str, IOList], modbus: dict[str, StationModbusServer], mb_client: ClientFactory
) -> None:
    iol = iolists[GAS]
    unit = iol.unit_id
    client = await mb_client(modbus[GAS].port)
    hole = unmapped_offset(iol, ModbusTable.INPUT_REGISTER)
    rr = await client.read_input_registers(hole, count=1, device_id=unit)
    assert rr.isError() and rr.exception_code == 2
    # A block that runs past the last mapped register is refused whole.
    rr = await client.read_input_registers(hole - 1, count=2, device_id=unit)
    assert rr.isError() and rr.exception_code == 2
    # Writing where no command lives: an unmapped coil, and a holding register
    # address that exists only as an input register (inputs cannot be written).
    wr = await client.write_coil(unmapped_offset(iol, ModbusTable.COIL), True, device_id=unit)
    assert wr.isError() and wr.exception_code == 2
    wr = await client.write_register(unmapped_offset(iol, ModbusTable.HOLDING_REGISTER), 1, device_id=unit)
    assert wr.isError() and wr.exception_code == 2
    # An enum command out of its states is an illegal value, and changes nothing.
    hs400 = iol.by_tag["HS-400"]
    assert hs400.states is not None
    wr = await client.write_register(hs400.offset, len(hs400.states), device_id=unit)
    assert wr.isError() and wr.exception_code == 3
    # Another unit id: this PLC is not it (gateway target failed to respond).
    pt101 = iol.by_tag["PT-101"]
    rr = await client.read_input_registers(pt101.offset, count=1, device_id=unit + 1)
    assert rr.isError() and rr.exception_code == 0x0B
    # The same connection still serves.
    raw, _ = await read_analog(client, pt101, unit)
    assert raw > 0


async def _send_raw(port: int, payload: bytes, eof: bool = False) -> bytes | None:
    """Send bytes on a fresh socket; return the answer, b"" when the server closed, None if silent."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        if eof:
            writer.write_eof()
        await writer.drain()
        try:
            return await asyncio.wait_for(reader.read(512), timeout=2.0)
        except (ConnectionResetError, BrokenPipeError):
            return b""
        except TimeoutError:
            return None
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionResetError, BrokenPipeError):
            pass


async def test_modbus_malformed_frames_are_answered_or_dropped(
    iolists: dict[str, IOList], modbus: dict[str, StationModbusServer], mb_client: ClientFactory
) -> None:
    port = modbus[GAS].port
    unit = iolists[GAS].unit_id
    # Garbage: the MBAP protocol id is not 0, so the stream is out of step: dropped.
    assert await _send_raw(port, b"\xde\xad\xbe\xef" * 8) == b""
    # A length field far beyond any PDU: dropped, whether it arrives small or huge.
    oversized = b"\x00\x01\x00\x00\xff\xff" + bytes([unit, 0x04]) + b"\x00" * 20
    assert await _send_raw(port, oversized) == b""
    assert await _send_raw(port, oversized + b"\x00" * 700) == b""
    # A short MBAP header and then end of stream: the server closes its side too.
    assert await _send_raw(port, b"\x00\x01\x00", eof=True) == b""
    # Well framed but undecodable (count 0, unknown function): an exception answer.
    for pdu in (b"\x04\x00\x00\x00\x00", b"\x63"):
        frame = b"\x00\x07\x00\x00" + (len(pdu) + 1).to_bytes(2, "big") + bytes([unit]) + pdu
        answer = await _send_raw(port, frame)
        assert answer, f"no answer to {frame.hex()}"
        assert answer[:2] == b"\x00\x07" and answer[7] & 0x80, answer.hex()
    # And a fresh client reads fine afterwards.
    client = await mb_client(port)
    raw, value = await read_analog(client, iolists[GAS].by_tag["PT-101"], unit)
    assert 4.0 < value < 5.0


async def test_modbus_link_drop_silences_the_station_then_service_resumes(
    plant: Plant, iolists: dict[str, IOList], modbus: dict[str, StationModbusServer], mb_client: ClientFactory
) -> None:
    gas_iol, pump_iol = iolists[GAS], iolists[PUMP]
    pt101, pt720 = gas_iol.by_tag["PT-101"], pump_iol.by_tag["PT-720"]
    gas = await mb_client(modbus[GAS].port)
    pump = await mb_client(modbus[PUMP].port)
    await read_analog(gas, pt101, gas_iol.unit_id)

    plant.link_drop(GAS, 5.0)
    await modbus[GAS].settled()
    assert not modbus[GAS].listening
    try:  # the open connection is gone: no value comes back ...
        rr = await gas.read_input_registers(pt101.offset, count=1, device_id=gas_iol.unit_id)
    except ModbusException:
        pass
    else:
        assert rr.isError(), rr
    fresh = AsyncModbusTcpClient("127.0.0.1", port=modbus[GAS].port, timeout=1, retries=0)
    try:
        assert not await fresh.connect()  # ... and new connections are refused
    finally:
        fresh.close()
    await read_analog(pump, pt720, pump_iol.unit_id)  # the other station is untouched

    plant.advance(4.9)
    await modbus[GAS].settled()
    assert not modbus[GAS].listening
    plant.advance(0.1)
    await modbus[GAS].settled()
    assert modbus[GAS].listening
    again = await mb_client(modbus[GAS].port)
    _, value = await read_analog(again, pt101, gas_iol.unit_id)
    assert 4.0 < value < 5.0


async def test_modbus_virtual_time_compartment_leak_trips_the_gt(
    plant: Plant, iolists: dict[str, IOList], modbus: dict[str, StationModbusServer], mb_client: ClientFactory
) -> None:
    """plant-reference section 6: a 3 mm compartment leak trips 2oo3 at about 32 s plus
    about 6 s of detector lag; after 60 s of plant time the trip shows through the server."""
    iol = iolists[GAS]
    spec, params = compartment_leak_3mm()
    plant.inject(GAS, spec.name, params)
    plant.advance(60.0)
    client = await mb_client(modbus[GAS].port)
    _, gd401a = await read_analog(client, iol.by_tag["GD-401A"], iol.unit_id)
    assert gd401a >= 25.0
    xs400 = iol.by_tag["XS-400"]
    rr = await client.read_input_registers(xs400.offset, count=1, device_id=iol.unit_id)
    assert xs400.states is not None
    assert xs400.states[rr.registers[0]] == "TRIPPED"


def compartment_leak_3mm() -> tuple[FaultSpec, dict[str, Any]]:
    """The gas model's leak fault in the GT gas compartment (zone GC), 3 mm hole."""
    return catalogue.find(GAS, "leak"), {"zone": "GC", "hole_mm": 3.0}


# -- OPC-UA ---------------------------------------------------------------------------------
async def test_opcua_secure_login_browse_read_and_write(
    plant: Plant, iolists: dict[str, IOList], opcua_gas: StationOpcuaServer, pki_dir: Path
) -> None:
    iol = iolists[GAS]
    plant.advance(1.0)
    await opcua_gas.settled()
    client, secure = secure_client(opcua_gas.endpoint_url, pki_dir)
    await secure()
    async with client:
        ns = await client.get_namespace_index(iol.namespace_uri)
        folder = client.get_node(ua.NodeId(GAS, ns))
        names = {(await child.read_browse_name()).Name for child in await folder.get_children()}
        assert {s.tag for s in iol.signals} <= names

        node = client.get_node(ua.NodeId(iol.by_tag["GD-401A"].opcua_node, ns))
        dv = await node.read_data_value()
        assert dv.Value is not None and dv.Value.VariantType is ua.VariantType.Double
        assert dv.Value.Value == pytest.approx(plant.tags(GAS)["GD-401A"])
        # Source timestamps are plant time (virtual here): the time of the last change.
        assert dv.SourceTimestamp is not None
        assert plant.wall() - 1.0 - 1e-3 <= dv.SourceTimestamp.timestamp() <= plant.wall() + 1e-3

        # A command written by the client reaches the model.
        xy201 = client.get_node(ua.NodeId(iol.by_tag["XY-201"].opcua_node, ns))
        await xy201.write_value(ua.Variant(False, ua.VariantType.Boolean))
        assert not plant.tags(GAS)["XY-201"]
        # An input is not writable, and an out-of-range command is refused.
        with pytest.raises(ua.uaerrors.BadUserAccessDenied):
            await node.write_value(ua.Variant(99.0, ua.VariantType.Double))
        pcv = client.get_node(ua.NodeId(iol.by_tag["PCV-215A"].opcua_node, ns))
        with pytest.raises(ua.uaerrors.BadOutOfRange):
            await pcv.write_value(ua.Variant(50.0, ua.VariantType.Double))

        # Values follow the plant.
        spec, params = compartment_leak_3mm()
        plant.inject(GAS, spec.name, params)
        plant.advance(60.0)
        await opcua_gas.settled()
        dv = await node.read_data_value()
        assert dv.Value is not None and dv.Value.Value >= 25.0
        assert dv.SourceTimestamp is not None and dv.SourceTimestamp.timestamp() > plant.wall() - 60.0
        xs400 = iol.by_tag["XS-400"]
        assert xs400.states is not None
        state = await client.get_node(ua.NodeId(xs400.opcua_node, ns)).read_value()
        assert xs400.states[state] == "TRIPPED"


async def test_opcua_wrong_password_is_refused(opcua_gas: StationOpcuaServer, pki_dir: Path) -> None:
    client, secure = secure_client(opcua_gas.endpoint_url, pki_dir, password="not the password")
    await secure()
    with pytest.raises(ua.uaerrors.BadUserAccessDenied):
        await client.connect()
    await client.disconnect()


async def test_opcua_untrusted_client_certificate_is_refused(
    opcua_gas: StationOpcuaServer, pki_dir: Path, tmp_path: Path
) -> None:
    cert, key = tmp_path / "stranger.der", tmp_path / "stranger.pem"
    await setup_self_signed_certificate(
        key, cert, CLIENT_APP_URI, "localhost", [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "stranger"}
    )
    client, secure = secure_client(opcua_gas.endpoint_url, pki_dir, cert=cert, key=key)
    await secure()
    with pytest.raises(ua.uaerrors.BadCertificateUntrusted):
        await client.connect()
    await client.disconnect()


async def test_opcua_insecure_endpoint_only_when_asked_for(
    plant: Plant, iolists: dict[str, IOList], opcua_gas: StationOpcuaServer, pki_dir: Path
) -> None:
    probe = Client(opcua_gas.endpoint_url, timeout=5)
    endpoints = await probe.connect_and_get_server_endpoints()
    offered = {(e.SecurityPolicyUri, e.SecurityMode) for e in endpoints}
    assert offered == {(SecurityPolicyBasic256Sha256.URI, ua.MessageSecurityMode.SignAndEncrypt)}
    anonymous = Client(opcua_gas.endpoint_url, timeout=5)
    with pytest.raises(ua.UaError):
        await anonymous.connect()
    await anonymous.disconnect()

    insecure = StationOpcuaServer(plant, iolists[PUMP], OpcuaSecurity(pki_dir, USER, PASSWORD, allow_insecure=True))
    await insecure.start()
    try:
        endpoints = await Client(insecure.endpoint_url, timeout=5).connect_and_get_server_endpoints()
        assert ua.MessageSecurityMode.None_ in {e.SecurityMode for e in endpoints}
        async with Client(insecure.endpoint_url, timeout=5) as anon:
            ns = await anon.get_namespace_index(iolists[PUMP].namespace_uri)
            value = await anon.get_node(ua.NodeId(iolists[PUMP].by_tag["PT-720"].opcua_node, ns)).read_value()
            assert value == pytest.approx(plant.tags(PUMP)["PT-720"])
    finally:
        await insecure.stop()


async def test_opcua_link_drop_closes_the_session_then_serves_again(
    plant: Plant, iolists: dict[str, IOList], opcua_gas: StationOpcuaServer, pki_dir: Path
) -> None:
    pt101 = iolists[GAS].by_tag["PT-101"]
    session, secure = secure_client(opcua_gas.endpoint_url, pki_dir)
    await secure()
    late, late_secure = secure_client(opcua_gas.endpoint_url, pki_dir)
    await late_secure()  # fetches the server certificate, so it must happen while the link is up
    await session.connect()
    try:
        ns = await session.get_namespace_index(iolists[GAS].namespace_uri)
        node = session.get_node(ua.NodeId(pt101.opcua_node, ns))
        assert 4.0 < await node.read_value() < 5.0

        plant.link_drop(GAS, 3.0)
        await opcua_gas.settled()
        assert not opcua_gas.listening
        with pytest.raises((ConnectionError, ua.UaError, TimeoutError)):  # the open session is cut ...
            await node.read_value()
    finally:
        with contextlib.suppress(ConnectionError, ua.UaError, TimeoutError):
            await session.disconnect()
    with pytest.raises(OSError):  # ... and new connections are refused
        await late.connect()
    await late.disconnect()

    plant.advance(3.0)
    await opcua_gas.settled()
    assert opcua_gas.listening
    again, again_secure = secure_client(opcua_gas.endpoint_url, pki_dir)
    await again_secure()
    async with again:
        ns = await again.get_namespace_index(iolists[GAS].namespace_uri)
        assert 4.0 < await again.get_node(ua.NodeId(pt101.opcua_node, ns)).read_value() < 5.0


# -- HTTP API ---------------------------------------------------------------------------------
@pytest.fixture
async def api(plant: Plant, iolists: dict[str, IOList]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(plant, iolists)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sim") as client:
        yield client


async def test_http_catalogue_lists_every_fault(api: httpx.AsyncClient) -> None:
    r = await api.get("/faults")
    assert r.status_code == 200
    listed = {(f["station"], f["fault"]) for f in r.json()}
    expected = {(GAS, s.name) for s in GasStation.FAULTS} | {(PUMP, s.name) for s in PumpStation.FAULTS}
    expected |= {(st, f) for st in (GAS, PUMP) for f in ("plc_frozen", "link_drop")}  # plant-level faults
    assert listed == expected
    assert all(f["help"] for f in r.json())
    assert (await api.get("/health")).json()["links"] == {GAS: "up", PUMP: "up"}


async def test_http_inject_and_clear_round_trip(plant: Plant, api: httpx.AsyncClient) -> None:
    spec, params = compartment_leak_3mm()
    r = await api.post("/faults", json={"station": GAS, "fault": spec.name, "params": params})
    assert r.status_code == 200, r.text
    assert r.json()["params"] == {"zone": "GC", "hole_mm": 3.0}
    active = (await api.get("/faults/active")).json()
    assert [(a["station"], a["fault"]) for a in active] == [(GAS, spec.name)]
    assert plant.active_faults() == active

    r = await api.delete("/faults", params={"station": GAS, "fault": spec.name})
    assert r.status_code == 200
    assert (await api.get("/faults/active")).json() == []

    r = await api.post("/link_drop", json={"station": PUMP, "duration_s": 30})
    assert r.status_code == 200 and r.json()["link"] == "down"
    assert not plant.link(PUMP).is_up
    await api.delete("/faults")
    assert plant.link(PUMP).is_up

    tags = (await api.get("/tags", params={"station": PUMP})).json()["stations"][PUMP]
    assert tags["PT-720"] == pytest.approx(plant.tags(PUMP)["PT-720"])
    assert (await api.get("/tags", params={"station": "nowhere"})).status_code == 404


async def test_http_bad_requests_get_400_with_the_reason(api: httpx.AsyncClient) -> None:
    spec, params = compartment_leak_3mm()
    r = await api.post("/faults", json={"station": GAS, "fault": spec.name, "params": {**params, "hole_mm": "wide"}})
    assert r.status_code == 400
    assert r.json()["detail"] == "fault leak: parameter hole_mm='wide' is not a float"
    r = await api.post("/faults", json={"station": GAS, "fault": spec.name, "params": {**params, "zone": "attic"}})
    assert r.status_code == 400 and "must be one of" in r.json()["detail"]
    r = await api.post("/faults", json={"station": GAS, "fault": spec.name, "params": {**params, "colour": 1}})
    assert r.status_code == 400 and "unknown parameter(s) colour" in r.json()["detail"]
    r = await api.post("/faults", json={"station": GAS, "fault": "meteor_strike", "params": {}})
    assert r.status_code == 400 and "meteor_strike" in r.json()["detail"]
    r = await api.post("/faults", json={"station": "nowhere", "fault": spec.name, "params": {}})
    assert r.status_code == 400 and "nowhere" in r.json()["detail"]
    r = await api.post("/link_drop", json={"station": GAS, "duration_s": -1})
    assert r.status_code == 422


# -- runner and CLI ---------------------------------------------------------------------------
async def test_runner_serves_everything_and_the_cli_drives_it(pki_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from plantctl.cli import main

    config = SimConfig(cert_dir=pki_dir, opcua_password=PASSWORD, http_graceful_s=1.0)
    async with SimRunner(config, clock=VirtualClock()) as runner:
        ports = runner.ports()
        assert all(isinstance(ports[s]["modbus"], int) and isinstance(ports[s]["opcua"], int) for s in (GAS, PUMP))
        url = runner.http_url
        assert url is not None
        async with httpx.AsyncClient(base_url=url, timeout=5) as http:
            stations = (await http.get("/stations")).json()
            assert {s["station"]: s["modbus_port"] for s in stations} == {s: ports[s]["modbus"] for s in (GAS, PUMP)}

        spec, params = compartment_leak_3mm()
        argv = ["sim", "inject", GAS, spec.name, *(f"{k}={v}" for k, v in params.items()), "--url", url]
        # The CLI blocks on urllib, so it runs in a thread while this loop serves it.
        assert await asyncio.to_thread(main, argv) == 0
        assert [f["fault"] for f in runner.plant.active_faults()] == [spec.name]  # type: ignore[union-attr]
        bad = ["sim", "inject", GAS, spec.name, "zone=GC", "hole_mm=wide", "--url", url]
        assert await asyncio.to_thread(main, bad) == 2
        assert "is not a float" in capsys.readouterr().err
        assert await asyncio.to_thread(main, ["sim", "faults", "--json", "--url", url]) == 0
        assert json.loads(capsys.readouterr().out)[0]["fault"] == spec.name
        assert await asyncio.to_thread(main, ["sim", "clear", "--url", url]) == 0
        assert runner.plant.active_faults() == []  # type: ignore[union-attr]

        # The plant moves on the virtual clock; the servers follow after sync().
        assert runner.plant is not None
        runner.plant.link_drop(GAS, 1.0)
        await runner.sync()
        assert not runner.modbus[GAS].listening and not runner.opcua[GAS].listening
        runner.plant.advance(1.0)
        await runner.sync()
        assert runner.modbus[GAS].listening and runner.opcua[GAS].listening


def test_cli_help_lists_every_fault_and_route(capsys: pytest.CaptureFixture[str]) -> None:
    from plantctl.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["sim", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for spec in catalogue.all_faults():
        assert f"    {spec.name}" in text
        assert spec.help.split()[0] in text
        for p in spec.params:
            assert f"{p.name}={p.type.__name__}" in text
    for route in ("/health", "/stations", "/tags", "/faults/active", "/link_drop"):
        assert route in text


def test_cli_reports_an_unreachable_simulator(capsys: pytest.CaptureFixture[str]) -> None:
    from plantctl.cli import main

    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["sim", "faults", "--url", f"http://127.0.0.1:{port}"]) == 1
    assert "cannot reach the simulator" in capsys.readouterr().err


def test_catalogue_find() -> None:
    spec = catalogue.find(PUMP, "link_drop")
    assert spec.station == PUMP and spec.scenarios == ("F-X01",)
    assert catalogue.find(GAS, GasStation.FAULTS[0].name).station == GAS
    with pytest.raises(KeyError):
        catalogue.find(GAS, "meteor_strike")


# -- Modbus/TCP Security (TLS) ------------------------------------------------------------------
def _self_signed(path: Path, name: str) -> tuple[Path, Path]:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)  # a fixed validity window: no wall clock in tests
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=365 * 50))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = path / f"{name}.pem", path / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


async def test_modbus_tls_with_client_certificates(
    plant: Plant, iolists: dict[str, IOList], tmp_path: Path
) -> None:
    import ssl

    from pymodbus.client import AsyncModbusTlsClient

    from sim_plc.modbus_server import server_ssl_context

    server_cert, server_key = _self_signed(tmp_path, "plc")
    client_cert, client_key = _self_signed(tmp_path, "controller")
    iol = iolists[GAS]
    srv = StationModbusServer(plant, iol, ssl_context=server_ssl_context(server_cert, server_key, client_cert))
    await srv.start()
    try:
        good_ctx = ssl.create_default_context(cafile=str(server_cert))
        good_ctx.load_cert_chain(str(client_cert), str(client_key))
        good = AsyncModbusTlsClient("127.0.0.1", port=srv.port, sslctx=good_ctx, timeout=2, retries=0)
        try:
            assert await good.connect()
            _, value = await read_analog(good, iol.by_tag["PT-101"], iol.unit_id)
            assert 4.0 < value < 5.0
        finally:
            good.close()
        # Without a client certificate the handshake fails: no value is ever served.
        anon_ctx = ssl.create_default_context(cafile=str(server_cert))
        anon = AsyncModbusTlsClient("127.0.0.1", port=srv.port, sslctx=anon_ctx, timeout=0.5, retries=0)
        try:
            if await anon.connect():
                with pytest.raises(ModbusException):
                    await anon.read_input_registers(0, count=1, device_id=iol.unit_id)
        finally:
            anon.close()
    finally:
        await srv.stop()
