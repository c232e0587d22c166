"""Local faults: the keyring locked or gone, a read-only or full disk, a file size limit, an unwritable state
dir, the config deleted, the clock jumping. For each: what the user sees, that nothing is lost (the
credentials file's old bytes stay whole, byte for byte), that valid credentials keep being served, and
that credd recovers once the fault is gone.
"""

from __future__ import annotations

import configparser
import io
import json
import logging
import signal
import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from credd import mfa
from credd.atomicfile import update_file
from credd.commands import control
from credd.commands.serve import Runtime
from credd.context import Context
from credd.daemon import STUCK_RETRY
from credd.errors import CreddError, UsageError
from credd.refresh import BACKOFF_CAP
from credd.scheduler import ClockWatch, Scheduler
from tests.fixtures_daemon import daemon_config
from tests.fixtures_faults import (
    IS_ROOT,
    file_size_limit,
    lift_file_size_limit,
    under_file_size_limit,
)
from tests.fixtures_sts import SERIAL, SOURCE, MemoryKeyring, role_arn

# The user's own part of a credentials file: credd must keep every byte of it.
USERS_OWN = "".join(f"# team {i}\n[user-{i}]\nregion = eu-west-{i % 3}\noutput = json\n\n" for i in range(400))


def temp_files(directory: Path) -> list[str]:
    """Temporary files a write left behind (they would hold secrets)."""
    return sorted(entry.name for entry in directory.iterdir() if entry.name.endswith(".tmp"))


def rows(daemon) -> dict[str, dict]:
    """`credd status` by profile, from a daemon process over its socket."""
    return {row["profile"]: row for row in daemon.ask({"op": "status"})["profiles"]}


def rows_of(daemon) -> dict[str, dict]:
    """The same from an in-process Daemon."""
    return {row["profile"]: row for row in daemon.status()["profiles"]}


def assert_clean_log(daemon) -> None:
    assert "Traceback" not in daemon.log(), daemon.log()


# The keyring locked or gone --------------------------------------------------------------

KEYRING_FAULTS = {
    # fault: (break it, mend it, what the message must say)
    "keyring stopped": ("stop_keyring", ("start_keyring",), "keyring service is not running or cannot be reached"),
    "bus stopped": ("stop_bus", ("start_bus", "start_keyring"), "keyring service is not running or cannot be reached"),
    "keyring locked": ("lock", ("unlock",), "keyring is locked: unlock it"),
}


@pytest.mark.parametrize("fault", list(KEYRING_FAULTS))
def test_a_keyring_locked_or_gone_mid_run(keyring_daemon, keyring_bus, live_sts, fault):
    daemon = keyring_daemon
    break_it, mend_it, says = KEYRING_FAULTS[fault]
    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    getattr(keyring_bus, break_it)()

    # The session is 15 minutes long and refresh_before 899 s: within a second it needs renewing, and a
    # forced refresh of the role then needs the access key from the keyring.
    failed = []
    daemon.wait_until("a refresh that needs the keyring",
                      lambda: failed.append(daemon.ask({"op": "refresh", "profiles": ["prod-admin"]})) or
                      not failed[-1]["ok"], timeout=10)
    assert says in failed[-1]["profiles"]["prod-admin"]["message"]
    assert "tries again on its own" in failed[-1]["profiles"]["prod-admin"]["message"]
    calls = dict(live_sts.calls)

    refreshed = daemon.credd("refresh", "prod-admin")  # what the user sees
    assert refreshed.returncode == 1 and says in refreshed.stdout
    status = daemon.credd("status")
    assert status.returncode == 0 and says in status.stdout  # still fresh: the error is in LAST ERROR
    hook = daemon.credd("process", "prod-admin")  # the credentials it holds are still served
    assert hook.returncode == 0, hook.stderr
    assert json.loads(hook.stdout)["AccessKeyId"].startswith("ASIA")
    assert live_sts.calls == calls  # nothing reached STS without the key
    assert says in daemon.log()

    for step in mend_it:
        getattr(keyring_bus, step)()
    refreshed = daemon.credd("refresh", "prod-admin")
    assert refreshed.returncode == 0 and refreshed.stdout.startswith("prod-admin: renewed, valid until "), \
        refreshed.stdout
    assert rows(daemon)["prod-admin"]["last_error"] is None
    assert live_sts.calls["GetSessionToken"] > calls["GetSessionToken"]  # the key from the keyring again
    assert daemon.stop() == 0
    assert_clean_log(daemon)


