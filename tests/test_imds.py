"""IMDSv2 from a real `credd serve`, asked by botocore, the AWS CLI v2 and hostile clients."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from credd.endpoints.imds import MAX_TTL, Sessions, answer
from credd.errors import ConfigError
from credd.timefmt import utc_text
from tests.conftest import require_tool
from tests.fixtures_daemon import daemon_config
from tests.test_config import GOOD, parse
from tests.test_container import check_slow_idle_and_flooding_clients, http
from tests.test_serve import require_aws_v2

ENDPOINT = "endpoints:\n  imds:\n    - listen: 127.0.0.1:0\n      profile: prod-admin\n"
CREDS = "/latest/meta-data/iam/security-credentials/"


def start(daemon, live_sts, mfa: str = "totp", fresh: bool = True) -> tuple[str, int]:
    daemon.home.write_config(daemon_config(live_sts.url, mfa=mfa) + ENDPOINT)
    daemon.start()
    if fresh:
        daemon.wait_state("prod-admin", "fresh")
    (described,) = daemon.ask({"op": "status"})["endpoints"]["imds"]
    assert described["kind"] == "imds" and described["profiles"] == ["prod-admin"]
    assert described["url"] == f"http://{described['address']}/"
    host, _, port = described["address"].rpartition(":")
    return host, int(port)


@pytest.fixture
def served(daemon, live_sts):
    """The daemon with an IMDS listener for prod-admin, which is fresh; yields it and the listener's (host, port)."""
    return daemon, start(daemon, live_sts)


def request(address, method: str, path: str, headers: dict[str, str] | None = None,
            host: str = "127.0.0.1") -> tuple[int | None, bytes]:
    lines = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    return http(address, f"{method} {path} HTTP/1.1\r\nHost: {host}:{address[1]}\r\n{lines}\r\n".encode())


def session(address, ttl: str = "60") -> str:
    status, body = request(address, "PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": ttl})
    assert status == 200, body
    return body.decode()


def sdk_env(daemon, address) -> dict[str, str]:
    """No profile, no keys, no config files: only the metadata endpoint (and what runs Python)."""
    empty = daemon.home.root / "empty-home"
    empty.mkdir(exist_ok=True)
    return {"PATH": "/usr/bin:/bin", "HOME": str(empty), "AWS_EC2_METADATA_SERVICE_ENDPOINT":
            f"http://127.0.0.1:{address[1]}/", "AWS_CONFIG_FILE": str(empty / "none"),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty / "none"), "AWS_PAGER": ""}


