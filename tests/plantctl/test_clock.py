import asyncio

import pytest

from plantctl.clock import RealClock, VirtualClock


def test_virtual_clock_fires_timers_in_order_and_skips_ahead() -> None:
    clock = VirtualClock()
    fired: list[tuple[str, float]] = []
    clock.call_at(30.0, lambda: fired.append(("b", clock.now())))
    clock.call_at(10.0, lambda: fired.append(("a", clock.now())))
    handle = clock.call_at(20.0, lambda: fired.append(("cancelled", clock.now())))
    handle.cancel()
    jumps = clock.run_until(3600.0)
    assert fired == [("a", 10.0), ("b", 30.0)]
    assert jumps == 2  # straight from deadline to deadline, no polling in between
    assert clock.now() == 3600.0
    assert clock.wall() == pytest.approx(clock._epoch + 3600.0)


def test_virtual_clock_refuses_to_run_backwards() -> None:
    clock = VirtualClock(start=5.0)
    with pytest.raises(ValueError):
        clock.advance_to(1.0)


def test_timer_scheduled_from_a_callback_fires_in_the_same_advance() -> None:
    clock = VirtualClock()
    seen: list[float] = []

    def first() -> None:
        seen.append(clock.now())
        clock.call_later(5.0, lambda: seen.append(clock.now()))

    clock.call_at(1.0, first)
    clock.advance_to(10.0)
    assert seen == [1.0, 6.0]


async def test_sleep_until_wakes_on_advance_and_autojump() -> None:
    clock = VirtualClock()
    woke: list[float] = []

    async def sleeper(t: float) -> None:
        await clock.sleep_until(t)
        woke.append(clock.now())

    tasks = [asyncio.create_task(sleeper(t)) for t in (7200.0, 60.0)]
    jumper = asyncio.create_task(clock.autojump(limit=10_000.0))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=5)
    jumper.cancel()
    await asyncio.gather(jumper, return_exceptions=True)
    assert woke == [60.0, 7200.0]


async def test_real_clock_is_monotonic_and_sleeps() -> None:
    clock = RealClock()
    t0 = clock.now()
    await clock.sleep_until(t0 + 0.01)
    assert clock.now() >= t0 + 0.01