def test_a_reload_while_the_keyring_is_gone_keeps_serving(keyring_daemon, keyring_bus):
    daemon = keyring_daemon
    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    keyring_bus.stop_keyring()
    daemon.process.send_signal(signal.SIGHUP)  # the same config: nothing changed that credd serves
    daemon.wait_until("the reload", lambda: "reloaded " in daemon.log())
    assert rows(daemon)["prod-admin"]["state"] == "fresh"  # taken over from before the reload
    # Within a second the session needs renewing (see above): then the new engine needs the keyring.
    failed = []
    daemon.wait_until("a refresh that needs the keyring",
                      lambda: failed.append(daemon.ask({"op": "refresh", "profiles": ["prod-admin"]})) or
                      not failed[-1]["ok"], timeout=10)
    assert "no session" in daemon.log()
    hook = daemon.credd("process", "prod-admin")
    assert hook.returncode == 0, hook.stderr
    assert daemon.stop() == 0
    assert_clean_log(daemon)


def test_a_keyring_that_refuses_the_seed_is_a_keyring_failure_retried_soon(make_daemon, sts_front, clock):
    class SeedLocked(MemoryKeyring):
        locked = False

        def get_password(self, service, user):
            if self.locked and user.endswith(":totp-seed"):
                raise RuntimeError("the collection is locked")
            return super().get_password(service, user)

    backend = SeedLocked()
    _, daemon, plans, _ = make_daemon(roles=1, backend=backend)
    backend.locked = True  # the key reads; the seed, read a moment later, does not
    daemon.refresh_all()
    row = rows_of(daemon)["role-00"]
    assert row["state"] == "no-credentials"
    assert "TOTP seed" in row["last_error"] and "keyring is locked: unlock it" in row["last_error"]
    assert sts_front.calls == {}
    assert clock.now() < plans[SOURCE] <= clock.now() + timedelta(seconds=15)  # retried with backoff, soon

    backend.locked = False
    clock.advance((plans[SOURCE] - clock.now()).total_seconds())
    daemon.refresh_all()
    assert rows_of(daemon)["role-00"]["state"] == "fresh"


def test_a_refresh_that_breaks_unexpectedly_is_retried_not_dropped(make_daemon, clock, caplog):
    _, daemon, plans, _ = make_daemon()

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    daemon.engine.refresh = broken
    daemon.refresh_all()
    assert plans[SOURCE] == clock.now() + STUCK_RETRY
    assert "source alice: refresh failed: RuntimeError" in caplog.text and "Traceback" not in caplog.text


# The credentials file cannot be written -----------------------------------------------------

def expected_reason(fault: str) -> str:
    if fault == "read-only":
        return "is read-only" if IS_ROOT else "is not writable by you"
    return {"disk-full": "is full: free some space", "file-size-limit": "file size limit"}[fault]


