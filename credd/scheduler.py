"""APScheduler wiring for planned refreshes, and a watch on the wall clock for suspend and resume.

One date-triggered job per source, replaced each time its next refresh is
planned. APScheduler's default `misfire_grace_time` of 1 s would silently drop
a job that came due while the laptop slept, so it is None with `coalesce`.
That alone is not enough: APScheduler waits on the monotonic clock, which on
Linux stands still during suspend, so after a night asleep it would wait out
the rest of its old timeout. A small watch thread compares the wall clock with
the monotonic one every few seconds and, on a jump, wakes the scheduler and
asks the daemon to catch up at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from credd.refresh import clock_jumped

log = logging.getLogger("credd.scheduler")

WATCH_INTERVAL = 5.0


class ClockWatch:
    """Notices when the wall clock moved unlike the monotonic clock since the last look."""

    def __init__(self, wall: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.wall = wall
        self.monotonic = monotonic
        self._last = (wall(), monotonic())

    def jumped(self) -> timedelta | None:
        """The jump since the last call (how far the wall clock ran ahead), or None."""
        wall, mono = self.wall(), self.monotonic()
        wall_elapsed = timedelta(seconds=wall - self._last[0])
        mono_elapsed = timedelta(seconds=mono - self._last[1])
        self._last = (wall, mono)
        if clock_jumped(wall_elapsed, mono_elapsed):
            return wall_elapsed - mono_elapsed
        return None


class Scheduler:
    def __init__(self, on_due: Callable[[str], None], on_clock_jump: Callable[[], None], *,
                 watch: ClockWatch | None = None, watch_interval: float = WATCH_INTERVAL, workers: int = 4) -> None:
        from apscheduler.executors.pool import ThreadPoolExecutor
        from apscheduler.schedulers.background import BackgroundScheduler

        self._on_due = on_due
        self._on_clock_jump = on_clock_jump
        self._watch = watch or ClockWatch()
        self._watch_interval = watch_interval
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch_loop, name="credd-clock-watch", daemon=True)
        self._aps = BackgroundScheduler(
            timezone=timezone.utc,
            executors={"default": ThreadPoolExecutor(workers)},
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )

    def start(self) -> None:
        self._aps.start()
        self._watcher.start()

    def shutdown(self) -> None:
        """Stop planning; a refresh already running finishes first."""
        self._stop.set()
        self._aps.shutdown(wait=True)
        if self._watcher.is_alive():
            self._watcher.join(timeout=self._watch_interval + 1)

    def plan(self, source: str, when: datetime) -> None:
        """Refresh `source` at `when` (UTC), replacing whatever was planned for it."""
        self._aps.add_job(self._on_due, "date", run_date=when, args=[source], id=_job_id(source),
                          replace_existing=True, name=f"refresh {source}")

    def cancel(self, source: str) -> None:
        if self._aps.get_job(_job_id(source)) is not None:
            self._aps.remove_job(_job_id(source))

    def planned(self, source: str) -> datetime | None:
        job = self._aps.get_job(_job_id(source))
        return job.next_run_time if job is not None else None

    def check_clock(self) -> bool:
        """One look at the clocks; on a jump, wake APScheduler and ask for a catch-up."""
        jump = self._watch.jumped()
        if jump is None:
            return False
        log.info("the wall clock jumped by %+d s (suspend and resume, or the time was set): catching up",
                 int(jump.total_seconds()))
        if self._aps.running:
            self._aps.wakeup()
        self._on_clock_jump()
        return True

    def _watch_loop(self) -> None:
        while not self._stop.wait(self._watch_interval):
            try:
                self.check_clock()
            except Exception as e:  # noqa: BLE001  the watch must outlive any one failed catch-up
                log.error("clock catch-up failed: %s", type(e).__name__)


def _job_id(source: str) -> str:
    return f"refresh:{source}"
