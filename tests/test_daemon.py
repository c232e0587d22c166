"""The daemon's logic in-process, against the local STS with a frozen clock: file writes, on-demand
refresh shared by concurrent requests, expiry, MFA hand-in, the plan, and catch-up after a suspend."""

from __future__ import annotations

import configparser
import logging
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from credd.daemon import STUCK_RETRY
from credd.errors import CreddError
from credd.filesync import UNWRITTEN_RETRY
from credd.scheduler import ClockWatch, Scheduler
from tests.fixtures_sts import SOURCE


def read_file(path: Path) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser()
    parser.read(path)
    return parser


def test_refresh_writes_owned_profiles_and_plans_ahead(make_daemon, sts_front, clock):
    rig, daemon, plans, credentials = make_daemon(roles=2)
    rig.config.profiles["role-01"] = replace(rig.config.profiles["role-01"], write=False)
    daemon.refresh_all()
    parsed = read_file(credentials)
    assert parsed.sections() == ["alice-session", "role-00"]  # role-01 has write: false
    served = daemon.engine.credentials("role-00")
    assert parsed["role-00"]["aws_access_key_id"] == served.access_key_id
    assert parsed["role-00"]["aws_session_token"] == served.session_token.reveal()
    # The roles live an hour: the next run is 20 minutes before that.
    assert plans[SOURCE] == clock.now() + timedelta(minutes=40)


