"""Active alarms as the engine raises them (the ISA-18.2 board builds on this).

The engine and the procedures raise and clear alarms by id; this board keeps
the ISA-18.2 state of each (unacknowledged / acknowledged / returned
unacknowledged), who acknowledged, and emits an ALARM event on every change.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Any

from .journal import Event, EventKind


class Priority(IntEnum):
    CRITICAL = 1
    HIGH = 2
    MEDIUM = 3
    LOW = 4


class AlarmState(StrEnum):
    NORMAL = "normal"
    UNACK = "unacknowledged"
    ACKED = "acknowledged"
    RTN_UNACK = "returned unacknowledged"


@dataclass
class Alarm:
    id: str
    station: str
    message: str
    priority: Priority
    state: AlarmState
    raised_at: float
    source: str = ""
    acked_by: str = ""

    @property
    def active(self) -> bool:
        return self.state in (AlarmState.UNACK, AlarmState.ACKED)


class AlarmBoard:
    def __init__(self) -> None:
        self.alarms: dict[str, Alarm] = {}

    def _event(self, a: Alarm, now: float, wall: float, user: str = "", extra: dict[str, Any] | None = None) -> Event:
        payload: dict[str, Any] = {
            "id": a.id,
            "state": a.state.value,
            "priority": int(a.priority),
            "message": a.message,
        }
        if extra:
            payload.update(extra)
        return Event(EventKind.ALARM, now, wall, a.station, a.source or "alarm", user, "", payload)

    def raise_(
        self,
        alarm_id: str,
        message: str,
        priority: Priority,
        now: float,
        wall: float,
        station: str = "",
        source: str = "",
    ) -> list[Event]:
        a = self.alarms.get(alarm_id)
        if a is not None and a.active:
            return []
        a = Alarm(alarm_id, station, message, priority, AlarmState.UNACK, now, source)
        self.alarms[alarm_id] = a
        return [self._event(a, now, wall)]

    def clear(self, alarm_id: str, now: float, wall: float) -> list[Event]:
        a = self.alarms.get(alarm_id)
        if a is None or not a.active:
            return []
        if a.state is AlarmState.ACKED:
            a.state = AlarmState.NORMAL
            del self.alarms[alarm_id]
        else:
            a.state = AlarmState.RTN_UNACK
        return [self._event(a, now, wall)]

    def ack(self, alarm_id: str, user: str, now: float, wall: float) -> list[Event]:
        a = self.alarms.get(alarm_id)
        if a is None or a.state in (AlarmState.ACKED, AlarmState.NORMAL):
            return []
        a.acked_by = user
        if a.state is AlarmState.RTN_UNACK:
            a.state = AlarmState.NORMAL
            del self.alarms[alarm_id]
        else:
            a.state = AlarmState.ACKED
        return [self._event(a, now, wall, user)]

    def active(self) -> list[Alarm]:
        return sorted(
            (a for a in self.alarms.values() if a.state is not AlarmState.NORMAL),
            key=lambda a: (a.priority, -a.raised_at),
        )

    def is_active(self, alarm_id: str) -> bool:
        a = self.alarms.get(alarm_id)
        return a is not None and a.active