@pytest.mark.parametrize("fault", ["read-only", "disk-full", "file-size-limit"])
def test_an_unwritable_credentials_file_keeps_its_bytes_and_the_daemon_serving(read_only, small_disk, daemon,
                                                                                fault):
    aws = daemon.home.credentials.parent
    credentials = daemon.home.credentials
    wrapper: list[str] = []
    if fault == "disk-full":
        small_disk(aws)
    aws.mkdir(mode=0o700, exist_ok=True)
    credentials.write_text(USERS_OWN)
    old = credentials.read_bytes()
    if fault == "read-only":
        read_only(aws)
    elif fault == "disk-full":
        filler = small_disk.fill(aws)
    else:
        wrapper = under_file_size_limit(len(old) // 2)  # the daemon starts under it; its log stays far below

    daemon.start(wrapper=wrapper)
    daemon.wait_until("the failed write reported", lambda: rows(daemon)["alice-session"]["last_error"])
    error = rows(daemon)["alice-session"]["last_error"]
    assert expected_reason(fault) in error and str(credentials) in error and "left as it was" in error
    assert "still serves these credentials over its socket" in error
    assert credentials.read_bytes() == old  # byte for byte
    assert temp_files(aws) == []
    status = daemon.credd("status")  # served over the socket, but `aws` reads the file, which lacks them
    assert status.returncode == 1 and expected_reason(fault) in status.stdout
    assert rows(daemon)["alice-session"]["state"] == "not-written"
    hook = daemon.credd("process", "alice-session")
    assert hook.returncode == 0, hook.stderr
    served = json.loads(hook.stdout)
    assert daemon.process.poll() is None  # a file size limit fails the write, it does not kill the daemon
    assert "not written" in daemon.log()

    if fault == "read-only":
        read_only.release(aws)
    elif fault == "disk-full":
        filler.unlink()
    else:
        lift_file_size_limit(daemon.process.pid)
    # The next refresh, even of another profile (prod-admin is not written), writes what was left out.
    assert daemon.credd("refresh", "prod-admin").returncode == 0
    text = credentials.read_text()
    assert text.startswith(USERS_OWN)
    parsed = configparser.RawConfigParser()
    parsed.read_string(text)
    assert parsed["alice-session"]["aws_access_key_id"] == served["AccessKeyId"]
    assert parsed["alice-session"]["aws_session_token"] == served["SessionToken"]
    assert rows(daemon)["alice-session"]["last_error"] is None
    assert temp_files(aws) == []
    assert daemon.stop() == 0
    assert_clean_log(daemon)


def append_section(text: str) -> str:
    return text + "[added]\nregion = us-east-1\n"


def test_a_write_past_the_file_size_limit_keeps_the_old_file(tmp_path):
    path = tmp_path / "aws" / "credentials"
    path.parent.mkdir()
    path.write_text(USERS_OWN * 4)  # about 100 kB
    old = path.read_bytes()
    with file_size_limit(len(old) // 4), pytest.raises(CreddError) as raised:
        update_file(path, append_section)
    message = str(raised.value)
    assert message.startswith(f"cannot update {path}: File too large; ") and "`ulimit -f`" in message
    assert "left as it was" in message
    assert path.read_bytes() == old
    assert temp_files(path.parent) == []
    assert update_file(path, append_section)  # the limit gone, the same write goes through
    assert path.read_bytes() == old + b"[added]\nregion = us-east-1\n"


def test_a_full_disk_keeps_the_old_file(small_disk, tmp_path):
    disk = small_disk(tmp_path / "disk")
    path = disk / "credentials"
    path.write_text(USERS_OWN)
    old = path.read_bytes()
    filler = small_disk.fill(disk)
    with pytest.raises(CreddError) as raised:
        update_file(path, append_section)
    assert str(raised.value) == (f"cannot update {path}: No space left on device; the file system holding {disk} "
                                 "is full: free some space; the file was left as it was")
    assert path.read_bytes() == old
    assert temp_files(disk) == []
    filler.unlink()
    assert update_file(path, append_section)
    assert path.read_bytes() == old + b"[added]\nregion = us-east-1\n"


# The state dir cannot be written ---------------------------------------------------------------

def test_mfa_windows_stay_in_memory_while_the_state_dir_is_read_only(read_only, tmp_path, caplog):
    state = read_only(tmp_path / "state")
    windows = mfa.UsedWindows(mfa.state_file(state))
    now = 1_906_977_605.0
    claimed = [windows.claim(SERIAL, now) for _ in range(3)]
    windows.record(SERIAL, claimed[-1])
    assert claimed == [mfa.window_at(now) + n for n in range(3)]  # no code reused
    assert caplog.text.count("cannot write the MFA window state file") == 1  # said once, not per code
    assert "keeps the MFA windows it used in memory" in caplog.text
    assert not mfa.state_file(state).exists()

    read_only.release(state)
    assert windows.claim(SERIAL, now) == claimed[-1] + 1
    assert json.loads(mfa.state_file(state).read_text())["last_window"] == {SERIAL: claimed[-1] + 1}
    assert "is written again" in caplog.text


def test_a_reload_keeps_the_mfa_windows_an_unwritable_state_dir_holds_in_memory(read_only, plaintext_keyring):
    home = plaintext_keyring
    home.write_config(daemon_config("http://127.0.0.1:9"))
    read_only(Path(home.env["XDG_STATE_HOME"]) / "credd")
    ctx = Context(env=home.env, stdout=io.StringIO(), stderr=io.StringIO())
    config = ctx.load_config()
    runtime = Runtime(ctx, config, ctx.open_store(config))
    runtime.scheduler.start()
    now = 1_906_977_605.0
    used = runtime.daemon.engine.windows.claim(SERIAL, now)
    runtime.daemon.engine.windows.record(SERIAL, used)  # in memory only: the state dir is read-only
    try:
        runtime.reload()
        assert runtime.daemon.engine.windows.claim(SERIAL, now) == used + 1  # not the window just used
    finally:
        runtime.scheduler.shutdown()


def test_no_code_is_reused_while_the_state_dir_is_read_only(sts_rig, sts_front, clock, read_only, caplog):
    rig = sts_rig()
    read_only(rig.state_dir)
    engine = rig.engine()
    assert engine.refresh(SOURCE, new_session=True).ok
    assert engine.refresh(SOURCE, new_session=True).ok  # the strict front refuses a code used before
    windows = [window for _, window, _ in sts_front.accepted_codes]
    assert len(windows) == 2 and windows[1] == windows[0] + 1
    assert caplog.text.count("cannot write the MFA window state file") == 1


def test_the_daemon_refreshes_with_a_read_only_state_dir(read_only, daemon):
    state = read_only(Path(daemon.home.env["XDG_STATE_HOME"]) / "credd")
    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    assert daemon.credd("process", "prod-admin").returncode == 0
    assert daemon.stop() == 0
    assert daemon.log().count("cannot write the MFA window state file") == 1
    assert not mfa.state_file(state).exists()
    assert_clean_log(daemon)


# The config deleted while running -----------------------------------------------------------------

def test_a_deleted_config_keeps_the_running_one(daemon, live_sts):
    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    config = daemon.home.config
    text = config.read_text()
    config.unlink()
    assert daemon.credd("process", "prod-admin").returncode == 0

    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_until("the reload refused", lambda: "reload: the config file" in daemon.log())
    assert f"reload: the config file {config} is gone; credd keeps serving the config it runs (2 profile(s))" \
        in daemon.log()
    assert daemon.process.poll() is None
    assert daemon.credd("process", "prod-admin").returncode == 0
    assert daemon.ask({"op": "status"})["config"] == str(config)
    assert daemon.ask({"op": "refresh", "profiles": ["prod-admin"]})["ok"]  # and it keeps refreshing

    config.write_text(text)
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_until("the reload", lambda: f"reloaded {config}" in daemon.log())
    assert daemon.credd("process", "prod-admin").returncode == 0
    assert daemon.stop() == 0
    assert_clean_log(daemon)


# The clock jumping -------------------------------------------------------------------------------

class Wall:
    """The wall clock ClockWatch looks at, moved by the test; the monotonic clock stands still."""

    def __init__(self, clock) -> None:
        self.clock = clock
        self.now = clock.timestamp()

    def follow(self) -> None:
        self.now = self.clock.timestamp()

    def watch(self) -> ClockWatch:
        return ClockWatch(lambda: self.now, lambda: 0.0)


def test_a_forward_jump_serves_nothing_expired_and_refreshes_once(make_daemon, sts_front, clock):
    _, daemon, _, _ = make_daemon(roles=1)
    wall = Wall(clock)
    overdue_ran = threading.Event()

    def on_due(source: str) -> None:
        daemon.refresh_all([source])
        overdue_ran.set()

    scheduler = Scheduler(on_due, daemon.refresh_all, watch=wall.watch(), watch_interval=3600)
    daemon.plan = scheduler.plan
    scheduler.start()
    try:
        daemon.refresh_all()  # the role's refresh is planned 40 minutes out
        clock.advance(8 * 3600)  # a night asleep: the role expired, the 12-hour session did not
        wall.follow()
        reply = daemon.handle({"op": "credentials", "profile": "role-00"})  # before the watch noticed
        assert reply["ok"]
        assert reply["credentials"]["Expiration"] == (clock.now() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        assert scheduler.check_clock() is True  # the catch-up, and the overdue job it wakes
        assert overdue_ran.wait(10), "the overdue job did not run after the wake-up"
    finally:
        scheduler.shutdown()
    assert sts_front.calls == {"GetSessionToken": 1, "AssumeRole": 2}  # one renewal: no storm
    assert scheduler.planned(SOURCE) is None or scheduler.planned(SOURCE) > clock.now()


def test_a_clock_set_back_recomputes_the_plan_without_a_storm(make_daemon, sts_front, clock):
    _, daemon, plans, _ = make_daemon(roles=2)
    sts_front.denied_roles.add(role_arn(1))  # a failure waiting cannot fix: a look again in 15 minutes
    wall = Wall(clock)
    scheduler = Scheduler(lambda source: None, daemon.refresh_all, watch=wall.watch(), watch_interval=3600)
    daemon.refresh_all()
    assert plans[SOURCE] == clock.now() + STUCK_RETRY
    expiration = daemon.engine.credentials("role-00").expiration
    calls = dict(sts_front.calls)

    clock.advance(-2 * 3600)  # NTP sets the clock back two hours: that look would now come in 2 h 15 min
    wall.follow()
    assert scheduler.check_clock() is True
    assert plans[SOURCE] == clock.now() + STUCK_RETRY  # recomputed from the new time
    assert sts_front.calls == {**calls, "AssumeRole": calls["AssumeRole"] + 1}  # one look at role-01, no storm
    row = rows_of(daemon)["role-00"]  # what was valid is served, its time left by the new clock
    assert row["state"] == "fresh" and row["seconds_left"] == int((expiration - clock.now()).total_seconds())
    assert scheduler.check_clock() is False  # measured from the last look: one jump, one catch-up


def test_a_clock_set_back_while_backing_off_does_not_hold_retries_for_hours(make_daemon, sts_front, clock):
    _, daemon, plans, _ = make_daemon(roles=1)
    wall = Wall(clock)
    scheduler = Scheduler(lambda source: None, daemon.refresh_all, watch=wall.watch(), watch_interval=3600)
    sts_front.inject("drop", times=float("inf"))  # STS down from the start: nothing to serve, a retry in seconds
    daemon.refresh_all()
    assert plans[SOURCE] <= clock.now() + timedelta(seconds=15)

    sts_front.clear_faults()  # STS is back, and before the retry came NTP set the clock back two hours
    clock.advance(-2 * 3600)
    wall.follow()
    assert daemon.handle({"op": "credentials", "profile": "role-00"})["ok"]  # asked for: tried at once
    calls = dict(sts_front.calls)
    assert scheduler.check_clock() is True
    assert sts_front.calls == calls  # the catch-up finds everything fresh
    assert plans[SOURCE] == daemon.engine.credentials("role-00").expiration - timedelta(minutes=20)


def test_a_clock_set_back_while_backing_off_plans_no_further_ahead_than_the_longest_backoff(make_daemon, sts_front,
                                                                                             clock):
    _, daemon, plans, _ = make_daemon(roles=1)
    daemon.refresh_all()
    clock.advance(45 * 60)  # the role is due, and STS is down: it keeps being served while credd backs off
    sts_front.inject("drop", times=float("inf"))
    daemon.refresh_all()
    assert clock.now() < plans[SOURCE] <= clock.now() + timedelta(seconds=15)
    clock.advance(-2 * 3600)  # NTP sets the clock back: the retry time computed before lies 2 h ahead
    daemon.refresh_all()  # the catch-up after the jump (the role now looks fresh: no call)
    assert plans[SOURCE] == clock.now() + BACKOFF_CAP


def test_a_clock_set_back_does_not_block_new_mfa_codes(sts_rig, sts_front, clock, caplog):
    caplog.set_level(logging.WARNING)
    engine = sts_rig().engine()
    assert engine.refresh(SOURCE, new_session=True).ok
    assert engine.refresh(SOURCE, new_session=True).ok  # a second code in the same window waits for the next
    clock.advance(-2 * 3600)
    waited = len(clock.sleeps)
    result = engine.refresh(SOURCE, new_session=True)
    assert result.ok and result.session_from == "sts"
    assert clock.sleeps[waited:] == []  # no wait for a window two hours ahead
    assert "the clock was set back" in caplog.text
    assert engine.refresh(SOURCE, new_session=True).ok  # and after the jump still no code twice
    windows = [window for _, window, _ in sts_front.accepted_codes]
    assert len(set(windows)) == len(windows) == 4
    restarted = mfa.UsedWindows(engine.windows.path)  # a restart is not blocked by the old record either
    assert restarted.claim(SERIAL, clock.timestamp()) == windows[-1] + 1



def test_the_control_commands_find_the_socket_of_a_config_broken_or_gone(tmp_path):
    config = tmp_path / "config.yaml"
    sock = tmp_path / "run" / "credd.sock"
    good = daemon_config("http://127.0.0.1:9") + f"socket: {sock}\n"
    stderr = io.StringIO()
    ctx = Context(env={"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "xdg")}, stderr=stderr,
                  config_arg=str(config))
    config.write_text(good)
    assert control.socket_path(ctx) == str(sock) and stderr.getvalue() == ""
    config.write_text(good + "profiles_typo: {}\n")  # an edit in progress: the daemon runs the config before it
    assert control.socket_path(ctx) == str(sock)
    assert f"{config}:" in stderr.getvalue() and "profiles_typo" in stderr.getvalue()
    config.unlink()
    assert control.socket_path(ctx) == str(tmp_path / "xdg" / "credd" / "credd.sock")  # the default, as the hook
    with pytest.raises(UsageError, match="relative"):
        control.socket_path(replace(ctx, env={**ctx.env, "CREDD_SOCKET": "credd.sock"}))


def test_status_and_refresh_reach_a_daemon_whose_config_was_deleted(daemon):
    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    daemon.home.config.unlink()
    status = daemon.credd("status")  # CREDD_SOCKET is set
    assert status.returncode == 0, status.stderr
    refreshed = daemon.credd("refresh", "prod-admin")
    assert refreshed.returncode == 0, refreshed.stderr
