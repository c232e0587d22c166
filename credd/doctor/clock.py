"""The clock: how far this machine's is from STS's, which AWS refuses TOTP codes and signatures for.

Two witnesses: doctor's own probe of each STS endpoint (now), and the
daemon's `status`, which says how far off the clock was at each source's
last STS reply (`sources.NAME.clock_skew_seconds`, and `clock_warning` from
five minutes: `sts.SKEW_REPORTED`, the size at which doctor's probe fails).
Both are told in the same words, with the same fix; where they disagree (the
clock was set right since the daemon's last reply), the finding says so.
"""

from __future__ import annotations

from collections.abc import Mapping

from credd.doctor.facts import ClockProbe
from credd.doctor.findings import Finding, fail, ok, warn
from credd.durations import format_duration
from credd.model import Config
from credd.sts_endpoint import endpoint_for

SKEW_WARN = 30  # seconds: one TOTP window; AWS may refuse codes made on a clock this far off
# Seconds: TOTP codes made on a clock this far off are refused, and so are requests some AWS services
# get signed this far off (STS refuses them from 15 minutes). The daemon's clock_warning starts here too.
SKEW_FAIL = 300
TIME_SYNC = ("turn on network time: `timedatectl set-ntp true` (Linux), or System Settings > General > "
             "Date & Time > Set time and date automatically (macOS)")


def sts_endpoints(config: Config) -> list[str]:
    """Each distinct STS endpoint credd calls, once."""
    return list(dict.fromkeys(endpoint_for(source) for source in config.sources.values()))


def check_clock(probes: tuple[ClockProbe, ...], config: Config, reply: Mapping | None) -> list[Finding]:
    """The clock as doctor's probes find it now, then each warning of the running daemon's."""
    found = [_probed(probe) for probe in probes]
    now = {probe.endpoint: probe.skew for probe in probes}
    sources = reply.get("sources") if reply is not None and reply.get("ok") else None
    for name, row in (sources if isinstance(sources, Mapping) else {}).items():
        if isinstance(row, Mapping) and row.get("clock_warning"):
            source = config.sources.get(name)
            found.append(_daemon_found(name, row.get("clock_skew_seconds"),
                                       now.get(endpoint_for(source)) if source else None))
    return found


def _probed(probe: ClockProbe) -> Finding:
    if probe.skew is None:
        return warn("clock", f"cannot reach STS at {probe.endpoint} to check the clock: {probe.error}",
                    "nothing to do when offline; otherwise check the network (and $HTTPS_PROXY)")
    size = abs(probe.skew)
    off = f"{_off(probe.skew)} ({probe.endpoint})"
    if size >= SKEW_FAIL:
        return fail("clock", f"this machine's clock is {off}: AWS refuses the TOTP codes made here, and some AWS "
                             "services refuse requests signed this far off (STS from 15 minutes)", TIME_SYNC)
    if size >= SKEW_WARN:
        return warn("clock", f"this machine's clock is {off}: AWS may refuse the TOTP codes made here", TIME_SYNC)
    return ok("clock", f"within {_within(size)} s of STS ({probe.endpoint})")


def _daemon_found(source: str, skew: object, skew_now: float | None) -> Finding:
    """The daemon's clock_warning for `source`; `skew_now`: doctor's probe of the same endpoint, if it answered.

    A warning, never a failure: it is what the clock was at the last STS
    reply, which may be hours old; the probe's finding says what it is now.
    """
    if isinstance(skew, (int, float)) and not isinstance(skew, bool):
        message = (f"at source {source}'s last STS reply, the daemon found this machine's clock {_off(skew)}: AWS "
                   "refuses the TOTP codes made on a clock this far off")
    else:
        message = f"at source {source}'s last STS reply, the daemon found this machine's clock far off STS's"
    if skew_now is not None and abs(skew_now) < SKEW_WARN:
        message += f"; it is within {_within(abs(skew_now))} s of STS now, so it was set right since"
    return warn("clock", message, TIME_SYNC)


def _off(skew: float) -> str:
    """`6m40s behind STS`; `skew` in seconds, positive when this clock is ahead."""
    return f"{format_duration(round(abs(skew)))} {'ahead of' if skew > 0 else 'behind'} STS"


def _within(size: float) -> int:
    return max(1, round(size))