def test_botocore_gets_the_assumed_role_from_imds(served, live_sts):
    daemon, address = served
    script = ("import botocore.session\n"
              "session = botocore.session.get_session()\n"
              "print(session.get_credentials().method)\n"
              f"sts = session.create_client('sts', region_name='us-east-1', endpoint_url={live_sts.url!r})\n"
              "print(sts.get_caller_identity()['Arn'])\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=sdk_env(daemon, address), timeout=120)
    assert result.returncode == 0, result.stderr + daemon.log()
    method, arn = result.stdout.split()
    assert method == "iam-role"
    assert ":assumed-role/Admin/" in arn
    assert f"imds 127.0.0.1:{address[1]}: served profile prod-admin (200)" in daemon.log()


def test_the_aws_cli_gets_the_assumed_role_and_its_region_from_imds(served, live_sts):
    aws = require_aws_v2()
    daemon, address = served
    result = subprocess.run([aws, "sts", "get-caller-identity", "--endpoint-url", live_sts.url, "--output", "json"],
                            capture_output=True, text=True, env=sdk_env(daemon, address), timeout=120)
    assert result.returncode == 0, result.stderr + daemon.log()
    assert ":assumed-role/Admin/" in json.loads(result.stdout)["Arn"]
    region = subprocess.run([aws, "configure", "list"], capture_output=True, text=True,
                            env=sdk_env(daemon, address), timeout=120)
    assert "us-east-1" in region.stdout and "imds" in region.stdout, region.stdout + region.stderr


def in_namespaces(unshare: str, *flags: str) -> list[str]:
    """`unshare` into new namespaces; as a user other than root, a user namespace maps the caller to root (the
    kernel still knows the client's sockets as the caller's, so the endpoint lets it in)."""
    return [unshare, *flags, *([] if os.geteuid() == 0 else ["--map-root-user"])]


def test_a_container_on_the_host_network_gets_the_role_and_one_on_its_own_does_not(served, live_sts):
    """What docs/endpoints.md's Docker recipe relies on, without Docker (no engine runs here): the AWS CLI in its
    own mount, PID, UTS and IPC namespaces on the host's network (`docker run --network host`), with only the
    endpoint variable, gets the role; in its own network namespace too (Docker's default bridge), it cannot reach
    the loopback endpoint at all, which is why the recipe says `--network host`."""
    unshare = require_tool("unshare")
    aws = require_aws_v2()
    daemon, address = served
    call = [aws, "sts", "get-caller-identity", "--endpoint-url", live_sts.url, "--region", "us-east-1"]
    container = in_namespaces(unshare, "--mount", "--pid", "--fork", "--uts", "--ipc", "--mount-proc")
    result = subprocess.run([*container, *call, "--output", "json"], capture_output=True, text=True,
                            env=sdk_env(daemon, address), timeout=120)
    assert result.returncode == 0, result.stderr + daemon.log()
    assert ":assumed-role/Admin/" in json.loads(result.stdout)["Arn"]
    apart = subprocess.run([*in_namespaces(unshare, "--net"), *call], capture_output=True, text=True,
                           env=sdk_env(daemon, address), timeout=120)
    assert apart.returncode != 0 and "Unable to locate credentials" in apart.stderr


def test_a_profile_without_fresh_credentials_gets_the_reason_at_once(daemon, live_sts):
    aws = require_aws_v2()
    address = start(daemon, live_sts, mfa="prompt", fresh=False)  # no code comes: prod-admin never gets fresh
    daemon.wait_state("prod-admin", "needs-mfa")
    token = session(address)
    started = time.monotonic()
    status, body = request(address, "GET", CREDS + "prod-admin", {"X-aws-ec2-metadata-token": token})
    assert time.monotonic() - started < 1  # botocore's deadline for IMDS: no wait on STS or an MFA code
    assert status == 503
    assert json.loads(body)["Message"].startswith("credd holds no fresh credentials for profile prod-admin")
    result = subprocess.run([aws, "sts", "get-caller-identity", "--endpoint-url", live_sts.url, "--region",
                             "us-east-1", "--debug"], capture_output=True, text=True,
                            env=sdk_env(daemon, address), timeout=120)
    assert result.returncode != 0
    assert "Unable to locate credentials" in result.stderr
    assert "credd holds no fresh credentials for profile prod-admin" in result.stderr  # in the CLI's --debug


def test_the_role_name_the_credentials_and_the_extended_ones(served):
    daemon, address = served
    token = {"X-aws-ec2-metadata-token": session(address)}
    assert request(address, "GET", CREDS, token) == (200, b"prod-admin")
    status, body = request(address, "GET", CREDS + "prod-admin", token)
    document = json.loads(body)
    assert status == 200 and document["Code"] == "Success" and document["Type"] == "AWS-HMAC"
    assert set(document) == {"Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
    (row,) = [row for row in daemon.ask({"op": "status"})["profiles"] if row["profile"] == "prod-admin"]
    assert document["LastUpdated"] == row["last_refresh"]  # when credd got them, as `credd status` says
    status, body = request(address, "GET", "/latest/meta-data/iam/security-credentials-extended/prod-admin", token)
    assert status == 200 and json.loads(body)["AccountId"] == "222222222222"  # the role's account, from its ARN
    assert request(address, "GET", CREDS + "alice-session", token)[0] == 404  # the listener serves one profile
    assert request(address, "GET", "/latest/meta-data/placement/region", token) == (200, b"us-east-1")
    assert request(address, "GET", "/latest/meta-data/placement/availability-zone", token) == (200, b"us-east-1a")


@pytest.mark.parametrize("method, path, headers, expected", [
    ("GET", CREDS + "prod-admin", {}, 401),  # IMDSv1: no token
    ("GET", CREDS, {}, 401),
    ("GET", CREDS + "prod-admin", {"X-aws-ec2-metadata-token": "guess"}, 401),
    ("PUT", "/latest/api/token", {}, 400),  # no TTL
    ("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "0"}, 400),
    ("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": str(MAX_TTL + 1)}, 400),
    ("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "6h"}, 400),
    ("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60", "X-Forwarded-For": "10.0.0.9"}, 403),
    ("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60", "X": "a" * 9000}, 431),
    ("POST", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60"}, 405),
], ids=["no-token", "no-token-role-name", "wrong-token", "no-ttl", "ttl-0", "ttl-too-long", "ttl-not-a-number",
        "forwarded", "oversized", "post"])
def test_hostile_requests_are_refused(served, method, path, headers, expected):
    _, address = served
    assert request(address, method, path, headers)[0] == expected


def test_a_rebinding_host_gets_neither_a_token_nor_credentials(served):
    daemon, address = served
    ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    assert request(address, "PUT", "/latest/api/token", ttl, host="attacker.example")[0] == 403
    token = {"X-aws-ec2-metadata-token": session(address)}
    assert request(address, "GET", CREDS + "prod-admin", token, host="attacker.example")[0] == 403
    assert request(address, "GET", CREDS + "prod-admin", token, host="localhost")[0] == 200
    assert "refused a non-loopback Host header" in daemon.log()


def test_slow_and_idle_clients_are_cut_off_and_a_flood_is_refused_at_accept(served):
    _, address = served
    check_slow_idle_and_flooding_clients(
        address, lambda: request(address, "GET", CREDS, {"X-aws-ec2-metadata-token": session(address)})[0])


def imds_document(daemon, profile: str, now: datetime) -> dict:
    """What IMDS answers the in-process `daemon` for `profile` at `now`: the endpoint's own `answer`, with a token."""
    sessions = Sessions()
    head = (f"GET {CREDS}{profile} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"X-aws-ec2-metadata-token: {sessions.issue(60, now)}\r\n\r\n").encode()
    response, _ = answer(head, profile, sessions, daemon, now)
    assert response.status == 200, response.body
    return json.loads(response.body)


def test_last_updated_is_when_credd_got_the_credentials_not_when_it_answers(make_daemon, sts_front, clock):
    _, daemon, _, _ = make_daemon(roles=1)
    daemon.refresh_all()
    got = utc_text(clock.now())
    clock.advance(10 * 60)
    role = imds_document(daemon, "role-00", clock.now())
    assert role["LastUpdated"] == got
    session = imds_document(daemon, "alice-session", clock.now())
    assert session["LastUpdated"] == got
    # A forced refresh assumes the role anew, but serves the session it holds: only the role's time moves.
    assert daemon.refresh_now([])["ok"]
    assert imds_document(daemon, "role-00", clock.now())["LastUpdated"] == utc_text(clock.now())
    assert imds_document(daemon, "alice-session", clock.now()) == session
    # Credentials it no longer holds (replaced a moment ago): no time of its own to give.
    assert daemon.last_updated("role-00", role["AccessKeyId"]) is None
    assert daemon.last_updated("nope", role["AccessKeyId"]) is None


def test_session_tokens_expire_and_a_flood_of_them_is_bounded():
    sessions = Sessions(limit=3)
    now = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)
    first = sessions.issue(60, now)
    assert sessions.valid(first, now + timedelta(seconds=59))
    assert not sessions.valid(first, now + timedelta(seconds=60))
    assert len(first) >= 43  # 32 random bytes
    later = [sessions.issue(600, now) for _ in range(3)]  # the fourth pushes out the soonest to expire: `first`
    assert not sessions.valid(first, now) and all(sessions.valid(value, now) for value in later)


def test_the_config_takes_a_loopback_listener_per_profile():
    config = parse(GOOD + "endpoints:\n  imds:\n    - {listen: 127.0.0.1:9912, profile: prod-admin}\n"
                          "    - {listen: '[::1]:0', profile: alice-session}\n")
    assert [(i.host, i.port, i.profile) for i in config.imds] == [("127.0.0.1", 9912, "prod-admin"),
                                                                  ("::1", 0, "alice-session")]
    assert parse(GOOD).imds == ()  # off by default
    for entries, fragment in (
            ("  imds: 127.0.0.1:9912", "25: endpoints.imds: expected a list of listeners"),
            ("  imds:\n    - {listen: 0.0.0.0:80, profile: prod-admin}", "26: endpoints.imds.listen: '0.0.0.0:80' "
                                                                         "is not a loopback address"),
            ("  imds:\n    - {listen: 127.0.0.1:0, profile: prod-admn}",
             "26: endpoints.imds.profile: 'prod-admn' is not a profile here (did you mean 'prod-admin'?)"),
            ("  imds:\n    - {profile: prod-admin}", "26: endpoints.imds.listen: is required"),
            ("  imds:\n    - {listen: 127.0.0.1:9, profile: prod-admin}\n    - {listen: 127.0.0.1:9, profile: "
             "alice-session}", "27: endpoints.imds.listen: 127.0.0.1:9 is already the listener on line 26"),
            ("  imds:\n    - {listen: 127.0.0.1:9, profile: prod-admin, role: x}", "26: endpoints.imds.role: "
                                                                                 "unknown key")):
        with pytest.raises(ConfigError) as caught:
            parse(GOOD + f"endpoints:\n{entries}\n")
        assert str(caught.value).startswith(f"config.yaml:{fragment}"), str(caught.value)


def test_a_taken_port_names_the_config_key(daemon, live_sts, tmp_path):
    import socket
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon.home.write_config(daemon_config(live_sts.url) + ENDPOINT.replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        result = daemon.credd("serve")
    assert result.returncode == 1
    assert f"endpoints.imds.listen: cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_client_of_another_user_of_this_machine_is_refused(daemon, live_sts):
    if os.getuid() != 0:
        pytest.skip("running a client as another user needs root (CI runs as root)")
    daemon.home.write_config(daemon_config(live_sts.url) + ENDPOINT + "  container: 127.0.0.1:0\n")
    daemon.start()
    endpoints = daemon.ask({"op": "status"})["endpoints"]
    imds, container = endpoints["imds"][0]["address"], endpoints["container"]["address"]
    token = daemon.ask({"op": "token-issue", "profiles": ["prod-admin"], "ttl": 60})["token"]
    asks = [(imds, "PUT /latest/api/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   "X-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n"),
            (container, f"GET /v1/credentials/prod-admin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        f"Authorization: {token}\r\n\r\n")]
    script = ("import socket, sys\nconn = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
              "conn.sendall(sys.argv[2].encode())\nprint(conn.recv(100).split()[1].decode())\n")
    for address, raw in asks:
        port = address.rpartition(":")[2]
        nobody = subprocess.run(["/usr/bin/python3", "-c", script, port, raw], user=65534, cwd="/", env={},
                                capture_output=True, text=True, timeout=30)
        assert nobody.stdout.strip() == "403", nobody.stderr
        assert http(("127.0.0.1", int(port)), raw.encode())[0] in (200, 503)  # this user (root) is served
    assert "refused a client on a loopback port of another user of this machine" in daemon.log()


def test_a_reload_keeps_the_listeners_and_says_a_change_waits_for_a_restart(served, live_sts):
    daemon, address = served
    daemon.home.write_config(daemon_config(live_sts.url))  # `endpoints:` gone
    daemon.process.send_signal(signal.SIGHUP)
    daemon.wait_until("the reload", lambda: "reloaded" in daemon.log())
    assert "reload: `endpoints:` changed; it takes effect at the next restart" in daemon.log()
    token = {"X-aws-ec2-metadata-token": session(address)}  # still listening, with the reloaded daemon's answers
    assert request(address, "GET", CREDS + "prod-admin", token)[0] == 200
