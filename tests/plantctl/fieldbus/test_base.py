"""reading_from_value: the quality rules every driver applies to a value in engineering units."""

from __future__ import annotations

import math

import pytest

from plantctl.fieldbus.base import is_non_finite, reading_from_value
from plantctl.iolist import IOList, Kind
from plantctl.tags import Quality, Reason

GAS = "gas_station"
PUMP = "pump_station"

NON_FINITE = [math.nan, math.inf, -math.inf]


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize(
    ("station", "tag"),
    [
        (GAS, "GD-401A"),  # live-zero analog: to_raw(nan) used to raise ValueError
        (GAS, "PT-322"),  # live-zero analog: to_raw(inf) used to raise OverflowError
        (PUMP, "FQ-808"),  # analog without live zero: NaN used to pass as GOOD
        (GAS, "XS-400"),  # state enum: used to pass as GOOD
        (PUMP, "HS-740"),  # enum command echo
    ],
)
def test_a_non_finite_value_is_bad_sensor_fault(iolists: dict[str, IOList], station: str, tag: str,
                                                 value: float) -> None:
    sig = iolists[station].by_tag[tag]
    r = reading_from_value(sig, value, 7.0)
    assert (r.quality, r.reason, r.t) == (Quality.BAD, Reason.SENSOR_FAULT, 7.0)


def test_finite_values_keep_their_verdicts(iolists: dict[str, IOList]) -> None:
    gd = iolists[GAS].by_tag["GD-401A"]
    assert reading_from_value(gd, 3.0, 0.0).quality is Quality.GOOD
    assert reading_from_value(gd, -25.0, 0.0).reason is Reason.SENSOR_FAULT  # 0 mA: open loop
    fq = iolists[PUMP].by_tag["FQ-808"]
    assert fq.kind is Kind.ANALOG_IN and fq.fault_raw is None and fq.range is not None
    assert reading_from_value(fq, fq.range[1] * 2, 0.0).reason is Reason.OUT_OF_RANGE
    assert reading_from_value(iolists[GAS].by_tag["XS-400"], 2, 0.0).quality is Quality.GOOD
    assert reading_from_value(iolists[GAS].by_tag["TS-402"], True, 0.0).quality is Quality.GOOD


def test_is_non_finite() -> None:
    assert all(is_non_finite(v) for v in NON_FINITE)
    assert not any(is_non_finite(v) for v in (0.0, 1e308, -1e308, 3, True, False))
