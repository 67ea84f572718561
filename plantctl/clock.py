"""Time for plantctl: one Clock interface, a real and a virtual implementation.

Theory of operation
-------------------
Logic never reads the wall clock. Everything that needs "now" is handed a Clock
(or just a float computed from one), and every timeout is a *deadline*: an
absolute plant time compared against ``now``. That makes the scan engine, the
procedures and the simulator deterministic functions of their inputs.

``now()`` is monotonic plant seconds; ``wall()`` is the matching epoch time for
journal records and the HMI. ``RealClock`` follows the machine. ``VirtualClock``
only moves when told: ``advance``/``advance_to`` fire the callbacks that fall due
in time order, and ``run_until`` skips straight from one due deadline to the
next when nothing else is moving, so hours of plant time cost only the work done
at each deadline. Async code can ``await clock.sleep_until(t)`` on both.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic plant time in seconds."""
        ...

    def wall(self) -> float:
        """Epoch seconds matching ``now()``."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``now() >= deadline``."""
        ...


class RealClock:
    """The machine's clocks. The only place plantctl reads them."""

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)


@dataclass(order=True)
class _Timer:
    due: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class TimerHandle:
    def __init__(self, timer: _Timer) -> None:
        self._timer = timer

    def cancel(self) -> None:
        self._timer.cancelled = True

    @property
    def due(self) -> float:
        return self._timer.due


class VirtualClock:
    """A clock that moves only when advanced.

    ``wall()`` is ``epoch + now()``, so journal records of a virtual run carry
    believable timestamps. Callbacks registered with ``call_at`` run in due-time
    order (ties in registration order) while the clock is advanced through them.
    """

    def __init__(self, start: float = 0.0, epoch: float = 1_767_225_600.0) -> None:
        self._now = float(start)
        self._epoch = float(epoch)
        self._timers: list[_Timer] = []
        self._seq = itertools.count()
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    # -- Clock interface --------------------------------------------------
    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._epoch + self._now

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (deadline, next(self._seq), fut))
        await fut

    # -- timers -----------------------------------------------------------
    def call_at(self, due: float, callback: Callable[[], None]) -> TimerHandle:
        timer = _Timer(float(due), next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return TimerHandle(timer)

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return self.call_at(self._now + delay, callback)

    def next_deadline(self) -> float | None:
        """The earliest pending timer or sleeper, or None when nothing waits."""
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        candidates = []
        if self._timers:
            candidates.append(self._timers[0].due)
        if self._sleepers:
            candidates.append(self._sleepers[0][0])
        return min(candidates) if candidates else None

    # -- moving time ------------------------------------------------------
    def advance(self, dt: float) -> None:
        if dt < 0:
            raise ValueError("time does not run backwards")
        self.advance_to(self._now + dt)

    def advance_to(self, t: float) -> None:
        """Move to ``t``, firing every timer due on the way, in order."""
        if t < self._now:
            raise ValueError(f"time does not run backwards ({t} < {self._now})")
        while True:
            nxt = self.next_deadline()
            if nxt is None or nxt > t:
                break
            self._now = max(self._now, nxt)
            self._fire_due()
        self._now = t
        self._fire_due()

    def run_until(self, t: float) -> int:
        """Skip from deadline to deadline up to ``t``; returns the number of jumps."""
        jumps = 0
        while True:
            nxt = self.next_deadline()
            if nxt is None or nxt > t:
                break
            self.advance_to(nxt)
            jumps += 1
        self.advance_to(t)
        return jumps

    def _fire_due(self) -> None:
        while self._timers and (self._timers[0].cancelled or self._timers[0].due <= self._now):
            timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback()
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)

    async def autojump(self, settle_rounds: int = 20, limit: float | None = None) -> None:
        """Run as a background task: when every other task is waiting on this
        clock (nothing became ready for ``settle_rounds`` loop turns), jump to
        the next deadline. Stops at ``limit`` plant seconds if given."""
        while True:
            for _ in range(settle_rounds):
                await asyncio.sleep(0)
            nxt = self.next_deadline()
            if nxt is None:
                continue
            if limit is not None and nxt > limit:
                self.advance_to(limit)
                return
            self.advance_to(nxt)


class ScaledClock:
    """Real time run faster (or slower) by a constant factor.

    For demos and end-to-end tests over real sockets, where a virtual clock
    cannot know when network I/O is in flight: plant time runs ``speed`` times
    faster than the machine's monotonic clock.
    """

    def __init__(self, speed: float = 1.0, start: float = 0.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self._t0 = time.monotonic()
        self._w0 = time.time()
        self._start = start

    def now(self) -> float:
        return self._start + (time.monotonic() - self._t0) * self.speed

    def wall(self) -> float:
        return self._w0 + (self.now() - self._start)

    async def sleep_until(self, deadline: float) -> None:
        delay = (deadline - self.now()) / self.speed
        await asyncio.sleep(max(0.0, delay))


async def yield_to_loop() -> None:
    """Let every task that is ready run up to its next wait (one turn of the event loop).

    Not a delay: the runtime uses it so that command writes put their request on the
    socket before the journal's fsync starts (the trip path first)."""
    await asyncio.sleep(0)
