"""MFA code sources and the no-reuse window: pure window arithmetic, the state file, real commands."""

from __future__ import annotations

import ast
import json
import logging
import os
import sys
import threading
from pathlib import Path

import pyotp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from credd import mfa
from credd.errors import MfaCodeUsedError, MfaError, SecretFormatError
from credd.model import FailureKind, Secret, Source
from tests.conftest import TEST_TOTP_SEED

SERIAL = "arn:aws:iam::111111111111:mfa/alice"
T0 = 1_906_977_600.0  # a window boundary (2030-06-06T08:00:00Z)


def source(mfa_method: str = "totp", command: tuple[str, ...] | None = None) -> Source:
    return Source("alice", SERIAL, mfa_method, command, 43200, "us-east-1", None)


# The window: pure ------------------------------------------------------------------

def test_the_window_arithmetic_is_pure():
    """credd/mfa/windows.py imports nothing: no clock, file or keyring can reach the arithmetic."""
    from credd.mfa import windows

    tree = ast.parse(Path(windows.__file__).read_text())
    imports = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert [getattr(node, "module", None) for node in imports] == ["__future__"]


@pytest.mark.parametrize("now, last, expected", [
    (T0 + 5, None, 0),  # never used: this window
    (T0 + 5, -1, 0),  # used the previous one: this one is free
    (T0 + 5, 0, 1),  # used this one: the next
    (T0 + 29.9, 0, 1),
    (T0 + 30, 0, 1),  # the next has started
    (T0 + 5, 1, 2),  # a retry already took the next one
    (T0 + 5, 50, 0),  # far in the future: the clock was set back; do not wait for hours
])
def test_next_window(now, last, expected):
    base = mfa.window_at(T0)
    assert mfa.next_window(now, None if last is None else base + last) == base + expected


def test_seconds_until():
    window = mfa.window_at(T0)
    assert mfa.seconds_until(T0 + 5, window + 1) == 25
    assert mfa.seconds_until(T0 + 5, window) == 0


@given(now=st.floats(min_value=0, max_value=4e9), offset=st.integers(min_value=-10_000, max_value=20))
def test_next_window_never_reuses_and_never_waits_long(now, offset):
    last = mfa.window_at(now) + offset
    chosen = mfa.next_window(now, last)
    assert chosen >= mfa.window_at(now)
    assert chosen > last or last + 1 - mfa.window_at(now) > mfa.MAX_WINDOWS_AHEAD
    assert mfa.seconds_until(now, chosen) <= mfa.WINDOW * mfa.MAX_WINDOWS_AHEAD


# The state file ------------------------------------------------------------------

def test_claims_in_one_window_get_consecutive_windows(tmp_path):
    windows = mfa.UsedWindows(tmp_path / "state" / "mfa-windows.json")
    first = windows.claim(SERIAL, T0 + 5)
    assert windows.claim(SERIAL, T0 + 6) == first + 1
    assert windows.claim("arn:aws:iam::111111111111:mfa/bob", T0 + 6) == first  # per device


def test_the_last_window_survives_a_restart_and_holds_no_secret(tmp_path):
    path = tmp_path / "mfa-windows.json"
    first = mfa.UsedWindows(path).claim(SERIAL, T0 + 5)
    assert mfa.UsedWindows(path).claim(SERIAL, T0 + 6) == first + 1
    data = json.loads(path.read_text())
    assert data == {"version": 1, "last_window": {SERIAL: first + 1}}
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_record_never_moves_back(tmp_path):
    windows = mfa.UsedWindows(tmp_path / "w.json")
    windows.record(SERIAL, 100)
    windows.record(SERIAL, 90)
    assert windows.last_used(SERIAL) == 100


@pytest.mark.parametrize("content", ["{not json", "[]", '{"last_window": {"x": "7"}}', '{"last_window": 3}'])
def test_a_damaged_state_file_is_ignored(tmp_path, content):
    path = tmp_path / "w.json"
    path.write_text(content)
    windows = mfa.UsedWindows(path)
    assert windows.claim(SERIAL, T0 + 5) == mfa.window_at(T0)
    assert json.loads(path.read_text())["last_window"] == {SERIAL: mfa.window_at(T0)}


