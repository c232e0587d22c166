"""STS faults at the daemon level, over (frozen) time, through the strict STS front.

Storms of throttling, 500s, timeouts, dropped and cut-short replies and
malformed XML; credentials that come back expired, short, too long, or
stamped by a clock far from this machine's. For each: what credd serves
meanwhile (never an expired credential), how many STS calls it makes (the
bound is computed from `refresh.backoff` and botocore's attempts), that it
recovers when STS does, and what `status` says. The scheduler is played by
the test: it waits for the planned time on the frozen clock and runs the
refresh. One test runs a real `credd serve` and reads `credd status`.
"""

from __future__ import annotations

import configparser
import itertools
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from credd import refresh
from credd.daemon import STUCK_RETRY, Daemon
from credd.filesync import CredentialsWriter
from credd.model import AccessKey, Secret
from credd.sts import StsClients
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY
from tests.fixtures_sts import SOURCE, Rig, make_config
from tests.sts_front import StsFront, rewrite_expiration

HOUR = 3600
KEY = AccessKey(TEST_KEY_ID, Secret(TEST_SECRET_KEY))
FOREVER = float("inf")
BOMB = (b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(b'<!ENTITY %s "%s">' % (chr(98 + i).encode(), b"&%s;" % chr(97 + i).encode() * 10)
                   for i in range(9)) + b"]>")


def utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def shortest_backoff(failures: int) -> float:
    return refresh.backoff(failures, lambda: 0.0).total_seconds()


def most_attempts(window: float) -> int:
    """The most refreshes a source makes in `window` seconds of a fault that lasts: every backoff its shortest."""
    attempts, elapsed = 1, shortest_backoff(1)
    while elapsed < window:
        attempts += 1
        elapsed += shortest_backoff(attempts)
    return attempts


class Plans(dict):
    def __call__(self, source: str, when: datetime) -> None:
        self[source] = when


@dataclass
class Harness:
    """An in-process daemon over the rig; the test plays its scheduler on the frozen clock."""

    rig: Rig
    daemon: Daemon
    plans: Plans
    credentials: Path

    @property
    def front(self) -> StsFront:
        return self.rig.front

    def now(self) -> datetime:
        return self.rig.clock.now()

    def run_due(self) -> None:
        """What the scheduler does: wait until the planned time, then refresh."""
        wait = (self.plans[SOURCE] - self.now()).total_seconds()
        assert wait >= 0, "planned in the past"
        self.rig.clock.advance(wait)
        self.daemon.refresh_all()

    def run_until(self, end: datetime, action: str, check: Callable[[], None] = lambda: None) -> list[datetime]:
        """Every run planned before `end`, with `check` after each; when those that called `action` ran."""
        attempts = []
        for _ in range(500):
            if self.plans[SOURCE] >= end:
                break
            before = self.front.count(action)
            self.run_due()
            if self.front.count(action) > before:
                attempts.append(self.now())
            check()
        else:
            raise AssertionError("the daemon plans its runs in a loop")
        self.rig.clock.advance((end - self.now()).total_seconds())
        return attempts

    def serve(self, profile: str) -> dict:
        return self.daemon.handle({"op": "credentials", "profile": profile})

    def in_file(self, profile: str) -> dict[str, str] | None:
        parser = configparser.RawConfigParser()
        parser.read(self.credentials)
        return dict(parser[profile]) if parser.has_section(profile) else None

    def row(self, profile: str) -> dict:
        return {row["profile"]: row for row in self.daemon.status()["profiles"]}[profile]

    def source_status(self) -> dict:
        return self.daemon.status()["sources"][SOURCE]


