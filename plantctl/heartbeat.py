"""PLC I/O heartbeat supervision (plant-reference 4.10-4: "I/O heartbeat 1 s").

Theory of operation
-------------------
Link supervision only proves that something answers. A PLC whose CPU is in STOP, or
an OPC-UA gateway whose backend froze, keeps answering with the last values, GOOD
and freshly stamped, so nothing else in plantctl notices. The PLC program therefore
changes one input every second (a counter, ``heartbeat:`` in the I/O list), and a
``HeartbeatWatch`` per station looks at it once per scan:

- a *change* is a non-BAD value different from the last non-BAD value seen; a BAD
  or missing heartbeat never counts as movement (fail safe: unseen is not alive);
- FROZEN when no change has been seen for longer than ``max_age_s``, measured on the
  controller clock from the last change, or from the (re)connect when none has been
  seen since: a fresh link is given ``max_age_s`` to show a change, never less, and
  is never trusted for longer;
- while the link is down nothing is measured (every tag is BAD/COMMS_LOST already);
  the verdict is kept, so a PLC that was frozen stays FROZEN after the reconnect
  until its counter is seen to move (the first value after a reconnect is only the
  reference: a value compared across the outage proves nothing about now).

This module decides only: it does no I/O and reads no clock (``now`` is passed in).
The runtime (plantctl.runtime) turns a verdict into the table's BAD hold on every tag
of the station and into the ``heartbeat:<station>`` alarm.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from .tags import Reading, Value


class Beat(Enum):
    """What one observation changed (the runtime acts on transitions only)."""

    NONE = "none"
    FROZE = "froze"  # no change for longer than max_age_s: hold the station BAD, raise the alarm
    MOVED = "moved"  # a frozen heartbeat changed again: release the station, clear the alarm


@dataclass
class HeartbeatWatch:
    station: str
    tag: str
    max_age_s: float
    frozen: bool = False
    _ref: Value | None = None  # last non-BAD value seen since the (re)connect
    _since: float | None = None  # controller time of the last change, or of the (re)connect

    def observe(self, reading: Reading | None, link_up: bool, now: float) -> Beat:
        """One scan's look at the heartbeat ``reading`` (the driver's, before any hold)."""
        if not link_up:
            # nothing to measure; start over at the reconnect (the verdict itself is kept)
            self._ref, self._since = None, None
            return Beat.NONE
        if self._since is None:
            self._since = now  # (re)connected: max_age_s from here to see a first change
        if reading is not None and not reading.bad:
            if self._ref is None:
                self._ref = reading.value  # the reference, not a change
            elif reading.value != self._ref:
                self._ref, self._since = reading.value, now
                if self.frozen:
                    self.frozen = False
                    return Beat.MOVED
                return Beat.NONE
        if not self.frozen and now - self._since > self.max_age_s:
            self.frozen = True
            return Beat.FROZE
        return Beat.NONE

    def age(self, now: float) -> float:
        """Seconds since the last change (or the connect); 0 while the link is down."""
        return 0.0 if self._since is None else now - self._since
