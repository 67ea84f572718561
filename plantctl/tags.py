"""Readings with quality: nothing downstream ever sees a bare number.

Every value the controller holds is a ``Reading``: the value, its quality
(GOOD, UNCERTAIN, BAD) with the reason when it is not GOOD, and the plant time
of the sample. Quality is ordered worst-first, so ``min()`` over qualities is the
quality of anything derived from them.

``TagTable`` holds the latest reading of every tag. Drivers write into it; the
engine takes an immutable snapshot once per scan and marks readings that have
not been refreshed within ``stale_after`` seconds as BAD/STALE (no silent
staleness: a value that stopped arriving does not keep looking good).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import IntEnum, StrEnum
from types import MappingProxyType

Value = float | int | bool


class Quality(IntEnum):
    BAD = 0
    UNCERTAIN = 1
    GOOD = 2


class Reason(StrEnum):
    NONE = ""
    NOT_CONNECTED = "not connected"  # never read since start
    COMMS_LOST = "comms lost"
    OUT_OF_RANGE = "out of range"
    SENSOR_FAULT = "sensor fault"
    STALE = "stale"
    DEVICE_STATUS = "device status"  # the server said so (OPC-UA status code)
    BYPASSED = "bypassed"


@dataclass(frozen=True, slots=True)
class Reading:
    value: Value
    quality: Quality
    t: float  # plant time of the sample (controller clock)
    reason: Reason = Reason.NONE

    @property
    def good(self) -> bool:
        return self.quality is Quality.GOOD

    @property
    def bad(self) -> bool:
        return self.quality is Quality.BAD

    def age(self, now: float) -> float:
        return now - self.t


def bad(reason: Reason, t: float, value: Value = 0.0) -> Reading:
    return Reading(value, Quality.BAD, t, reason)


Snapshot = Mapping[str, Reading]


class TagTable:
    """Latest reading of every known tag. Unknown tags are refused, so a typo in
    a driver or a site file cannot create a signal nobody declared."""

    def __init__(self, tags: Iterable[str], stale_after: float = 3.0, t0: float = 0.0) -> None:
        self.stale_after = stale_after
        self._readings: dict[str, Reading] = {
            tag: Reading(0.0, Quality.BAD, t0, Reason.NOT_CONNECTED) for tag in tags
        }

    def __contains__(self, tag: object) -> bool:
        return tag in self._readings

    def __getitem__(self, tag: str) -> Reading:
        return self._readings[tag]

    def tags(self) -> list[str]:
        return list(self._readings)

    def update(self, tag: str, reading: Reading) -> None:
        if tag not in self._readings:
            raise KeyError(f"unknown tag {tag}")
        self._readings[tag] = reading

    def update_many(self, items: Iterable[tuple[str, Reading]]) -> None:
        for tag, reading in items:
            self.update(tag, reading)

    def mark_bad(self, tags: Iterable[str], reason: Reason, t: float) -> None:
        """Keep the last value for display, but say it cannot be trusted."""
        for tag in tags:
            old = self._readings[tag]
            if old.quality is not Quality.BAD or old.reason is not reason:
                self._readings[tag] = Reading(old.value, Quality.BAD, t, reason)

    def snapshot(self, now: float) -> Snapshot:
        """An immutable view for one scan, with staleness applied."""
        out: dict[str, Reading] = {}
        limit = now - self.stale_after
        for tag, r in self._readings.items():
            if r.quality is not Quality.BAD and r.t < limit:
                r = replace(r, quality=Quality.BAD, reason=Reason.STALE)
            out[tag] = r
        return MappingProxyType(out)
