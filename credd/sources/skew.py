"""How far this machine's clock is from STS's, per source, as the replies' Date headers tell it.

Kept for `status` and `credd doctor`; logged once when it goes beyond
`sts.SKEW_REPORTED`, and again only after it has come back within bounds.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from credd import sts
from credd.commandline import credd_command


class ClockSkews:
    """The skew at each source's last reply; thread-safe (roles report theirs concurrently)."""

    def __init__(self, log: logging.Logger, hint_config: str | None = None) -> None:
        self.log = log
        self.hint_config = hint_config  # the daemon's --config, for the command the warning names
        self._skews: dict[str, timedelta] = {}
        self._logged: set[str] = set()
        self._lock = threading.Lock()

    def watcher(self, source: str) -> sts.SkewWatcher:
        """What STS calls for `source` report their skew to."""
        def watch(skew: timedelta) -> None:
            with self._lock:
                self._skews[source] = skew
                if abs(skew) < sts.SKEW_REPORTED:
                    self._logged.discard(source)
                elif source not in self._logged:  # once, until it comes back within bounds
                    self._logged.add(source)
                    self.log.warning("source %s: %s", source, self.warning(source))

        return watch

    def skew(self, source: str) -> timedelta | None:
        """How far this machine's clock was ahead of STS's (negative: behind) at the source's last reply."""
        return self._skews.get(source)

    def warning(self, source: str) -> str | None:
        """What to say about this machine's clock, when STS's last reply showed it too far off."""
        skew = self._skews.get(source)
        if skew is None or abs(skew) < sts.SKEW_REPORTED:
            return None
        return f"{sts.describe_skew(skew)}; check timedatectl/NTP (`{credd_command(self.hint_config, 'doctor')}`)"
