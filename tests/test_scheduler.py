"""The schedule: planned refreshes run (even overdue ones), and a wall-clock jump triggers a catch-up."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

from credd.scheduler import ClockWatch, Scheduler


class FakeClocks:
    def __init__(self) -> None:
        self.wall_now = 1_800_000_000.0
        self.mono_now = 1000.0

    def wall(self) -> float:
        return self.wall_now

    def mono(self) -> float:
        return self.mono_now

    def tick(self, seconds: float) -> None:
        self.wall_now += seconds
        self.mono_now += seconds


def test_clock_watch_sees_a_suspend_and_a_time_set_back():
    clocks = FakeClocks()
    watch = ClockWatch(clocks.wall, clocks.mono)
    clocks.tick(5)
    assert watch.jumped() is None
    clocks.wall_now += 8 * 3600 + 5  # asleep all night, then 5 s awake: the monotonic clock saw only those
    clocks.mono_now += 5
    assert watch.jumped() == timedelta(hours=8)
    clocks.tick(5)
    assert watch.jumped() is None  # measured from the last look, not from the start
    clocks.wall_now -= 600
    assert watch.jumped() == timedelta(minutes=-10)


def test_overdue_and_planned_jobs_run_and_a_jump_catches_up():
    ran: list[str] = []
    done = threading.Event()
    caught_up = threading.Event()
    clocks = FakeClocks()

    def on_due(source: str) -> None:
        ran.append(source)
        if len(ran) == 2:
            done.set()

    scheduler = Scheduler(on_due, caught_up.set, watch=ClockWatch(clocks.wall, clocks.mono), watch_interval=3600)
    scheduler.start()
    try:
        now = datetime.now(timezone.utc)
        scheduler.plan("late", now - timedelta(hours=3))  # came due while asleep: must still run
        scheduler.plan("soon", now + timedelta(milliseconds=200))
        scheduler.plan("later", now + timedelta(hours=1))
        assert scheduler.planned("later") == now + timedelta(hours=1)
        assert done.wait(10), f"only {ran} ran"
        assert sorted(ran) == ["late", "soon"]
        assert scheduler.planned("late") is None  # a date job is gone once run

        scheduler.plan("later", now + timedelta(hours=2))  # replaces, never duplicates
        assert scheduler.planned("later") == now + timedelta(hours=2)
        scheduler.cancel("later")
        assert scheduler.planned("later") is None

        assert scheduler.check_clock() is False
        clocks.wall_now += 3 * 3600
        assert scheduler.check_clock() is True
        assert caught_up.is_set()
    finally:
        scheduler.shutdown()