def test_an_unwritable_state_file_is_logged_and_memory_still_holds(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("")
    windows = mfa.UsedWindows(blocker / "sub" / "w.json")  # a directory that cannot exist
    first = windows.claim(SERIAL, T0 + 5)
    assert windows.claim(SERIAL, T0 + 5) == first + 1
    assert "cannot write the MFA window state file" in caplog.text


def test_concurrent_claims_never_share_a_window(tmp_path):
    windows = mfa.UsedWindows(tmp_path / "w.json")
    claimed: list[int] = []
    threads = [threading.Thread(target=lambda: claimed.append(windows.claim(SERIAL, T0 + 1))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(claimed) == list(range(mfa.window_at(T0), mfa.window_at(T0) + 8))


def test_the_state_dir_credd_makes_is_private_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        mfa.UsedWindows(tmp_path / "state" / "credd" / "mfa-windows.json").claim(SERIAL, T0 + 5)
    finally:
        os.umask(old)
    state = tmp_path / "state"
    modes = {path.name: oct(path.stat().st_mode & 0o777)
             for path in (state, state / "credd", state / "credd" / "mfa-windows.json")}
    assert modes == {"state": "0o700", "credd": "0o700", "mfa-windows.json": "0o600"}


def test_a_state_dir_others_may_read_is_used(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o755)  # what `mkdir -p` makes under the usual umask: no secret in there, so fine
    first = mfa.UsedWindows(state / "w.json").claim(SERIAL, T0 + 5)
    assert json.loads((state / "w.json").read_text())["last_window"] == {SERIAL: first}
    assert oct(state.stat().st_mode & 0o777) == "0o755"  # left as the user made it


def test_a_state_dir_others_may_write_is_neither_read_nor_written_until_fixed(tmp_path, caplog):
    state = tmp_path / "state"
    state.mkdir()
    os.chmod(state, 0o777)
    planted = mfa.window_at(T0) + 5  # a window from the near future, to hold credd back
    (state / "w.json").write_text(json.dumps({"version": 1, "last_window": {SERIAL: planted}}))
    windows = mfa.UsedWindows(state / "w.json")
    claimed = [windows.claim(SERIAL, T0 + 5) for _ in range(3)]
    assert claimed == [mfa.window_at(T0) + n for n in range(3)]  # memory holds; the planted file is not read
    assert json.loads((state / "w.json").read_text())["last_window"] == {SERIAL: planted}  # nor written
    assert caplog.text.count("keeps the MFA windows it used in memory") == 1
    assert f"{state} is open to other users (mode 777); run `chmod 700 {state}`" in caplog.text
    assert oct(state.stat().st_mode & 0o777) == "0o777"  # credd does not change a directory it did not make

    os.chmod(state, 0o700)
    assert windows.claim(SERIAL, T0 + 5) == planted + 1  # the user's fix: the file counts again
    assert "is written again" in caplog.text


def test_a_symlinked_state_file_is_neither_followed_nor_replaced(tmp_path, caplog):
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(json.dumps({"version": 1, "last_window": {SERIAL: mfa.window_at(T0) + 5}}))
    link = tmp_path / "state" / "w.json"
    link.parent.mkdir(mode=0o700)
    link.symlink_to(elsewhere)
    windows = mfa.UsedWindows(link)
    assert windows.claim(SERIAL, T0 + 5) == mfa.window_at(T0)
    assert link.is_symlink() and json.loads(elsewhere.read_text())["last_window"] == {SERIAL: mfa.window_at(T0) + 5}
    assert f"{link} is a symlink, which credd does not follow there; remove it" in caplog.text


# totp --------------------------------------------------------------------------------

def test_totp_makes_the_code_of_the_claimed_window():
    driver = mfa.TotpDriver(lambda name: Secret(TEST_TOTP_SEED))
    window = mfa.window_at(T0) + 1
    assert driver.code(source(), window).reveal() == pyotp.TOTP(TEST_TOTP_SEED).at(T0 + 30)


@pytest.mark.parametrize("seed, fix", [(None, "no TOTP seed"), (Secret("not base32!"), "damaged")])
def test_totp_without_a_usable_seed_says_how_to_store_one(seed, fix):
    with pytest.raises(MfaError) as caught:
        mfa.TotpDriver(lambda name: seed).code(source(), 1)
    assert caught.value.failure.kind is FailureKind.MFA_UNAVAILABLE
    assert fix in str(caught.value) and "credd totp set alice" in str(caught.value)
    assert "not base32" not in str(caught.value)


# command -------------------------------------------------------------------------------

def python(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)


@pytest.mark.parametrize("output, code", [
    ("123456\n", "123456"),
    ("Touch your key\n  654321  \n", "654321"),
    ("111111\nnoise\n222222\ntrailing words\n", "222222"),  # the last 6-digit line
    ("1234567\n12345\ncode: 123456\n", None),  # a line that is only a code
    ("١٢٣٤٥٦\n", None),  # digits, but not ones AWS takes
    ("", None),
])
def test_last_code(output, code):
    assert mfa.last_code(output) == code


def test_command_prints_the_code_and_its_stderr_goes_to_the_log_masked(caplog):
    caplog.set_level(logging.INFO, "credd.mfa")
    command = python("import sys; print('Touch your key 987654', file=sys.stderr); print('aws'); print('123456')")
    assert mfa.CommandDriver(timeout=10).code(source("command", command), 0).reveal() == "123456"
    assert "Touch your key ******" in caplog.text
    assert "987654" not in caplog.text and "123456" not in caplog.text


def test_command_runs_without_a_shell():
    command = (*python("import sys; print(sys.argv[1]); print('123456')"), "$(exit 3); `false` | x")
    assert mfa.CommandDriver(timeout=10).code(source("command", command), 0).reveal() == "123456"


@pytest.mark.parametrize("command, problem, retryable", [
    (python("import sys; sys.exit(3)"), "exited with status 3", True),
    (python("print('no code here')"), "printed no line with a 6-digit code", False),
    (("/nonexistent/ykman", "oath"), "was not found", False),
    (python("import time; time.sleep(30)"), "did not finish within 0.5 s", True),
])
def test_a_failing_command_is_a_clear_error(command, problem, retryable):
    with pytest.raises(MfaError) as caught:
        mfa.CommandDriver(timeout=0.5).code(source("command", command), 0)
    assert caught.value.failure.kind is FailureKind.MFA_UNAVAILABLE
    assert problem in str(caught.value) and "alice" in str(caught.value)
    assert caught.value.failure.retryable is retryable


# prompt --------------------------------------------------------------------------------

def test_a_handed_in_code_is_taken_once():
    inbox = mfa.CodeInbox()
    inbox.put("alice", " 123456\n")
    driver = mfa.PromptDriver(inbox)
    assert driver.code(source("prompt"), 0).reveal() == "123456"
    with pytest.raises(MfaError) as caught:
        driver.code(source("prompt"), 0)
    assert caught.value.failure.kind is FailureKind.MFA_NEEDED
    assert "credd mfa alice" in str(caught.value)


@pytest.mark.parametrize("bad", ["12345", "1234567", "12345a", "", "١٢٣٤٥٦", "12345\u0665"])
def test_a_malformed_code_is_refused_without_echo(bad):
    with pytest.raises(SecretFormatError) as caught:
        mfa.CodeInbox().put("alice", bad)
    assert "6 digits" in str(caught.value)
    assert not bad or bad not in str(caught.value)


def test_a_code_sent_for_a_device_is_refused_for_that_device_until_aws_would_refuse_it_no_more():
    now = [T0]
    inbox = mfa.CodeInbox(clock=lambda: now[0])
    driver = mfa.PromptDriver(inbox)
    inbox.put("alice", "123456", serial=SERIAL)
    assert driver.code(source("prompt"), 0).reveal() == "123456"  # taken to be sent: now it is used
    now[0] += mfa.CODE_USED_FOR - 1
    with pytest.raises(MfaCodeUsedError) as caught:
        inbox.put("alice", "123456", serial=SERIAL)
    assert str(caught.value) == (f"source alice: that MFA code was already sent to AWS for {SERIAL} 89 s ago, and AWS "
                                 "accepts each code only once; wait for your device to show the next code, then run "
                                 "`credd mfa alice` with it")
    inbox.put("alice", "654321", serial=SERIAL)  # another code, same window: taken
    inbox.put("bob", "123456", serial="arn:aws:iam::111111111111:mfa/bob")  # the same digits, another device
    now[0] += 1
    inbox.put("alice", "123456", serial=SERIAL)  # 90 s on, AWS would take it again


def test_one_code_handed_in_twice_before_either_is_sent_goes_out_once():
    inbox = mfa.CodeInbox()
    driver = mfa.PromptDriver(inbox)
    inbox.put("alice", "123456", serial=SERIAL)
    driver.code(source("prompt"), 0)
    inbox._slots["alice"] = (Secret("123456"), inbox._clock())  # as a second `put` that raced the first's send
    with pytest.raises(MfaError) as caught:
        driver.code(source("prompt"), 0)
    assert caught.value.failure.kind is FailureKind.MFA_NEEDED  # the hook asks for a new code
    assert "already sent to AWS" in str(caught.value)


def test_a_stale_code_is_dropped():
    now = [T0]
    inbox = mfa.CodeInbox(clock=lambda: now[0])
    inbox.put("alice", "123456")
    now[0] += mfa.PROMPT_CODE_MAX_AGE + 1
    assert inbox.take("alice") is None


def test_take_waits_for_a_code_handed_in_meanwhile():
    inbox = mfa.CodeInbox()
    threading.Timer(0.05, inbox.put, ("alice", "123456")).start()
    code = inbox.take("alice", timeout=5)
    assert code is not None and code.reveal() == "123456"


def test_drivers_by_name():
    drivers = mfa.make_drivers(seeds=lambda name: None, inbox=mfa.CodeInbox())
    assert set(drivers) == {"totp", "command", "prompt"}
    assert drivers["totp"].regenerates and drivers["command"].regenerates
    assert not drivers["prompt"].regenerates


# Hints -----------------------------------------------------------------------------------

HINT_CONFIG = "/home/you/my config.yaml"  # `credd --config '/home/you/my config.yaml' serve`
WITH_CONFIG = "credd --config '/home/you/my config.yaml'"


def test_every_command_the_drivers_name_carries_the_daemons_config():
    inbox = mfa.CodeInbox(hint_config=HINT_CONFIG)
    drivers = mfa.make_drivers(seeds=lambda name: None, inbox=inbox, hint_config=HINT_CONFIG)
    with pytest.raises(MfaError) as no_seed:
        drivers["totp"].code(source("totp"), 1)
    assert f"store it with `{WITH_CONFIG} totp set alice`" in str(no_seed.value)
    totp_rejected = drivers["totp"].rejected(source("totp")).message
    assert f"`{WITH_CONFIG} totp set alice`" in totp_rejected and f"`{WITH_CONFIG} doctor`" in totp_rejected
    with pytest.raises(MfaError) as no_code:
        drivers["prompt"].code(source("prompt"), 1)
    assert f"needs an MFA code: run `{WITH_CONFIG} mfa alice` with the code" in str(no_code.value)
    assert f"run `{WITH_CONFIG} mfa alice` with the next code" in drivers["prompt"].rejected(source("prompt")).message


def test_a_code_handed_in_again_names_credd_mfa_with_the_daemons_config():
    inbox = mfa.CodeInbox(hint_config=HINT_CONFIG)
    inbox.put("alice", "123456", serial=SERIAL)
    mfa.PromptDriver(inbox).code(source("prompt"), 1)  # sent
    with pytest.raises(MfaCodeUsedError) as caught:
        inbox.put("alice", "123456", serial=SERIAL)
    assert str(caught.value).endswith(f"then run `{WITH_CONFIG} mfa alice` with it")


def test_without_a_config_option_the_drivers_name_plain_commands():
    drivers = mfa.make_drivers(seeds=lambda name: None, inbox=mfa.CodeInbox())
    with pytest.raises(MfaError) as no_seed:
        drivers["totp"].code(source("totp"), 1)
    with pytest.raises(MfaError) as no_code:
        drivers["prompt"].code(source("prompt"), 1)
    assert "`credd totp set alice`" in str(no_seed.value) and "`credd mfa alice`" in str(no_code.value)
    assert "--config" not in str(no_seed.value) + str(no_code.value)
