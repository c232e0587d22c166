"""`credd serve` as a real process: the AWS CLI through credential_process, signals, restarts, reload."""

from __future__ import annotations

import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.conftest import IN_CI, TEST_KEY_ID, TEST_SECRET_KEY, run_credd
from tests.fixtures_daemon import ROLE_ARN, current_code, daemon_config
from tests.fixtures_sts import SERIAL, SOURCE

AWS_V2 = "/usr/bin/aws"  # Debian's awscli package; a pip-installed v1 may shadow it on PATH


def require_aws_v2() -> str:
    try:
        version = subprocess.run([AWS_V2, "--version"], capture_output=True, text=True, timeout=60).stdout
    except FileNotFoundError:
        version = ""
    if not version.startswith("aws-cli/2"):
        message = "the AWS CLI v2 (Debian's awscli) is not installed at /usr/bin/aws (.ci/run installs it)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return AWS_V2


@pytest.mark.parametrize("lost", [False, True], ids=["as-is", "first-reply-lost"])
def test_the_aws_cli_runs_through_credential_process(daemon, live_sts, lost):
    aws = require_aws_v2()
    if lost:  # the first GetSessionToken gets no reply (a stalled loopback under load): botocore sends it again
        live_sts.inject("timeout", "GetSessionToken")
    daemon.start()
    aws_dir = daemon.home.root / ".aws"
    aws_dir.mkdir(exist_ok=True)
    (aws_dir / "config").write_text(
        f"[profile via-hook]\ncredential_process = {sys.executable} -m credd process prod-admin\nregion = us-east-1\n"
        "[profile alice-session]\nregion = us-east-1\n")
    env = dict(daemon.env, AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")

    def caller(profile: str) -> dict:
        result = subprocess.run([aws, "sts", "get-caller-identity", "--profile", profile, "--endpoint-url",
                                 live_sts.url, "--output", "json"], capture_output=True, text=True, env=env,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    assert ":assumed-role/Admin/" in caller("via-hook")["Arn"]  # write: false, so served by the hook
    assert caller("alice-session")["Account"]  # write: true, so read from the credentials file
    # One session, made with one MFA code, serves both, although the hook's first request races the daemon's
    # start-up refresh. Counted as STS counts what it costs the user (sessions issued, codes sent), not as requests:
    # botocore sends a request again when its reply is late or its connection drops, and the front then sees one
    # GetSessionToken twice with one code (as AWS would). A second session, or a second code, is credd's doing.
    sent = [request.params["TokenCode"] for request in live_sts.of("GetSessionToken")]
    assert (len(live_sts.issued), len(set(sent))) == (1, 1), daemon.log()
    assert len(sent) == (2 if lost else 1)


def test_sigterm_stops_cleanly_and_removes_the_socket(daemon):
    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    assert daemon.stop(signal.SIGTERM) == 0
    assert not daemon.socket.exists()
    assert "stopped" in daemon.log()


def test_sigint_too(daemon):
    daemon.start()
    assert daemon.stop(signal.SIGINT) == 0
    assert not daemon.socket.exists()


def test_after_sigkill_a_new_daemon_replaces_the_socket_and_reuses_the_cached_session(daemon, live_sts):
    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    assert daemon.socket.exists()  # stale: nobody cleaned up
    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    assert live_sts.calls["GetSessionToken"] == 1  # the restart used the session kept in the keyring
    assert live_sts.calls["AssumeRole"] == 2
    assert daemon.stop() == 0


def test_a_second_daemon_on_the_same_socket_exits_with_a_message(daemon):
    first = daemon.start()
    second = run_credd(["serve"], daemon.home, extra_env={"CREDD_SOCKET": str(daemon.socket)})
    assert second.returncode == 1
    assert f"another `credd serve` (pid {first.pid}) is already serving {daemon.socket}" in second.stderr
    assert daemon.ask({"op": "ping"})["pid"] == first.pid


def test_sighup_reloads_a_good_config_and_keeps_the_old_one_for_a_bad_one(daemon, live_sts):
    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    extra = f"  dev:\n    source: {SOURCE}\n    role_arn: arn:aws:iam::333333333333:role/Dev\n"
    daemon.home.write_config(daemon_config(live_sts.url, extra_profiles=extra))
    daemon.process.send_signal(signal.SIGHUP)
    assert daemon.wait_state("dev", "fresh")["source"] == SOURCE
    daemon.wait_until("[dev] written", lambda: "[dev]" in daemon.home.credentials.read_text())

    daemon.home.write_config("sources: {alice: {mfa: sms}}\n")
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_until("the reload refused",
                      lambda: "the new config is invalid, keeping the running one" in daemon.log())
    assert "sources.alice.mfa" in daemon.log()
    assert daemon.credd("process", "dev").returncode == 0  # still serving the old config
    status = daemon.credd("status")  # and status says so, with the error's file:line, until a good reload
    warning = next(line for line in status.stdout.splitlines() if line.startswith("warning: the reload"))
    assert "was refused, so credd still runs the config it loaded at " in warning
    assert f"{daemon.home.config}:1: sources.alice.mfa" in warning
    assert json.loads(daemon.credd("status", "--json").stdout)["reload_error"]["message"].startswith(
        f"{daemon.home.config}:1: sources.alice.mfa")
    daemon.home.write_config(daemon_config(live_sts.url, extra_profiles=extra))
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_until("a good reload", lambda: daemon.ask({"op": "status"})["reload_error"] is None)
    assert "warning: the reload" not in daemon.credd("status").stdout
    assert daemon.stop() == 0


def test_status_refresh_and_process_commands(daemon, live_sts):
    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    status = daemon.credd("status")
    assert status.returncode == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[1].split()[:3] == ["PROFILE", "SOURCE", "STATE"]
    assert any(line.split()[:3] == ["prod-admin", SOURCE, "fresh"] for line in lines)
    as_json = json.loads(daemon.credd("status", "--json").stdout)
    assert {row["profile"] for row in as_json["profiles"]} == {"alice-session", "prod-admin"}

    refreshed = daemon.credd("refresh", "prod-admin")
    assert refreshed.returncode == 0
    assert re.fullmatch(r"prod-admin: renewed, valid until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n", refreshed.stdout)
    assert live_sts.calls["AssumeRole"] == 2
    live_sts.inject("drop", times=float("inf"))
    failed = daemon.credd("refresh", "--json", "prod-admin", "alice-session")
    assert failed.returncode == 1  # prod-admin was not renewed
    outcomes = json.loads(failed.stdout)
    assert outcomes["ok"] is False and outcomes["profiles"]["prod-admin"]["outcome"] == "valid"
    assert outcomes["profiles"]["alice-session"]["written"] is True
    text = daemon.credd("refresh", "prod-admin").stdout
    assert (text.startswith("prod-admin: still valid until ") and ", not renewed: " in text
            and "cannot reach STS" in text)
    live_sts.clear_faults()

    hook = daemon.credd("process", "prod-admin")
    assert hook.returncode == 0
    assert set(json.loads(hook.stdout)) == {"Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    unknown = daemon.credd("process", "nope")
    assert unknown.returncode == 1 and "profile 'nope' is not in" in unknown.stderr


def test_a_prompt_source_takes_a_code_from_credd_mfa(daemon, live_sts):
    daemon.home.write_config(daemon_config(live_sts.url, mfa="prompt"))
    daemon.start()
    row = daemon.wait_state("prod-admin", "needs-mfa")
    assert "credd mfa alice" in row["last_error"]
    hook = daemon.credd("process", "prod-admin")  # no terminal here: it says what to run
    assert hook.returncode == 1 and "run `credd mfa alice`" in hook.stderr
    handed = daemon.credd("mfa", SOURCE, current_code())
    assert handed.returncode == 0, handed.stderr
    assert daemon.credd("process", "prod-admin").returncode == 0
    assert live_sts.calls["GetSessionToken"] == 1


def test_the_same_code_twice_goes_to_sts_once_and_another_code_still_goes(daemon, live_sts):
    """AWS accepts a code once: `credd mfa alice CODE` again is refused by credd, with what to do, not by STS."""
    daemon.home.write_config(daemon_config(live_sts.url, mfa="prompt"))
    daemon.start()
    daemon.wait_state("prod-admin", "needs-mfa")
    code = current_code()
    assert daemon.credd("mfa", SOURCE, code).returncode == 0
    assert live_sts.calls["GetSessionToken"] == 1
    again = daemon.credd("mfa", SOURCE, code)
    assert again.returncode == 1
    assert again.stderr.startswith("credd: error: source alice: that MFA code was already sent to AWS for "
                                   "arn:aws:iam::111111111111:mfa/alice ")
    assert again.stderr.endswith(" s ago, and AWS accepts each code only once; wait for your device to show the "
                                 "next code, then run `credd mfa alice` with it\n")
    assert code not in again.stderr
    assert live_sts.calls["GetSessionToken"] == 1  # refused here: STS never saw it again
    reply = daemon.ask({"op": "mfa", "source": SOURCE, "code": code})  # the kind the hook asks again on
    assert (reply["ok"], reply["error"]) == (False, "mfa-code-used")
    other = "000000" if code != "000000" else "111111"
    daemon.credd("mfa", SOURCE, other)  # a different code in the same window goes to STS (which may refuse it)
    assert live_sts.calls["GetSessionToken"] == 2
    assert daemon.credd("process", "prod-admin").returncode == 0  # the session of the first code still serves


def test_status_without_a_daemon_says_how_to_start_it(daemon):
    result = daemon.credd("status")
    assert result.returncode == 1 and "credd service install" in result.stderr


def test_files_and_socket_modes_under_a_permissive_umask(plaintext_keyring, live_sts, sock_path, tmp_path):
    """Under umask 000, everything credd makes is private: init, keys import, keys set, totp set, serve."""
    from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED
    from tests.fixtures_daemon import DaemonProcess
    from tests.fixtures_sts import SERIAL

    home = plaintext_keyring
    roots = (home.root, sock_path.parent.parent)

    def modes() -> dict[str, int]:
        paths = list(map(str, roots))
        for root in roots:
            for directory, dirs, files in os.walk(root):
                paths += [os.path.join(directory, name) for name in dirs + files]
        return {path: os.lstat(path).st_mode & 0o777 for path in paths}

    # What the test makes, not credd: keyrings.alt's own directory (test_access checks that one), and a
    # credentials file with a long-term key to import, both as a umask of 000 leaves them.
    old = os.umask(0)
    daemon = DaemonProcess(home, sock_path, tmp_path)
    try:
        keyring_dir = home.root / ".local" / "share" / "python_keyring"
        for directory in (keyring_dir.parent.parent, keyring_dir.parent, keyring_dir):
            directory.mkdir(mode=0o700)
        home.credentials.parent.mkdir()
        home.credentials.write_text(f"[legacy]\naws_access_key_id = {TEST_KEY_ID}\n"
                                    f"aws_secret_access_key = {TEST_SECRET_KEY}\n")
        assert os.stat(home.credentials).st_mode & 0o777 == 0o666
        made_by_test = modes()

        init = run_credd(["init", "--source", SOURCE, "--mfa-serial", SERIAL, "--mfa", "totp"], home)
        assert init.returncode == 0, init.stderr
        home.config.write_text(daemon_config(live_sts.url))  # the local STS; the file keeps the mode init gave it
        imported = run_credd(["keys", "import", SOURCE, "--from-profile", "legacy"], home)
        assert imported.returncode == 0, imported.stderr
        assert run_credd(["keys", "set", SOURCE], home, input=f"{TEST_KEY_ID}\n{TEST_SECRET_KEY}\n").returncode == 0
        assert run_credd(["totp", "set", SOURCE], home, input=TEST_TOTP_SEED + "\n").returncode == 0
        written = home.root / "new" / "aws" / "credentials"  # a file (and directories) the daemon creates
        daemon.env["AWS_SHARED_CREDENTIALS_FILE"] = str(written)
        daemon.start()
        daemon.wait_state("alice-session", "fresh")
        daemon.wait_until("the credentials file written", written.exists)
        now = modes()
    finally:
        os.umask(old)
        if daemon.process is not None and daemon.process.poll() is None:
            assert daemon.stop() == 0
        daemon.finish()

    created = {path: mode for path, mode in now.items() if path not in made_by_test}
    state = home.root / ".local" / "state" / "credd"
    expected = {home.config: 0o600, home.config.parent: 0o700, home.config.parent.parent: 0o700,
                home.credentials.with_name(".credentials.lock"): 0o600,
                keyring_dir / "keyring_pass.cfg": 0o600,
                sock_path: 0o600, sock_path.parent: 0o700, sock_path.with_name("credd.sock.lock"): 0o600,
                written: 0o600, written.with_name(".credentials.lock"): 0o600, written.parent: 0o700,
                written.parent.parent: 0o700, state / "mfa-windows.json": 0o600, state: 0o700, state.parent: 0o700}
    assert {str(path): oct(mode) for path, mode in expected.items()} == \
           {str(path): oct(created.get(str(path), 0)) for path in expected}
    assert {path: oct(mode) for path, mode in created.items() if mode & 0o077} == {}  # nor anything else
    assert oct(now[str(home.credentials)]) == "0o600"  # the imported-from file: narrowed when credd rewrote it
    assert "[legacy]" not in home.credentials.read_text()
    assert ROLE_ARN not in written.read_text()  # prod-admin has write: false


def test_the_daemon_serves_a_crowd_while_garbage_arrives(daemon, live_sts):
    import socket
    from concurrent.futures import ThreadPoolExecutor

    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    junk = []
    for payload in (b"garbage\n", b"x" * 100_000, b'{"op": "credentials", "profile": '):
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(str(daemon.socket))
        client.sendall(payload)
        junk.append(client)
    with ThreadPoolExecutor(100) as pool:
        replies = list(pool.map(lambda _: daemon.ask({"op": "credentials", "profile": "prod-admin"}), range(100)))
    assert all(reply["ok"] for reply in replies)
    assert live_sts.calls["AssumeRole"] == 1  # a hundred requests for fresh credentials cost no STS call
    for client in junk:
        client.close()
    assert daemon.stop() == 0


def test_env_prints_exports_a_shell_can_eval(daemon):
    daemon.start()
    result = daemon.credd("env", "prod-admin")
    assert result.returncode == 0, result.stderr
    shell = subprocess.run(["sh", "-c", result.stdout + 'echo "$AWS_ACCESS_KEY_ID|${AWS_PROFILE-unset}"'],
                           capture_output=True, text=True, env=dict(daemon.env, AWS_PROFILE="other"))
    key_id = json.loads(daemon.credd("process", "prod-admin").stdout)["AccessKeyId"]
    assert shell.stdout.strip() == f"{key_id}|unset"


def test_exec_replaces_itself_and_passes_status_and_signals(daemon):
    daemon.start()
    env = dict(daemon.env, AWS_PROFILE="other")
    credd = [sys.executable, "-m", "credd", "exec", "prod-admin", "--"]
    status = subprocess.run([*credd, "sh", "-c", 'test -n "$AWS_SESSION_TOKEN" && test -z "$AWS_PROFILE"; exit 7'],
                            env=env, timeout=60)
    assert status.returncode == 7
    child = subprocess.Popen([*credd, "sh", "-c", "echo $$; kill -TERM $$"], env=env, stdout=subprocess.PIPE,
                             text=True)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGTERM
    assert int(out) == child.pid  # the same process: credd exec'd the command, nothing in between
    missing = daemon.credd("exec", "prod-admin", "--", "no-such-command-credd")
    assert missing.returncode == 127 and "no-such-command-credd: command not found" in missing.stderr  # as a shell


def test_sigterm_ends_a_wait_for_the_next_mfa_window_and_spends_no_code(daemon, live_sts):
    from credd import mfa, paths

    # The device's code of the next window is already used (another tool sent it): the daemon must wait 30-60 s.
    state = mfa.state_file(paths.state_dir(daemon.home.env))
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text(json.dumps({"version": 1, "last_window": {SERIAL: mfa.window_at(time.time()) + 1}}))
    daemon.start()
    daemon.wait_until("the wait for a fresh MFA window", lambda: "waiting" in daemon.log() and "fresh MFA code" in
                      daemon.log())
    started = time.monotonic()
    assert daemon.stop(signal.SIGTERM, timeout=10) == 0
    assert time.monotonic() - started < 3  # not the rest of the window, then a code
    assert live_sts.count("GetSessionToken") == 0 and live_sts.count("AssumeRole") == 0
    assert not daemon.socket.exists()
    assert "abandoned before it reached STS" in daemon.log()


def test_at_start_with_sts_down_expired_sections_credd_wrote_leave_the_file(daemon, live_sts):
    live_sts.inject("drop", times=float("inf"))  # the laptop is offline at login
    daemon.home.credentials.parent.mkdir(mode=0o700)
    mine = "[mine]\r\naws_access_key_id = ASIAMINEMINEMINEMINE\r\naws_session_token = FwoGZXIvYXdzEMINEMINE\r\n"
    valid = "[later]\naws_access_key_id = ASIALATERLATERLATER1\nx_credd_expiration = 2999-01-01T00:00:00Z\n"
    daemon.home.credentials.write_text(
        "# kept\n[alice-session]\naws_access_key_id = ASIAOLDOLDOLDOLDOLD1\naws_session_token = FwoGZXIvYXdzEOLDOLD\n"
        "x_credd_expiration = 2020-01-01T00:00:00Z\n" + mine + valid +
        "[gone-from-config]\naws_access_key_id = ASIAGONEGONEGONEGONE\nx_credd_expiration = 2020-01-01T00:00:00Z\n")
    daemon.start()
    expected = ("# kept\n" + mine + valid).encode()  # only credd's sections, and only the expired ones
    daemon.wait_until("the expired sections removed", lambda: daemon.home.credentials.read_bytes() == expected)
    daemon.wait_until("STS tried", lambda: live_sts.count("GetSessionToken") > 0)
    assert daemon.ask({"op": "status"})["profiles"][0]["last_error_kind"] in (None, "network")
    assert daemon.home.credentials.read_bytes() == expected
    assert daemon.stop() == 0


def test_status_says_starting_or_refreshing_until_the_first_refresh_ends(daemon, live_sts):
    live_sts.latency = 1.0  # each STS call takes a second, as from a far region
    daemon.start()
    status, as_json = daemon.credd("status"), daemon.credd("status", "--json")
    assert status.returncode == 1  # not served yet: a script waits with `until credd status; do sleep 1; done`
    assert as_json.returncode == 1 and {row["state"] for row in json.loads(as_json.stdout)["profiles"]} <= {
        "starting", "refreshing"}  # the same answer for a script that reads JSON
    states = {line.split()[0]: line.split()[2] for line in status.stdout.splitlines()[2:]}
    assert set(states.values()) <= {"starting", "refreshing"} and "refreshing" in states.values(), status.stdout
    assert "no-credentials" not in status.stdout
    daemon.wait_state("prod-admin", "fresh")
    assert daemon.credd("status").returncode == 0
    assert daemon.credd("status", "--json").returncode == 0


IDLE_FLOOD = 1500  # idle connections, as in the review that found the lock-out; the daemon's cap is 256


def test_a_flood_of_idle_connections_delays_a_real_client_by_about_a_second(daemon):
    # 1,500 connections that never send a byte: before, each held a slot for the whole 5-s request deadline
    # and everyone else was told `busy`. Now: the first 256 get 1 s to send their first byte, the rest are
    # closed as soon as they are accepted, and `credd status` (a real client, its own process) is served.
    daemon.start()
    daemon.wait_state("alice-session", "fresh")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 4096), hard), hard))
    idle: list[socket.socket] = []
    try:
        flood_until = time.monotonic() + 10
        while len(idle) < IDLE_FLOOD and time.monotonic() < flood_until:
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.settimeout(1)
            try:
                client.connect(str(daemon.socket))
            except OSError:  # the listen backlog is full for a moment: the flood goes on
                client.close()
                continue
            idle.append(client)
        assert len(idle) == IDLE_FLOOD
        started = time.monotonic()
        status = daemon.credd("status")
        took = time.monotonic() - started
        assert status.returncode == 0, status.stdout + status.stderr
        assert "alice-session" in status.stdout
        assert took < 4, f"credd status took {took:.1f} s under the flood"
    finally:
        for client in idle:
            client.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert daemon.ask({"op": "ping"}, timeout=5)["ok"]


