"""The container credentials endpoint in a real `credd serve`, asked by the AWS CLI v2, botocore and hostile clients."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import pytest

from credd.endpoints.container import Tokens
from credd.errors import ConfigError
from tests.conftest import run_credd
from tests.fixtures_daemon import daemon_config
from tests.test_config import GOOD, parse
from tests.test_serve import require_aws_v2

ENDPOINT = "endpoints:\n  container: 127.0.0.1:0\n"


@pytest.fixture
def served(daemon, live_sts):
    """The daemon with its container endpoint on, prod-admin fresh; yields it and the endpoint's (host, port)."""
    daemon.home.write_config(daemon_config(live_sts.url) + ENDPOINT)
    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    address = daemon.ask({"op": "status"})["endpoints"]["container"]["address"]
    host, _, port = address.rpartition(":")
    return daemon, (host, int(port))


def issue(daemon, *profiles: str, ttl: int = 600) -> dict:
    reply = daemon.ask({"op": "token-issue", "profiles": list(profiles), "ttl": ttl})
    assert reply["ok"], reply
    return reply


def http(address: tuple[str, int], raw: bytes, timeout: float = 10) -> tuple[int | None, bytes]:
    """Send `raw` as it is; the status code (None if closed without a reply) and the body."""
    with socket.create_connection(address, timeout=timeout) as conn:
        conn.sendall(raw)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    if not data:
        return None, b""
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def get(address, path: str, token: str | None, host: str = "127.0.0.1") -> tuple[int | None, bytes]:
    auth = f"Authorization: {token}\r\n" if token is not None else ""
    return http(address, f"GET {path} HTTP/1.1\r\nHost: {host}:{address[1]}\r\n{auth}\r\n".encode())


def caller_env(daemon, **extra: str) -> dict[str, str]:
    # A profile and keys in the caller's environment: `exec --server` must clear them, or the SDK would use them.
    return dict(daemon.env, AWS_PROFILE="no-such-profile", AWS_ACCESS_KEY_ID="AKIAWRONGWRONGWRONG1",
                AWS_SECRET_ACCESS_KEY="not-a-secret-wrong-key", AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="",
                **extra)


def test_the_aws_cli_gets_the_role_through_exec_server_and_the_token_is_revoked_at_exit(served, live_sts):
    aws = require_aws_v2()
    daemon, _ = served
    result = subprocess.run([sys.executable, "-m", "credd", "exec", "--server", "prod-admin", "--", aws, "sts",
                             "get-caller-identity", "--endpoint-url", live_sts.url, "--output", "json"],
                            capture_output=True, text=True, env=caller_env(daemon), timeout=120)
    assert result.returncode == 0, result.stderr + daemon.log()
    assert ":assumed-role/Admin/" in json.loads(result.stdout)["Arn"]
    assert daemon.ask({"op": "status"})["endpoints"]["container"]["tokens"] == []  # revoked at exit
    assert "served profile prod-admin" in daemon.log()


def test_botocore_through_exec_server_and_the_exit_status_passes_through(served, live_sts):
    daemon, _ = served
    script = ("import os, sys, botocore.session\n"
              "assert 'AWS_PROFILE' not in os.environ and 'AWS_ACCESS_KEY_ID' not in os.environ\n"
              "session = botocore.session.get_session()\n"
              "print(session.get_credentials().method)\n"
              f"sts = session.create_client('sts', region_name='us-east-1', endpoint_url={live_sts.url!r})\n"
              "print(sts.get_caller_identity()['Arn'])\n"
              "sys.exit(7)\n")
    result = subprocess.run([sys.executable, "-m", "credd", "exec", "--server", "prod-admin", "--", sys.executable,
                             "-c", script], capture_output=True, text=True, env=caller_env(daemon), timeout=120)
    assert result.returncode == 7, result.stderr
    method, arn = result.stdout.split()
    assert method == "container-role"
    assert ":assumed-role/Admin/" in arn