@pytest.fixture
def harness(sts_rig, tmp_path: Path):
    """`harness(jitter=0.0, clients=None, **config)`: no jitter by default, so counts and times are exact."""

    def make(*, jitter: float = 0.0, clients: StsClients | None = None, **config) -> Harness:
        rig = sts_rig(**config)
        if clients is not None:
            rig.clients = clients
        credentials = tmp_path / "aws" / "credentials"
        rig.config = replace(rig.config, credentials_file=credentials)
        plans = Plans()
        daemon = Daemon(rig.config, rig.engine(jitter=lambda: jitter), rig.inbox, plan=plans,
                        write=CredentialsWriter(credentials), clock=rig.clock.now, jitter=lambda: jitter)
        return Harness(rig, daemon, plans, credentials)

    return make


# Storms while the credentials served are still valid -----------------------------------------------

STORMS = [  # fault, its rewrite, STS calls per refresh (botocore's retries), kind, what the message says
    ("throttle", None, 5, "throttled", "Throttling: Rate exceeded"),
    ("server_error", None, 5, "server", "STS failed on every attempt"),
    ("drop", None, 5, "network", "cannot reach STS"),
    ("truncate", None, 5, "network", "closed in the middle of its reply"),
    ("rewrite", lambda body: b"<html><body>502 Bad Gateway</body></html>", 1, "bad_reply", "does not parse"),
]


@pytest.mark.parametrize("fault, rewrite, calls, kind, says", STORMS, ids=[s[0] for s in STORMS])
def test_an_hour_long_storm_costs_bounded_calls_serves_what_is_valid_and_passes(harness, fault, rewrite, calls,
                                                                                kind, says):
    h = harness(mfa=None, refresh_before=2 * HOUR)  # a 12 h session, renewed when 2 h are left
    h.daemon.refresh_all()
    old = h.serve("alice-session")["credentials"]
    start = h.plans[SOURCE]
    assert start == h.now() + timedelta(hours=10)
    h.front.inject(fault, "GetSessionToken", FOREVER, rewrite)
    before = h.front.count("GetSessionToken")

    def still_served() -> None:
        calls_now = h.front.count("GetSessionToken")
        reply = h.serve("alice-session")
        assert reply["ok"] and reply["credentials"] == old  # still valid: served, and no call for it
        assert h.front.count("GetSessionToken") == calls_now
        assert h.in_file("alice-session")["aws_access_key_id"] == old["AccessKeyId"]
        row = h.row("alice-session")
        assert row["state"] == "expiring" and row["last_error_kind"] == kind and says in row["last_error"]
        assert row["next_attempt"] == utc(h.plans[SOURCE])

    attempts = h.run_until(start + timedelta(hours=1), "GetSessionToken", still_served)

    assert len(attempts) == most_attempts(HOUR) == 13
    assert h.front.count("GetSessionToken") - before == 13 * calls
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(attempts)]
    assert gaps == [shortest_backoff(n) for n in range(1, 13)]  # 7.5, 15, 30, ... s: they grow,
    assert gaps[-1] == gaps[-6] == refresh.BACKOFF_CAP.total_seconds() / 2  # and stop growing at the cap
    assert h.row("alice-session")["failures_in_a_row"] == 13

    h.front.clear_faults()  # STS is back: the next planned attempt gets a new session
    h.run_due()
    new = h.serve("alice-session")["credentials"]
    assert new["AccessKeyId"] != old["AccessKeyId"]
    assert h.in_file("alice-session")["aws_access_key_id"] == new["AccessKeyId"]
    row = h.row("alice-session")
    assert (row["state"], row["last_error"], row["last_error_kind"]) == ("fresh", None, None)
    assert (row["failures_in_a_row"], row["next_attempt"]) == (0, None)
    assert h.source_status()["failures_in_a_row"] == 0