HINTS_CONFIG = """\
version: 1
sources:
  alice:
    mfa_serial: {serial}
    mfa: totp
    sts_endpoint: {url}
  bob:
    mfa_serial: arn:aws:iam::111111111111:mfa/bob
    sts_endpoint: {url}
  carol:
    mfa_serial: arn:aws:iam::111111111111:mfa/carol
    mfa: prompt
    sts_endpoint: {url}
profiles:
  alice-session:
    source: alice
  bob-session:
    source: bob
  carol-session:
    source: carol
"""


@pytest.mark.parametrize("given", [True, False], ids=["with-config", "without-config"])
def test_every_hint_of_the_daemon_names_commands_with_the_config_it_runs(daemon, live_sts, tmp_path, given):
    """`credd --config PATH serve`: status, the hook and the log name `credd --config PATH ...`; without it, no
    --config. bob has no key in the keyring, carol's `mfa: prompt` needs a code, alice's section is shadowed by
    her own long-term key."""
    text = HINTS_CONFIG.format(serial=SERIAL, url=live_sts.url)
    if given:
        path = tmp_path / "my config.yaml"
        path.write_text(text)
        option, credd = ["--config", str(path)], f"credd --config '{path}'"
    else:
        daemon.home.write_config(text)
        option, credd = [], "credd"
    stored = daemon.credd(*option, "keys", "set", "carol", input=f"{TEST_KEY_ID}\n{TEST_SECRET_KEY}\n")
    assert stored.returncode == 0, stored.stderr
    daemon.home.credentials.parent.mkdir(mode=0o700, exist_ok=True)
    daemon.home.credentials.write_text(f"[alice-session]\naws_access_key_id = {TEST_KEY_ID}\n"
                                       "aws_secret_access_key = not-the-real-one\n")
    daemon.start(options=option)
    keys_set = f"store it with `{credd} keys set bob`"
    mfa = f"needs an MFA code: run `{credd} mfa carol` with the code"
    keys_import = f"remove it from the file with `{credd} keys import alice --from-profile alice-session`"
    assert keys_set in daemon.wait_state("bob-session", "no-credentials")["last_error"]
    assert mfa in daemon.wait_state("carol-session", "needs-mfa")["last_error"]
    assert keys_import in daemon.wait_state("alice-session", "shadowed")["last_error"]
    status = daemon.credd(*option, "status")
    assert status.returncode == 1 and all(hint in status.stdout for hint in (keys_set, mfa, keys_import))
    hook = daemon.credd(*option, "process", "bob-session")  # the daemon's reply, as `aws` shows it
    assert hook.returncode == 1 and keys_set in hook.stderr
    log = daemon.log()
    assert all(hint in log for hint in (keys_set, mfa, keys_import))
    assert ("--config" in status.stdout + hook.stderr + log) is given