def test_exec_server_forwards_a_signal_and_revokes(served, tmp_path):
    daemon, _ = served
    ready = tmp_path / "ready"
    script = (f"import signal, pathlib, time\nsignal.signal(signal.SIGTERM, lambda *a: exit(42))\n"
              f"pathlib.Path({str(ready)!r}).write_text('x')\ntime.sleep(60)\n")
    run = subprocess.Popen([sys.executable, "-m", "credd", "exec", "--server", "prod-admin", "--", sys.executable,
                            "-c", script], env=caller_env(daemon), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    daemon.wait_until("the command started", ready.exists)
    assert len(daemon.ask({"op": "status"})["endpoints"]["container"]["tokens"]) == 1
    run.terminate()
    assert run.wait(20) == 42
    assert daemon.ask({"op": "status"})["endpoints"]["container"]["tokens"] == []


def test_a_daemon_gone_before_cmd_exits_costs_a_warning_not_the_exit_status(served):
    daemon, _ = served
    script = (f"import os, signal, time\nos.kill({daemon.process.pid}, signal.SIGTERM)\n"
              f"while os.path.exists({str(daemon.socket)!r}): time.sleep(0.05)\nexit(5)\n")  # the daemon is gone
    result = subprocess.run([sys.executable, "-m", "credd", "exec", "--server", "prod-admin", "--", sys.executable,
                             "-c", script], capture_output=True, text=True, env=caller_env(daemon), timeout=60)
    assert result.returncode == 5, result.stderr
    assert "was not revoked" in result.stderr and "the credd daemon is not running" in result.stderr


def test_a_token_answers_its_profile_only_and_not_once_revoked(served):
    daemon, address = served
    token = issue(daemon, "prod-admin")
    status, body = get(address, "/v1/credentials/prod-admin", token["token"])
    assert status == 200
    document = json.loads(body)
    assert set(document) == {"AccessKeyId", "SecretAccessKey", "Token", "Expiration", "AccountId"}
    assert document["AccountId"] == "222222222222"  # the role's account, from its ARN
    assert get(address, "/v1/credentials/alice-session", token["token"])[0] == 403  # another profile
    assert daemon.ask({"op": "token-revoke", "id": token["id"]})["ok"]
    assert get(address, "/v1/credentials/prod-admin", token["token"]) == (401, b'{"Code": "Unauthorized", '
                                                                          b'"Message": "unauthorized"}')
    assert token["token"] not in daemon.log()  # ids are logged, never the value
    assert token["id"] in daemon.log()


@pytest.mark.parametrize("raw, expected", [
    (b"GET /v1/credentials/prod-admin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 401),  # no token
    (b"GET /v1/credentials/prod-admin HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: guess\r\n\r\n", 401),
    (b"GET /v1/credentials/prod-admin HTTP/1.1\r\nHost: evil.example:80\r\nAuthorization: x\r\n\r\n", 403),
    (b"GET /v1/credentials/prod-admin HTTP/1.1\r\nAuthorization: x\r\n\r\n", 403),  # no Host at all
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # TLS, or any garbage
    (b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello", 400),
    (b"GET /v1/credentials/prod-admin HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n", 431),
], ids=["no-token", "wrong-token", "foreign-host", "no-host", "garbage", "body", "oversized"])
def test_hostile_requests_are_refused(served, raw, expected):
    _, address = served
    assert http(address, raw)[0] == expected


def test_a_valid_token_with_a_rebinding_host_is_refused(served):
    daemon, address = served
    token = issue(daemon, "prod-admin")["token"]
    assert get(address, "/v1/credentials/prod-admin", token, host="attacker.example")[0] == 403
    assert get(address, "/v1/credentials/prod-admin", token, host="localhost")[0] == 200


def test_slow_and_idle_clients_are_cut_off_and_a_flood_is_refused_at_accept(served):
    daemon, address = served
    token = issue(daemon, "prod-admin")["token"]
    check_slow_idle_and_flooding_clients(address, lambda: get(address, "/v1/credentials/prod-admin", token)[0])


def check_slow_idle_and_flooding_clients(address: tuple[str, int], served_again: Callable[[], int | None]) -> None:
    """An HTTP endpoint's limits (`credd.endpoints.limits`): the first-byte and read deadlines, the cap at accept;
    then `served_again()` must get 200."""
    started = time.monotonic()
    assert http(address, b"")[0] is None  # sends nothing: closed after the first-byte deadline (1 s)
    assert time.monotonic() - started < 3
    with socket.create_connection(address) as slow:  # slowloris: a byte at a time, never done
        slow.settimeout(0.3)
        started = time.monotonic()
        cut = False
        while not cut and time.monotonic() - started < 12:
            try:
                slow.sendall(b"G")
                cut = slow.recv(1) == b""
            except TimeoutError:
                continue
            except ConnectionError:
                cut = True
    assert cut and time.monotonic() - started < 8  # the 5-s read deadline, not the client, ended it
    idle = [socket.create_connection(address) for _ in range(70)]  # over the cap of 64
    try:
        time.sleep(0.3)
        closed = 0
        for conn in idle:
            conn.settimeout(0.05)
            try:
                closed += conn.recv(1) == b""
            except (TimeoutError, ConnectionError):
                closed += isinstance(sys.exc_info()[1], ConnectionError)
        assert closed >= 6  # refused at accept, not after a read
    finally:
        for conn in idle:
            conn.close()
    assert served_again() == 200  # and then served again


def test_token_issue_prints_the_variables_and_revoke_ends_it(served):
    daemon, address = served
    issued = daemon.credd("token", "issue", "prod-admin", "--ttl", "8h")
    assert issued.returncode == 0, issued.stderr
    variables = dict(line.removeprefix("export ").split("=", 1) for line in issued.stdout.splitlines())
    url = variables["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    assert url == f"http://127.0.0.1:{address[1]}/v1/credentials/prod-admin"
    token = variables["AWS_CONTAINER_AUTHORIZATION_TOKEN"]
    assert get(address, "/v1/credentials/prod-admin", token)[0] == 200
    (live,) = daemon.ask({"op": "status"})["endpoints"]["container"]["tokens"]
    assert live["profiles"] == ["prod-admin"] and f"token {live['id']} grants profile prod-admin" in issued.stderr
    shown = daemon.credd("status")
    assert f"live tokens: {live['id']} (prod-admin, until {live['expires']})" in shown.stdout
    assert token not in shown.stdout + daemon.credd("status", "--json").stdout
    assert daemon.credd("token", "revoke", live["id"]).returncode == 0
    assert get(address, "/v1/credentials/prod-admin", token)[0] == 401
    again = daemon.credd("token", "revoke", live["id"])
    assert again.returncode == 1 and f"no live token '{live['id']}'" in again.stderr
    assert daemon.credd("token", "issue", "prod-admin", "--ttl", "30d").returncode == 2


def test_issuing_is_refused_when_the_endpoint_is_off(daemon):
    daemon.start()
    reply = daemon.ask({"op": "token-issue", "profiles": ["prod-admin"], "ttl": 60})
    assert reply["ok"] is False and "endpoints: {container: 127.0.0.1:0}" in reply["message"]
    assert daemon.ask({"op": "status"})["endpoints"] == {"container": None, "imds": []}
    result = run_credd(["exec", "--server", "prod-admin", "--", "true"], daemon.home,
                       extra_env={"CREDD_SOCKET": str(daemon.socket)})
    assert result.returncode != 0 and "the container endpoint is off" in result.stderr


def test_tokens_expire_on_their_own():
    tokens = Tokens()
    now = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)
    token = tokens.issue(["prod-admin"], timedelta(hours=12), now)
    assert tokens.find(token.value, now + timedelta(hours=11)) == token
    assert tokens.find(token.value, now + timedelta(hours=12)) is None  # a SIGKILLed exec's token, gone
    assert tokens.live(now) == []
    assert len(token.value) >= 43  # 32 random bytes


def test_the_config_takes_loopback_addresses_only():
    assert parse(GOOD + "endpoints:\n  container: 127.0.0.1:9911\n").container == ("127.0.0.1", 9911)
    assert parse(GOOD + "endpoints:\n  container: '[::1]:0'\n").container == ("::1", 0)
    assert parse(GOOD).container is None  # off by default
    for value, fragment in (("0.0.0.0:80", "is not a loopback address"), ("192.168.1.2:80", "not a loopback"),
                            ("127.0.0.1:99999", "no port from 0 to 65535"), ("127.0.0.1", "not a loopback")):
        with pytest.raises(ConfigError) as caught:
            parse(GOOD + f"endpoints:\n  container: {value}\n")
        assert str(caught.value).startswith("config.yaml:25: endpoints.container: ")
        assert fragment in str(caught.value)


def test_the_account_id_is_the_configs_where_it_says_it():
    config = parse(GOOD)
    assert config.account_of("prod-admin") == "222222222222"  # the role's, from its ARN
    assert config.account_of("alice-session") == "111111111111"  # GetSessionToken only: the MFA device's (the user's)
    hardware = parse(GOOD.replace("arn:aws:iam::111111111111:mfa/alice", "GAHT12345678"))
    assert hardware.account_of("alice-session") is None  # not known without asking STS: AccountId is left out
    assert hardware.account_of("prod-admin") == "222222222222"