def test_a_storm_with_mfa_codes_stays_within_the_same_bound(harness):
    h = harness(mfa="totp", refresh_before=2 * HOUR)
    h.daemon.refresh_all()
    h.front.inject("throttle", "GetSessionToken", FOREVER)
    start, before = h.plans[SOURCE], h.front.count("GetSessionToken")
    attempts = h.run_until(start + timedelta(hours=1), "GetSessionToken")
    # Each try waits for an unused code window, so there may be fewer, never more.
    assert 10 <= len(attempts) <= most_attempts(HOUR)
    assert h.front.count("GetSessionToken") - before == 5 * len(attempts)
    assert not h.front.accepted_codes[1:]  # throttled before AWS looked at a code: none was used up


def test_a_minute_of_timeouts(harness, sts_front):
    quick = StsClients(connect_timeout=1.0, read_timeout=0.15)  # the front holds a "timeout" for 2 s
    h = harness(mfa=None, refresh_before=2 * HOUR, clients=quick)
    h.daemon.refresh_all()
    old = h.serve("alice-session")["credentials"]
    h.front.inject("timeout", "GetSessionToken", FOREVER)
    start, before = h.plans[SOURCE], h.front.count("GetSessionToken")
    attempts = h.run_until(start + timedelta(minutes=1), "GetSessionToken")
    assert len(attempts) == most_attempts(60) == 4
    assert h.front.count("GetSessionToken") - before == 4 * 5
    assert h.serve("alice-session")["credentials"] == old
    row = h.row("alice-session")
    assert row["last_error_kind"] == "network" and "did not answer in time" in row["last_error"]
    h.front.clear_faults()
    h.run_due()
    assert h.row("alice-session")["last_error"] is None


def test_a_stalled_sts_fails_a_refresh_before_the_hook_stops_waiting():
    from credd import protocol, sts

    client = sts.StsClients().for_key(make_config("http://127.0.0.1:1").sources[SOURCE], KEY)
    config = client.meta.config
    # botocore's standard retries: the attempt-th wait is at most 0.05 s * 2**attempt (not throttling).
    sleeps = sum(0.05 * 2 ** attempt for attempt in range(config.retries["total_max_attempts"] - 1))
    worst = config.retries["total_max_attempts"] * (config.connect_timeout + config.read_timeout) + sleeps
    assert worst < protocol.CLIENT_TIMEOUT


def test_a_reply_cut_short_is_retried_at_once_like_a_dropped_connection(harness):
    h = harness(roles=1)
    h.front.inject("truncate", "AssumeRole", times=1)
    reply = h.serve("role-00")  # the first request refreshes on the spot
    assert reply["ok"] and h.front.count("AssumeRole") == 2
    assert h.row("role-00")["last_error"] is None


# Credentials that expire during an outage ----------------------------------------------------------

def test_credentials_that_expire_in_an_outage_stop_being_served_and_come_back(harness):
    h = harness(roles=1)  # MFA by TOTP; a 12 h session and a 1 h role, renewed with 20 min left
    h.daemon.refresh_all()
    old = h.serve("role-00")["credentials"]
    issued = h.now()
    h.front.inject("throttle", "AssumeRole", FOREVER)

    def served() -> None:
        assert h.serve("role-00")["credentials"] == old
        assert h.in_file("role-00")["aws_access_key_id"] == old["AccessKeyId"]

    expiry_edge = issued + timedelta(hours=1) - refresh.SERVE_MARGIN
    attempts = h.run_until(expiry_edge, "AssumeRole", served)
    assert attempts[0] == issued + timedelta(minutes=40)
    assert len(attempts) == most_attempts(19 * 60) == 8  # the storm's first 19 minutes
    assert h.front.count("AssumeRole") == 1 + 8 * 5

    h.run_due()  # planned for the expiry edge: one more try, then the role leaves the file
    assert h.now() == expiry_edge and h.front.count("AssumeRole") == 1 + 9 * 5
    assert h.in_file("role-00") is None and h.in_file("alice-session") is not None
    reply = h.serve("role-00")
    assert reply["ok"] is False and reply["error"] == "failed"
    assert "STS refused AssumeRole (Throttling: Rate exceeded)" in reply["message"]
    assert "credentials" not in reply
    row = h.row("role-00")
    assert (row["state"], row["last_error_kind"], row["failures_in_a_row"]) == ("no-credentials", "throttled", 9)

    # A client asking in a loop for the expired role costs STS one try every 15 s, not one a request.
    for _ in range(10):
        assert h.serve("role-00")["ok"] is False
    assert h.front.count("AssumeRole") == 1 + 9 * 5
    h.rig.clock.advance(refresh.BACKOFF_BASE.total_seconds())
    assert h.serve("role-00")["ok"] is False and h.serve("role-00")["ok"] is False
    assert h.front.count("AssumeRole") == 1 + 10 * 5

    h.front.clear_faults()  # STS is back: the next planned attempt brings the role back
    h.run_due()
    reply = h.serve("role-00")
    assert reply["ok"] and reply["credentials"]["AccessKeyId"] != old["AccessKeyId"]
    assert h.in_file("role-00")["aws_access_key_id"] == reply["credentials"]["AccessKeyId"]
    assert h.row("role-00")["state"] == "fresh" and h.row("role-00")["last_error"] is None
    assert h.front.count("GetSessionToken") == 1  # the session was valid throughout: no MFA code spent