def test_credentials_request_serves_and_refreshes_on_the_spot(make_daemon, sts_front, clock):
    _, daemon, _, _ = make_daemon(roles=1)
    reply = daemon.handle({"op": "credentials", "profile": "role-00"})
    assert reply["ok"] and reply["credentials"]["Version"] == 1
    assert reply["credentials"]["Expiration"] == (clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert sts_front.calls == {"GetSessionToken": 1, "AssumeRole": 1}
    clock.advance(45 * 60)  # 15 minutes left: under refresh_before, so the request refreshes first
    reply = daemon.handle({"op": "credentials", "profile": "role-00"})
    assert sts_front.calls["AssumeRole"] == 2
    assert reply["credentials"]["Expiration"] == (clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_concurrent_requests_for_one_profile_share_one_sts_call(make_daemon, sts_front, clock):
    _, daemon, _, _ = make_daemon(roles=1)
    daemon.refresh_all()
    clock.advance(45 * 60)
    with ThreadPoolExecutor(20) as pool:
        replies = list(pool.map(lambda _: daemon.credentials("role-00"), range(20)))
    assert all(reply["ok"] for reply in replies)
    assert len({reply["credentials"]["SessionToken"] for reply in replies}) == 1
    assert sts_front.calls["AssumeRole"] == 2  # the first refresh, then one for all twenty requests


def test_the_start_up_refresh_and_the_first_requests_share_one_session(make_daemon, sts_front, clock):
    """`credd serve` answers requests while its start-up refresh runs: they wait on the source, not call STS."""
    _, daemon, _, _ = make_daemon(roles=1)
    sts_front.latency = 0.2  # each STS call stays in flight a while, so the requests come while the first is out
    with ThreadPoolExecutor(9) as pool:
        start = pool.submit(daemon.refresh_all)
        replies = list(pool.map(daemon.credentials, ["role-00", "alice-session"] * 4))
        start.result()
    assert all(reply["ok"] for reply in replies)
    assert sts_front.calls == {"GetSessionToken": 1, "AssumeRole": 1}
    assert len(sts_front.issued) == 1


def test_expired_and_unrefreshable_credentials_leave_the_file(make_daemon, sts_front, clock):
    _, daemon, plans, credentials = make_daemon(roles=1, session_profile=False)
    credentials.parent.mkdir(mode=0o700)
    credentials.write_text("# mine\n[default]\nregion = eu-west-1\n")
    daemon.refresh_all()
    assert "role-00" in read_file(credentials).sections()
    sts_front.inject("drop", times=1000)
    clock.advance(3600)  # expired, and STS cannot be reached
    daemon.refresh_all()
    assert credentials.read_text() == "# mine\n[default]\nregion = eu-west-1\n"  # every other byte as it was
    reply = daemon.handle({"op": "credentials", "profile": "role-00"})
    assert reply["ok"] is False and reply["error"] == "failed"
    status = {row["profile"]: row for row in daemon.status()["profiles"]}
    assert status["role-00"]["state"] == "no-credentials" and status["role-00"]["last_error"]
    assert plans[SOURCE] > clock.now()  # a retry is planned with backoff, not a storm


def test_prompt_source_asks_for_a_code_then_serves(make_daemon, sts_front, clock):
    import pyotp

    from tests.conftest import TEST_TOTP_SEED

    _, daemon, plans, _ = make_daemon(roles=1, mfa="prompt")
    daemon.refresh_all()
    reply = daemon.handle({"op": "credentials", "profile": "role-00"})
    assert reply == {"ok": False, "error": "mfa-required", "source": SOURCE, "message": reply["message"]}
    assert plans[SOURCE] == clock.now() + STUCK_RETRY  # nothing to renew until a code comes; then a look
    code = pyotp.TOTP(TEST_TOTP_SEED).at(clock.timestamp())
    handed = daemon.handle({"op": "mfa", "source": SOURCE, "code": code})
    assert handed["ok"], handed
    assert daemon.handle({"op": "credentials", "profile": "role-00"})["ok"]
    assert sts_front.calls["GetSessionToken"] == 1


def test_unknown_names(make_daemon):
    _, daemon, _, _ = make_daemon()
    assert daemon.handle({"op": "credentials", "profile": "nope"})["error"] == "unknown-profile"
    assert daemon.handle({"op": "mfa", "source": "nope", "code": "123456"})["error"] == "unknown-source"
    assert daemon.handle({"op": "refresh", "profiles": ["nope"]})["error"] == "unknown-profile"


def test_refresh_op_forces_and_reports(make_daemon, sts_front):
    _, daemon, _, _ = make_daemon(roles=2)
    daemon.refresh_all()
    reply = daemon.handle({"op": "refresh", "profiles": ["role-01"]})
    expiration = daemon.engine.credentials("role-01").expiration.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert reply == {"ok": True, "profiles": {"role-01": {  # ok and message: what older clients read
        "ok": True, "message": None, "outcome": "renewed", "expiration": expiration, "renewed": True,
        "written": True, "reason": None}}}
    assert sts_front.calls["AssumeRole"] == 3


def test_refresh_says_what_was_not_renewed_and_why(make_daemon, sts_front, clock):
    _, daemon, _, _ = make_daemon(roles=1)
    daemon.refresh_all()
    clock.advance(60)
    sts_front.inject("drop", times=float("inf"))  # STS out of reach
    reply = daemon.handle({"op": "refresh", "profiles": []})
    role, session = reply["profiles"]["role-00"], reply["profiles"]["alice-session"]
    assert reply["ok"] is False
    assert role["ok"] is False and role["outcome"] == "valid" and role["renewed"] is False
    assert "cannot reach STS" in role["reason"] and role["expiration"]
    # The session was not renewed either: the one in memory is still fresh, and a new one costs a code.
    assert session["outcome"] == "valid" and session["renewed"] is False and session["ok"] is True
    assert "still fresh, and a new one costs an MFA code" in session["reason"]
    assert sts_front.calls["GetSessionToken"] == 1


def long_term_section(name: str, key_id: str) -> str:
    return f"[{name}]\naws_access_key_id = {key_id}\naws_secret_access_key = x\n"


def test_a_long_term_key_of_another_identity_is_refused_and_shadows_the_profile(make_daemon, clock):
    _, daemon, _, credentials = make_daemon(roles=1)
    credentials.parent.mkdir(mode=0o700)
    original = "# mine\n" + long_term_section("alice-session", "AKIAOLDOLDOLDOLDOLD1")
    credentials.write_text(original)
    daemon.refresh_all()
    parsed = read_file(credentials)
    assert parsed["alice-session"]["aws_access_key_id"] == "AKIAOLDOLDOLDOLDOLD1"  # left as it was
    assert parsed["role-00"]["aws_session_token"]  # the other profile is written all the same
    status = {row["profile"]: row for row in daemon.status()["profiles"]}
    row = status["alice-session"]
    assert row["state"] == "shadowed" and row["last_error_kind"] == "shadowed"
    assert status["role-00"]["state"] == "fresh"
    # Not `credd keys import`: that would give alice another identity's key.
    assert "keys import" not in row["last_error"]
    assert (f"[alice-session] at {credentials}:2 holds a long-term access key (AKIA…OLD1) that credd does not "
            "overwrite, so `aws --profile alice-session` uses that key" in row["last_error"])
    assert "alice's key in the keyring is AKIA…MPLE" in row["last_error"]
    assert f"move or rename section [alice-session], or remove its key by hand, at {credentials}:2" in row["last_error"]
    assert "set `write: false` for profile alice-session" in row["last_error"]
    reply = daemon.handle({"op": "refresh", "profiles": ["alice-session"]})
    assert reply["ok"] is False and reply["profiles"]["alice-session"]["outcome"] == "not-written"
    assert reply["profiles"]["alice-session"]["written"] is False


def test_a_long_term_key_that_is_the_sources_own_is_to_be_imported(make_daemon, clock):
    from tests.conftest import TEST_KEY_ID

    _, daemon, _, credentials = make_daemon(roles=0)
    credentials.parent.mkdir(mode=0o700)
    credentials.write_text(long_term_section("alice-session", TEST_KEY_ID))
    daemon.refresh_all()
    row = daemon.status()["profiles"][0]
    assert row["state"] == "shadowed"
    assert "`credd keys import alice --from-profile alice-session`" in row["last_error"]


HINT_CONFIG = "/home/you/my config.yaml"  # the daemon runs as `credd --config '/home/you/my config.yaml' serve`
WITH_CONFIG = "credd --config '/home/you/my config.yaml'"


def test_the_endpoints_say_why_not_fresh_with_the_daemons_config(make_daemon):
    """The container endpoint's and IMDS's 503 name the status command the user runs, --config and all."""
    _, daemon, _, _ = make_daemon(roles=1, hint_config=HINT_CONFIG)
    assert daemon.not_fresh("role-00") == (f"credd holds no fresh credentials for profile role-00 right now; run "
                                           f"`{WITH_CONFIG} status` to see why (it renews them on its own schedule)")


def test_the_fix_for_a_shadowed_section_names_keys_import_with_the_daemons_config(make_daemon, clock):
    from tests.conftest import TEST_KEY_ID

    _, daemon, _, credentials = make_daemon(roles=0, hint_config=HINT_CONFIG)
    credentials.parent.mkdir(mode=0o700)
    credentials.write_text(long_term_section("alice-session", TEST_KEY_ID))
    daemon.refresh_all()
    row = daemon.status()["profiles"][0]
    assert row["state"] == "shadowed"
    assert row["last_error"].endswith(f"remove it from the file with "
                                      f"`{WITH_CONFIG} keys import alice --from-profile alice-session`")


def test_a_wall_clock_jump_catches_up_at_once(make_daemon, sts_front, clock):
    _, daemon, _, _ = make_daemon(roles=1)
    daemon.refresh_all()
    wall = [clock.timestamp()]
    scheduler = Scheduler(lambda source: None, daemon.refresh_all,
                          watch=ClockWatch(lambda: wall[0], lambda: 0.0), watch_interval=3600)
    clock.advance(8 * 3600)  # a night asleep: every credential is past its refresh time
    wall[0] = clock.timestamp()
    assert scheduler.check_clock() is True
    assert sts_front.calls["AssumeRole"] == 2
    assert daemon.handle({"op": "status"})["profiles"][1]["state"] == "fresh"


class FailingWriter:
    """The file writer, failing as a read-only directory makes it fail while `broken`; counts its tries."""

    def __init__(self, write) -> None:
        self.write = write
        self.broken = True
        self.tries = 0

    def __call__(self, write, remove) -> None:
        self.tries += 1
        if self.broken:
            raise CreddError("cannot update credentials: Read-only file system; the file was left as it was")
        self.write(write, remove)


def test_credentials_the_file_could_not_take_are_written_within_a_minute(make_daemon, sts_front, clock, caplog):
    caplog.set_level(logging.DEBUG, logger="credd.daemon")
    _, daemon, plans, credentials = make_daemon(roles=1)
    writer = daemon.files.write = FailingWriter(daemon.files.write)
    start = clock.now()
    daemon.refresh_all()
    assert not credentials.exists()
    assert plans[SOURCE] == start + UNWRITTEN_RETRY  # not in 40 minutes, when the role is due; nor sooner
    calls = dict(sts_front.calls)

    clock.advance(UNWRITTEN_RETRY.total_seconds())  # the planned run, the fault still there: another minute
    daemon.refresh_all([SOURCE])
    assert writer.tries == 2 and plans[SOURCE] == clock.now() + UNWRITTEN_RETRY
    not_written = [r for r in caplog.records if "not written" in r.getMessage()]
    assert [r.levelno for r in not_written] == [logging.ERROR, logging.DEBUG]  # said once, not once a minute

    writer.broken = False  # the fault cleared: the next planned run catches the file up
    clock.advance(UNWRITTEN_RETRY.total_seconds())
    daemon.refresh_all([SOURCE])
    parsed = read_file(credentials)
    for name in ("alice-session", "role-00"):
        assert parsed[name]["aws_session_token"] == daemon.engine.credentials(name).session_token.reveal()
    assert sts_front.calls == calls  # catching up costs STS nothing
    assert plans[SOURCE] == start + timedelta(minutes=40)  # back to the role's refresh time
    assert daemon.status()["profiles"][1]["last_error"] is None
    assert sum("written to" in r.getMessage() and "again" in r.getMessage() for r in caplog.records) == 2


def test_a_request_failing_while_backing_off_says_when_credd_tries_again(make_daemon, sts_front, clock):
    _, daemon, _, _ = make_daemon(roles=1)
    sts_front.inject("drop", times=float("inf"))
    daemon.refresh_all()
    trouble = daemon.engine.trouble(SOURCE)
    clock.advance(5)
    reply = daemon.handle({"op": "credentials", "profile": "role-00"})  # held back: tried 5 s ago
    assert reply["ok"] is False and reply["error"] == "failed"
    wait = math.ceil((trouble.retry_at - clock.now()).total_seconds())
    assert 0 < wait <= 10  # the first backoff: 7.5 to 15 s
    assert reply["message"] == (f"{trouble.failure.message.rstrip('.')}; next attempt at "
                                f"{trouble.retry_at:%Y-%m-%dT%H:%M:%SZ} (in {wait}s), or run `credd refresh role-00` "
                                "to try now")

    sts_front.clear_faults()
    assert daemon.handle({"op": "refresh", "profiles": ["role-00"]})["ok"]  # which it does
    assert daemon.engine.trouble(SOURCE) is None


def test_a_failed_write_names_doctor_with_the_daemons_config(make_daemon, clock):
    _, daemon, _, credentials = make_daemon(roles=1, hint_config=HINT_CONFIG)
    credentials.parent.write_text("")  # a file where the directory should be
    daemon.refresh_all()
    row = daemon.status()["profiles"][1]
    assert row["state"] == "not-written"
    assert f"it and its directory must be yours and writable (`{WITH_CONFIG} doctor` checks them)" in row["last_error"]


def test_a_request_failing_while_backing_off_names_refresh_with_the_daemons_config(make_daemon, sts_front, clock):
    _, daemon, _, _ = make_daemon(roles=1, hint_config=HINT_CONFIG)
    sts_front.inject("drop", times=float("inf"))
    daemon.refresh_all()
    clock.advance(5)
    reply = daemon.handle({"op": "credentials", "profile": "role-00"})
    assert reply["message"].endswith(f"or run `{WITH_CONFIG} refresh role-00` to try now")


def test_quick_reply_serves_only_fresh_credentials_and_pings(make_daemon, sts_front, clock):
    _, daemon, _, _ = make_daemon(roles=1)
    assert daemon.quick_reply({"op": "credentials", "profile": "role-00"}) is None  # nothing yet: a refresh is due
    daemon.refresh_all()
    calls = dict(sts_front.calls)
    quick = daemon.quick_reply({"op": "credentials", "profile": "role-00"})
    assert quick == daemon.handle({"op": "credentials", "profile": "role-00"})
    assert quick["credentials"]["SessionToken"] == daemon.engine.credentials("role-00").session_token.reveal()
    assert daemon.quick_reply({"op": "ping"})["ok"] is True
    for request in ({"op": "status"}, {"op": "refresh", "profiles": []}, {"op": "credentials", "profile": "nope"}):
        assert daemon.quick_reply(request) is None  # the pool answers these
    clock.advance(45 * 60)  # 15 minutes left, under refresh_before: no longer fresh, so not quick
    assert daemon.quick_reply({"op": "credentials", "profile": "role-00"}) is None
    assert sts_front.calls == calls  # quick replies never call STS
