"""Valve stroke model (plant-reference.md 3.1), shared by both stations.

State ``x`` in [0, 1] (0 = closed). A command change takes effect after the dead
time ``t_dead``; then x ramps at 1/T_open or 1/T_close. Fail-safe (fail-closed)
valves close when their solenoid power or instrument air is lost. Electric MOVs
move only while their supply is live, otherwise they stay put (or move at the
hand-wheel rate while a field crew is winding them). Limit switches are
ZSC = x <= 0.02 and ZSO = x >= 0.98 unless the NO_FEEDBACK fault hides them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum


class ValveCmd(Enum):
    STOP = 0
    OPEN = 1
    CLOSE = 2


class ValveFault(Enum):
    NONE = "none"
    STUCK = "stuck"  # does not move at all
    SLOW = "slow"  # moves at rate / factor
    PARTIAL = "partial"  # stops at x_stop on the way
    NO_FEEDBACK = "no_feedback"  # moves, but limit switches never make


class Characteristic(Enum):
    BALL = "ball"  # g(x) = x^2
    BUTTERFLY = "butterfly"  # g(x) = 1 - cos(x*pi/2)
    LINEAR = "linear"


@dataclass
class Valve:
    name: str
    t_open: float
    t_close: float
    t_dead: float = 0.5
    t_manual: float = 600.0  # hand-wheel full stroke, seconds (two persons)
    x: float = 0.0
    fail_closed: bool = False  # ESD valves: de-energise (or air loss) => close
    electric: bool = False  # MOV: moves only while supply_ok
    characteristic: Characteristic = Characteristic.BALL
    cmd: ValveCmd = ValveCmd.STOP
    fault: ValveFault = ValveFault.NONE
    slow_factor: float = 1.0
    partial_stop: float = 0.5
    passing: float = 0.0  # leak-through fraction of full area when "closed" (F-G12)
    supply_ok: bool = True  # solenoid/air (ESD) or MCC (MOV)
    manual_cmd: ValveCmd = ValveCmd.STOP  # field crew on the hand-wheel
    _pending: ValveCmd | None = field(default=None, repr=False)
    _pending_left: float = field(default=0.0, repr=False)
    _active: ValveCmd = field(default=ValveCmd.STOP, repr=False)

    def __post_init__(self) -> None:
        self._active = self.cmd

    # -- commands -----------------------------------------------------------
    def command(self, cmd: ValveCmd) -> None:
        """A new command takes effect after the dead time."""
        if cmd == self.cmd and self._pending is None:
            return
        self.cmd = cmd
        self._pending = cmd
        self._pending_left = self.t_dead

    def set_open(self, want_open: bool) -> None:
        self.command(ValveCmd.OPEN if want_open else ValveCmd.CLOSE)

    # -- physics ---------------------------------------------------------------
    def step(self, dt: float) -> None:
        if self._pending is not None:
            self._pending_left -= dt
            if self._pending_left <= 0:
                self._active = self._pending
                self._pending = None
        active = self._active
        if self.fail_closed and not self.supply_ok:
            active = ValveCmd.CLOSE  # spring return: no dead time to wait for a command
        if self.fault == ValveFault.STUCK:
            return
        rate_open = 1.0 / self.t_open
        rate_close = 1.0 / self.t_close
        if self.electric and not self.supply_ok:
            # No motor power: only the hand-wheel moves it.
            active = self.manual_cmd
            rate_open = rate_close = 1.0 / self.t_manual
        elif self.manual_cmd != ValveCmd.STOP and active == ValveCmd.STOP:
            active = self.manual_cmd
            rate_open = rate_close = 1.0 / self.t_manual
        if self.fault == ValveFault.SLOW:
            rate_open /= self.slow_factor
            rate_close /= self.slow_factor
        x0 = self.x
        if active == ValveCmd.OPEN:
            self.x = min(1.0, self.x + rate_open * dt)
        elif active == ValveCmd.CLOSE:
            self.x = max(0.0, self.x - rate_close * dt)
        if self.fault == ValveFault.PARTIAL:
            lo, hi = min(x0, self.partial_stop), max(x0, self.partial_stop)
            if lo <= self.partial_stop <= hi and x0 != self.x:
                # crossed or reached the jam point on the way: stay there
                if (x0 - self.partial_stop) * (self.x - self.partial_stop) <= 0:
                    self.x = self.partial_stop

    # -- signals -------------------------------------------------------------
    @property
    def zsc(self) -> bool:
        return self.fault != ValveFault.NO_FEEDBACK and self.x <= 0.02

    @property
    def zso(self) -> bool:
        return self.fault != ValveFault.NO_FEEDBACK and self.x >= 0.98

    @property
    def opening(self) -> float:
        """Effective flow-area fraction g(x), plus any leak-through when closed."""
        x = self.x
        if self.characteristic == Characteristic.BALL:
            g = x * x
        elif self.characteristic == Characteristic.BUTTERFLY:
            g = 1.0 - math.cos(x * math.pi / 2)
        else:
            g = x
        return max(g, self.passing)

    @property
    def timeout(self) -> float:
        """State-machine timeout for a full move: 1.5 x stroke + dead time (3.1)."""
        return 1.5 * max(self.t_open, self.t_close) + self.t_dead