def test_credd_refresh_tries_at_once_while_backing_off(harness):
    h = harness(roles=1)
    h.daemon.refresh_all()
    h.front.inject("server_error", "AssumeRole", times=5)
    h.rig.clock.advance(40 * 60)
    h.daemon.refresh_all()
    assert h.row("role-00")["failures_in_a_row"] == 1
    reply = h.daemon.handle({"op": "refresh", "profiles": ["role-00"]})  # the user does not wait for the backoff
    assert reply["ok"] and h.front.count("AssumeRole") == 1 + 5 + 1
    assert h.row("role-00")["last_error"] is None and h.source_status()["next_attempt"] is None


# Malformed replies -------------------------------------------------------------------------------

MALFORMED = {
    "half a document": lambda body: body[:len(body) // 2],  # a whole HTTP reply, cut in the XML
    "a field missing": lambda body: re.sub(rb"<SessionToken>[^<]*</SessionToken>", b"", body),
    "8 MiB": lambda body: body.replace(b"<SessionToken>", b"<SessionToken>" + b"A" * (8 << 20)),
    "an entity bomb": lambda body: BOMB + body.replace(b"<SessionToken>", b"<SessionToken>&j;"),
    "an external entity": lambda body: (b'<!DOCTYPE r [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                                        + body.replace(b"<SessionToken>", b"<SessionToken>&e;")),
}


@pytest.mark.parametrize("rewrite", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_reply_is_tried_again_later_not_at_once(harness, rewrite):
    """A malformed 200 is most likely a proxy's or a passing fault: retried, with backoff, never in a loop."""
    h = harness(roles=1)
    h.daemon.refresh_all()
    old = h.serve("role-00")["credentials"]
    h.front.inject("rewrite", "AssumeRole", FOREVER, rewrite)
    h.run_due()
    assert h.front.count("AssumeRole") == 2  # one call: botocore does not retry a reply it could not use
    row = h.row("role-00")
    assert row["last_error_kind"] == "bad_reply" and "credd tries again later" in row["last_error"]
    assert row["next_attempt"] == utc(h.now() + timedelta(seconds=shortest_backoff(1)))
    assert h.serve("role-00")["credentials"] == old  # still valid: still served
    h.run_due()
    assert h.front.count("AssumeRole") == 3 and h.row("role-00")["failures_in_a_row"] == 2
    h.front.clear_faults()
    h.run_due()
    assert h.serve("role-00")["credentials"]["AccessKeyId"] != old["AccessKeyId"]
    assert h.row("role-00")["last_error"] is None


# Expired, short, long and skewed expiries -------------------------------------------------------

def test_a_clock_behind_sts_keeps_expiry_in_local_time_never_past_the_real_one_and_is_said_once(harness, caplog):
    h = harness(roles=1)
    h.front.clock_offset = 10 * 60  # STS's clock is 10 min ahead: its Expirations are 10 min "late" here
    caplog.set_level(logging.WARNING, "credd")
    h.daemon.refresh_all()
    issued = h.now()
    for profile, life in (("alice-session", timedelta(hours=12)), ("role-00", timedelta(hours=1))):
        assert h.serve(profile)["credentials"]["Expiration"] == utc(issued + life)
    assert h.in_file("role-00")["x_credd_expiration"] == utc(issued + timedelta(hours=1))
    source = h.source_status()
    assert source["clock_skew_seconds"] == -600
    assert source["clock_warning"] == ("this machine's clock is 10 min behind STS's; "
                                       "check timedatectl/NTP (`credd doctor`)")
    h.daemon.handle({"op": "refresh", "profiles": []})
    assert sum("10 min behind STS's" in r.getMessage() for r in caplog.records) == 1  # said once

    h.rig.clock.advance(59 * 60)  # the role's real end is an hour after it was issued, by either clock
    assert h.daemon.engine.credentials("role-00") is None


def test_a_clock_ahead_of_sts_keeps_credentials_whose_expiration_it_thinks_past(harness):
    h = harness(roles=1)
    h.front.signature_window = None  # so far off that AWS would refuse the signature; the front takes it
    h.front.clock_offset = -2 * HOUR  # every Expiration STS sends is an hour in the past by this clock
    h.daemon.refresh_all()
    reply = h.serve("role-00")
    assert reply["ok"] and reply["credentials"]["Expiration"] == utc(h.now() + timedelta(hours=1))
    assert h.source_status()["clock_warning"].startswith("this machine's clock is 120 min ahead of STS's")


@pytest.mark.parametrize("offset, words", [(20 * 60, "20 min behind"), (-20 * 60, "20 min ahead of")])
def test_a_clock_more_than_15_minutes_off_is_a_clock_error_that_says_how_far(harness, offset, words):
    h = harness(roles=1)
    h.front.clock_offset = offset  # AWS refuses the signature: "Signature expired" / "not yet current"
    h.daemon.refresh_all()
    row = h.row("role-00")
    assert row["state"] == "no-credentials" and row["last_error_kind"] == "clock"
    assert f"this machine's clock is {words} STS's; set it right" in row["last_error"]
    assert h.source_status()["next_attempt"] is not None  # retried: someone may set the clock right
    assert h.front.count("GetSessionToken") == 1  # botocore does not retry it
    h.front.clock_offset = 0
    h.run_due()
    assert h.serve("role-00")["ok"]


def test_credentials_expired_by_stss_own_clock_are_a_failure_never_served(harness):
    h = harness(roles=1)
    h.daemon.refresh_all()
    h.rig.clock.advance(45 * 60)  # due, with 15 min left
    h.front.inject("rewrite", "AssumeRole", FOREVER, rewrite_expiration(lambda e: e - timedelta(hours=1, seconds=1)))
    reply = h.serve("role-00")  # refreshes on the spot, fails, serves the old ones: still valid
    assert reply["ok"] and reply["credentials"]["Expiration"] == utc(h.now() + timedelta(minutes=15))
    row = h.row("role-00")
    assert row["last_error_kind"] == "bad_reply" and "had expired already by STS's own clock" in row["last_error"]
    h.rig.clock.advance(15 * 60)
    assert h.serve("role-00")["ok"] is False  # expired: never served, whatever STS keeps sending


@pytest.mark.parametrize("date_header", ["auto", None, "Tuesday, noon-ish"])
def test_an_expiry_beyond_the_duration_asked_for_is_cut_to_it(harness, date_header):
    h = harness(roles=1)
    h.front.date_header = date_header  # with STS's Date, or without one (ours, then)
    h.front.inject("rewrite", "AssumeRole", 1, rewrite_expiration(lambda e: e + timedelta(hours=2)))
    reply = h.serve("role-00")
    assert reply["ok"] and reply["credentials"]["Expiration"] == utc(h.now() + timedelta(hours=1))
    assert h.plans[SOURCE] == h.now() + timedelta(minutes=40)


def test_without_a_date_an_expiration_past_by_this_clock_is_a_failure(harness):
    h = harness(roles=1)
    h.front.date_header = None
    h.front.inject("rewrite", "AssumeRole", 1, rewrite_expiration(lambda e: e - timedelta(hours=2)))
    reply = h.serve("role-00")
    assert reply["ok"] is False and "expired already" in reply["message"] and "`credd doctor`" in reply["message"]


def test_a_shorter_expiry_than_asked_for_is_kept_and_renewed_in_time(harness):
    h = harness(roles=1)
    h.front.inject("rewrite", "AssumeRole", 1, rewrite_expiration(lambda e: e - timedelta(minutes=10)))
    h.daemon.refresh_all()
    issued = h.now()
    assert h.serve("role-00")["credentials"]["Expiration"] == utc(issued + timedelta(minutes=50))
    assert h.plans[SOURCE] == issued + timedelta(minutes=30)
    h.run_due()
    assert h.serve("role-00")["credentials"]["Expiration"] == utc(h.now() + timedelta(hours=1))


# The plan: regressions -----------------------------------------------------------------------------

def test_credentials_that_live_less_than_refresh_before_are_renewed_at_half_their_life_not_in_a_loop(harness):
    h = harness(roles=1, refresh_before=50 * 60)
    h.front.inject("rewrite", "AssumeRole", FOREVER, rewrite_expiration(lambda e: e - timedelta(minutes=20)))
    h.daemon.refresh_all()
    assert h.plans[SOURCE] == h.now() + timedelta(minutes=20)  # 40 min to live: renewed after 20, not at once


def test_refreshing_one_profile_keeps_the_plan_of_the_others(harness):
    h = harness(roles=2)
    h.daemon.refresh_all()
    issued = h.now()
    h.rig.clock.advance(30 * 60)
    assert h.daemon.handle({"op": "refresh", "profiles": ["role-00"]})["ok"]
    assert h.plans[SOURCE] == issued + timedelta(minutes=40)  # role-01's time, not role-00's new one


def test_a_failure_waiting_cannot_fix_does_not_run_in_a_loop(harness):
    h = harness(roles=1)
    h.daemon.refresh_all()
    issued = h.now()
    h.front.denied_roles.add(h.rig.config.profiles["role-00"].role_arn)
    h.run_due()
    assert h.row("role-00")["last_error_kind"] == "access_denied"
    assert h.plans[SOURCE] == issued + timedelta(minutes=40) + STUCK_RETRY  # not at once, and again


def test_a_prompt_source_waiting_for_a_code_does_not_run_in_a_loop(harness):
    import pyotp

    from tests.conftest import TEST_TOTP_SEED

    h = harness(mfa="prompt")
    code = pyotp.TOTP(TEST_TOTP_SEED).at(h.rig.clock.timestamp())
    assert h.daemon.handle({"op": "mfa", "source": SOURCE, "code": code})["ok"]
    h.run_due()  # 20 min left: the session is due, and only the user can hand in a code
    assert h.row("alice-session")["last_error_kind"] == "mfa_needed"
    assert h.plans[SOURCE] == h.now() + STUCK_RETRY


# A real `credd serve` ----------------------------------------------------------------------------

def test_credd_status_says_what_happened(daemon, live_sts):
    live_sts.clock_offset = 10 * 60  # STS's clock 10 min ahead of this machine's
    live_sts.inject("rewrite", "AssumeRole", FOREVER, lambda body: b"<html><body>502 Bad Gateway</body></html>")
    daemon.start()
    daemon.wait_until("prod-admin's refresh failed",
                      lambda: daemon.ask({"op": "status"})["profiles"][1]["last_error_kind"] == "bad_reply")

    status = daemon.credd("status")
    assert status.returncode == 1, status.stderr  # a profile without credentials
    line = next(line for line in status.stdout.splitlines() if line.startswith("prod-admin "))
    assert re.search(r"no-credentials .* malformed STS reply \(\d+ failures? in a row; next attempt "
                     r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\): profile 'prod-admin': STS answered AssumeRole with a "
                     r"reply that does not parse", line), line
    assert ("warning: source alice: this machine's clock is 10 min behind STS's; check timedatectl/NTP"
            in status.stdout)
    as_json = json.loads(daemon.credd("status", "--json").stdout)
    rows = {row["profile"]: row for row in as_json["profiles"]}
    assert rows["prod-admin"]["failures_in_a_row"] >= 1 and rows["prod-admin"]["next_attempt"]
    assert rows["alice-session"]["state"] == "fresh" and rows["alice-session"]["last_error"] is None
    assert abs(as_json["sources"]["alice"]["clock_skew_seconds"] + 600) <= 5
    left = rows["alice-session"]["seconds_left"]  # 12 h by this machine's clock, not 12 h 10 min
    assert 12 * HOUR - 120 < left <= 12 * HOUR

    hook = daemon.credd("process", "prod-admin")
    assert hook.returncode == 1 and "does not parse" in hook.stderr and not hook.stdout

    live_sts.clear_faults()
    assert daemon.credd("refresh", "prod-admin").returncode == 0
    as_json = json.loads(daemon.credd("status", "--json").stdout)
    rows = {row["profile"]: row for row in as_json["profiles"]}
    assert rows["prod-admin"]["state"] == "fresh" and rows["prod-admin"]["last_error"] is None
    assert as_json["sources"]["alice"]["failures_in_a_row"] == 0
    assert daemon.stop() == 0
    assert daemon.log().count("10 min behind STS's") == 1


@pytest.mark.parametrize("action", ["GetSessionToken", "AssumeRole"])
def test_an_error_that_echoes_the_request_is_shown_masked(daemon, live_sts, action):
    # STS refuses with a message that quotes the request: the TOTP code (GetSessionToken), the session token
    # and its key id (AssumeRole). The error code and the prose are shown; none of the request's values are.
    live_sts.inject("echo", action, FOREVER)
    daemon.start()
    failing = "alice-session" if action == "GetSessionToken" else "prod-admin"
    daemon.wait_until(f"{failing}'s refresh failed",
                      lambda: {row["profile"]: row for row in daemon.ask({"op": "status"})["profiles"]}
                      [failing]["last_error"])
    (request, *_) = live_sts.of(action)
    echoed = [request.key_id]
    if action == "GetSessionToken":
        echoed.append(request.params["TokenCode"])
    else:
        echoed += [key_id for key_id, _, _ in live_sts.issued] + [token for _, _, token in live_sts.issued]
    status, as_json = daemon.credd("status"), daemon.credd("status", "--json")
    assert "STS refused " + action + " (ValidationError: 1 validation error detected: Value '" in status.stdout
    # The hook prints the daemon's failure as status shows it. Asked for a profile of a source whose
    # GetSessionToken failed, the daemon would first wait out the TOTP window it spent (up to 30 s): only the
    # AssumeRole case, which fails at once, runs it.
    hook = daemon.credd("process", "prod-admin") if action == "AssumeRole" else None
    assert hook is None or (hook.returncode == 1 and "ValidationError" in hook.stderr)
    daemon.stop()
    shown = {"status": status.stdout + status.stderr, "status --json": as_json.stdout,
             "the hook's stderr": hook.stderr if hook else "", "the daemon's log": daemon.log()}
    leaks = [(where, n) for where, text in shown.items() for n, value in enumerate(echoed) if value in text]
    assert leaks == []
