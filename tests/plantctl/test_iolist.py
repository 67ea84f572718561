"""The I/O-list loader: complete validation, exact messages, nothing half-loaded."""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import pytest

from plantctl.cli import main
from plantctl.errors import ConfigError
from plantctl.iolist import Kind, ModbusTable, load_io_list
from plantctl.paths import io_dir

GOOD = """\
station: gas_station
modbus: {unit_id: 1}
signals:
  - tag: PT-101
    description: Pipeline pressure
    kind: analog_in
    units: MPa
    range: [0, 7]
    raw: [0, 65535]
    modbus: {table: input_register, address: 30001}
    alarms: {LL: 3.6, L: 4.0}
    bad_counts_as: unsafe
    bad_means: Supply pressure unknown.
  - tag: XY-201
    description: XV-201 solenoid
    kind: command_out
    type: bool
    modbus: {table: coil, address: 1}
    safe_value: false
    feedback:
      "false": {tag: ZSC-201, value: true}
      within_s: 15.5
  - tag: ZSC-201
    description: XV-201 closed
    kind: digital_in
    modbus: {table: discrete_input, address: 10001}
    bad_counts_as: not_confirmed
    bad_means: Closure cannot be confirmed.
"""


def write(tmp_path: Path, text: str, name: str = "gas_station.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_good_file_loads_with_scaling(tmp_path: Path) -> None:
    iol = load_io_list(write(tmp_path, GOOD))
    pt = iol.by_tag["PT-101"]
    assert pt.kind is Kind.ANALOG_IN and pt.table is ModbusTable.INPUT_REGISTER
    assert pt.offset == 0 and pt.opcua_node == "GAS.PT-101"
    assert pt.to_raw(3.5) == 32768 or pt.to_raw(3.5) == 32767
    assert pt.from_raw(pt.to_raw(4.5)) == pytest.approx(4.5, abs=1e-3)
    assert iol.by_tag["XY-201"].to_raw(True) == 1


def test_duplicate_address_message_names_file_line_and_both_tags(tmp_path: Path) -> None:
    text = GOOD + """\
  - tag: PT-102
    description: Another pressure
    kind: analog_in
    units: MPa
    range: [0, 7]
    raw: [0, 65535]
    modbus: {table: input_register, address: 30001}
    bad_counts_as: unsafe
    bad_means: x
"""
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_io_list(p)
    assert err.value.messages == [f"{p}:35: PT-102: address 30001 already used by PT-101"]


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        (("alarms: {LL: 3.6, L: 4.0}", "alarms: {LL: 4.6, L: 4.0}"), "11: PT-101: alarms: limits out of order: LL 4.6 must be below L 4.0"),
        (("alarms: {LL: 3.6, L: 4.0}", "alarms: {LL: 3.6, L: 9.0}"), "11: PT-101: alarms: L 9.0 lies outside the range [0.0, 7.0]"),
        (("kind: analog_in", "kind: analog"), "6: PT-101: kind: Input should be"),
        (("units: MPa", "units: psi"), "7: PT-101: units: Value error, unknown unit 'psi'"),
        (("address: 10001", "address: 30005"), "26: ZSC-201: modbus: address 30005 is outside the discrete_input block"),
        (("{tag: ZSC-201, value: true}", "{tag: ZSC-299, value: true}"), "20: XY-201: feedback.false names unknown tag ZSC-299"),
        (("    bad_means: Closure cannot be confirmed.\n", ""), "23: ZSC-201: bad_means: say in a sentence"),
    ],
)
def test_each_mistake_is_named(tmp_path: Path, patch: tuple[str, str], expected: str) -> None:
    text = GOOD.replace(*patch)
    assert text != GOOD
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_io_list(p)
    joined = "\n".join(err.value.messages)
    assert f"{p}:{expected}" in joined, joined


def test_duplicate_tag_and_yaml_syntax_error(tmp_path: Path) -> None:
    dup = GOOD + GOOD.split("signals:\n", 1)[1].split("  - tag: XY-201")[0]
    p = write(tmp_path, dup)
    with pytest.raises(ConfigError) as err:
        load_io_list(p)
    assert any("PT-101: duplicate tag (first defined on line 4)" in m for m in err.value.messages)
    bad = write(tmp_path, "station: x\nsignals: [\n", "broken.yaml")
    with pytest.raises(ConfigError) as err2:
        load_io_list(bad)
    assert str(bad) in err2.value.messages[0] and "yaml" in err2.value.messages[0]


def test_cli_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, GOOD)
    assert main(["check", str(good)]) == 0
    bad = write(tmp_path, GOOD.replace("address: 10001", "address: 1"), "bad.yaml")
    assert main(["check", str(good), str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:26: ZSC-201: modbus:" in err


@pytest.mark.parametrize("name", ["gas_station.yaml", "pump_station.yaml"])
def test_shipped_io_lists_are_valid(name: str) -> None:
    iol = load_io_list(io_dir() / name)
    assert iol.station == name.removesuffix(".yaml")
    assert len(iol.signals) > 40
    # every input says what BAD means for safety
    assert all(s.bad_means for s in iol.signals if s.kind is not Kind.COMMAND_OUT)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_to_raw_refuses_a_non_finite_value_by_name(tmp_path: Path, value: float) -> None:
    """NaN/Inf has no register value: a ValueError naming the tag, never a clamped count
    (+Inf as 65535 or -Inf as 0 would be a made-up measurement)."""
    pt = load_io_list(write(tmp_path, GOOD)).by_tag["PT-101"]
    with pytest.raises(ValueError, match="PT-101"):
        pt.to_raw(value)
