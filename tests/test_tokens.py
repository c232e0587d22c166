"""Container endpoint tokens: their files, rotation with a grace, expiry after a SIGKILLed exec, status and doctor."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from credd.commands.control import endpoint_lines
from credd.commands.serve_tokens import TokenDesk
from credd.endpoints.container import ROTATION_GRACE, Tokens
from tests import test_container
from tests.test_container import caller_env, get, issue

served = test_container.served  # the daemon with its container endpoint on, prod-admin fresh (a fixture)

T0 = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)


class Clock:
    """The desk's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def make_desk(tmp_path: Path) -> tuple[TokenDesk, Clock]:
    clock = Clock()
    return TokenDesk(Tokens(), tmp_path / "run" / "tokens", clock, lambda *words: "credd " + " ".join(words)), clock


# Pure: the values a token answers to, as time goes by -----------------------------------------------------------


def test_a_rotated_out_value_works_for_the_grace_then_never():
    tokens = Tokens()
    first = tokens.issue(["prod-admin"], timedelta(hours=1), T0)
    rotated_at = T0 + timedelta(minutes=5)
    new, old = tokens.rotate(first.id, rotated_at)
    assert old == first and new.value != first.value and new.id == first.id
    assert tokens.find(new.value, rotated_at).id == first.id
    assert tokens.find(first.value, rotated_at + ROTATION_GRACE - timedelta(seconds=1)).id == first.id
    assert tokens.find(first.value, rotated_at + ROTATION_GRACE) is None  # then revoked
    assert tokens.find(new.value, rotated_at + ROTATION_GRACE) is not None
    third, _ = tokens.rotate(first.id, rotated_at + timedelta(seconds=1))
    assert tokens.find(first.value, rotated_at + timedelta(seconds=1)) is None  # only the last value before is kept
    assert tokens.find(new.value, rotated_at + timedelta(seconds=1)) is not None
    assert tokens.find("", rotated_at) is None and tokens.find(third.value + "x", rotated_at) is None
    assert third.value not in repr(third) and new.value not in repr(third)  # a Token shows its id, never a value


def test_the_grace_never_outlives_the_token_and_rotation_comes_when_due():
    tokens = Tokens()
    token = tokens.issue(["prod-admin"], timedelta(seconds=30), T0, file="/x", rotate_every=timedelta(seconds=10))
    assert tokens.due(T0 + timedelta(seconds=9)) == []
    assert [t.id for t in tokens.due(T0 + timedelta(seconds=10))] == [token.id]
    new, _ = tokens.rotate(token.id, T0 + timedelta(seconds=25))
    assert new.previous_until == token.expires  # 5 s left, not the minute of grace
    assert tokens.due(T0 + timedelta(seconds=26)) == []  # rotated: due again 10 s later
    assert tokens.take_dropped(T0 + timedelta(seconds=29)) == []
    assert [t.id for t in tokens.take_dropped(T0 + timedelta(seconds=30))] == [token.id]  # expired, handed over once
    assert tokens.take_dropped(T0 + timedelta(seconds=31)) == []


# The desk: files written, replaced, removed ----------------------------------------------------------------------


def test_the_desk_writes_a_private_file_rotates_it_and_removes_it(tmp_path):
    desk, clock = make_desk(tmp_path)
    token, reply = desk.issue(["prod-admin"], 3600, True)
    path = Path(reply["file"])
    assert path == tmp_path / "run" / "tokens" / token.id
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert path.read_text() == token.value  # no newline: botocore refuses a value with one
    clock.now += timedelta(minutes=1)
    rotated = desk.rotate(token.id)
    assert rotated["ok"] and path.read_text() == rotated["token"] != token.value
    assert "the old value works for 60 s more" in rotated["message"]
    assert [p.name for p in path.parent.iterdir()] == [token.id]  # no temporary file left beside it
    assert desk.revoke(token.id)["message"] == f"token {token.id} revoked; {path} removed"
    assert not path.exists()
    assert desk.rotate(token.id)["error"] == "unknown-token"


def test_expired_tokens_lose_their_files_and_due_ones_rotate_in_the_upkeep(tmp_path):
    desk, clock = make_desk(tmp_path)
    _, reply = desk.issue(["prod-admin"], 60, True)
    _, rotating_reply = desk.issue(["prod-admin"], 3600, str(tmp_path / "dev.token"), rotate=600)
    first = Path(rotating_reply["file"]).read_text()
    clock.now += timedelta(seconds=59)
    desk.upkeep()
    assert Path(reply["file"]).exists() and Path(rotating_reply["file"]).read_text() == first
    clock.now += timedelta(seconds=1)
    desk.upkeep()
    assert not Path(reply["file"]).exists()  # expired: the file goes with it
    clock.now += timedelta(seconds=540)
    desk.upkeep()
    assert Path(rotating_reply["file"]).read_text() not in (first, "")
    desk.close()  # the daemon stops: every token dies, so does every file
    assert not Path(rotating_reply["file"]).exists()


def test_the_desk_never_overwrites_a_file_and_a_failed_rotation_keeps_the_value(tmp_path):
    desk, clock = make_desk(tmp_path)
    mine = tmp_path / "mine"
    mine.write_text("keep me")
    _, refused = desk.issue(["prod-admin"], 60, str(mine))
    assert refused["error"] == "failed" and f"{mine} exists" in refused["message"] and mine.read_text() == "keep me"
    assert desk.issue(["prod-admin"], 60, "relative/path")[1]["error"] == "bad-request"
    assert desk.issue(["prod-admin"], 60, None, rotate=10)[1]["error"] == "bad-request"  # rotation needs a file
    assert "is not a directory" in desk.issue(["prod-admin"], 60, str(tmp_path / "no" / "t"))[1]["message"]
    (tmp_path / "sub").mkdir()
    token, _ = desk.issue(["prod-admin"], 3600, str(tmp_path / "sub" / "t"))
    (tmp_path / "sub" / "t").unlink()
    (tmp_path / "sub").rmdir()
    (tmp_path / "sub").write_text("a file where the directory was")
    failed = desk.rotate(token.id)
    assert failed["error"] == "failed" and "was not rotated (it keeps its value)" in failed["message"]
    assert desk.tokens.find(token.value, clock.now + ROTATION_GRACE * 2) is not None  # the old value still works


# Real processes: the daemon, `credd exec --server`, `credd token`, botocore ---------------------------------------


def test_exec_server_gives_cmd_a_private_token_file_and_removes_it_at_exit(served):
    daemon, _ = served
    script = ("import os, stat, json\n"
              "path = os.environ['AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE']\n"
              "print(json.dumps({'path': path, 'mode': stat.S_IMODE(os.stat(path).st_mode),\n"
              "                  'same': open(path).read() == os.environ['AWS_CONTAINER_AUTHORIZATION_TOKEN']}))\n")
    result = subprocess.run([sys.executable, "-m", "credd", "exec", "--server", "prod-admin", "--", sys.executable,
                             "-c", script], capture_output=True, text=True, env=caller_env(daemon), timeout=60)
    assert result.returncode == 0, result.stderr + daemon.log()
    seen = json.loads(result.stdout)
    assert seen["mode"] == 0o600 and seen["same"]
    assert Path(seen["path"]).parent == daemon.socket.parent / "tokens"
    assert not os.path.exists(seen["path"])  # revoked at exit, and its file removed
    assert daemon.ask({"op": "status"})["endpoints"]["container"]["tokens"] == []


def test_a_sigkilled_exec_leaves_a_token_that_expires_and_its_file_goes_with_it(served, tmp_path):
    daemon, address = served
    ready = tmp_path / "ready"
    script = (f"import os, pathlib, time\npathlib.Path({str(ready)!r}).write_text("
              "os.environ['AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE'] + '\\n' + str(os.getpid()))\ntime.sleep(60)\n")
    run = subprocess.Popen([sys.executable, "-m", "credd", "exec", "--server", "--ttl", "3s", "prod-admin", "--",
                            sys.executable, "-c", script], env=caller_env(daemon),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    daemon.wait_until("the command started", lambda: ready.exists() and "\n" in ready.read_text())
    path, child = ready.read_text().split("\n")
    value = Path(path).read_text()
    try:
        run.kill()  # SIGKILL: credd exec cannot revoke
        assert run.wait(10) == -signal.SIGKILL
        (live,) = daemon.ask({"op": "status"})["endpoints"]["container"]["tokens"]
        assert live["file"] == path and Path(path).exists()  # still live: nobody revoked it
        assert get(address, "/v1/credentials/prod-admin", value)[0] == 200
        daemon.wait_until("the token expired", lambda: daemon.ask({"op": "status"})["endpoints"]["container"]["tokens"]
                          == [], timeout=10)
        daemon.wait_until("its file was removed", lambda: not os.path.exists(path), timeout=5)
        assert get(address, "/v1/credentials/prod-admin", value)[0] == 401  # and the value is useless
        assert f"token {live['id']} expired" in daemon.log()
    finally:
        os.kill(int(child), signal.SIGKILL)


def test_a_client_rereading_the_file_is_served_across_rotations(served, tmp_path):
    daemon, _ = served
    path = tmp_path / "dev-container.token"
    issued = daemon.credd("token", "issue", "prod-admin", "--ttl", "1h", "--file", str(path))
    assert issued.returncode == 0, issued.stderr
    variables = dict(line.removeprefix("export ").split("=", 1) for line in issued.stdout.splitlines())
    assert variables == {"AWS_CONTAINER_CREDENTIALS_FULL_URI": variables["AWS_CONTAINER_CREDENTIALS_FULL_URI"],
                         "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(path)}  # the file, never the value
    token_id = json.loads(daemon.credd("status", "--json").stdout)["endpoints"]["container"]["tokens"][0]["id"]
    stop = tmp_path / "stop"
    client = ("import os, sys, urllib.request, urllib.error\n"  # a client in a loop: the file, then a GET, each time
              f"url, path, stop = {variables['AWS_CONTAINER_CREDENTIALS_FULL_URI']!r}, {str(path)!r}, {str(stop)!r}\n"
              "seen, codes = set(), []\n"
              "while not os.path.exists(stop) or len(codes) < 5:\n"
              "    value = open(path).read()\n"
              "    seen.add(value)\n"
              "    request = urllib.request.Request(url, headers={'Authorization': value})\n"
              "    try:\n"
              "        codes.append(urllib.request.urlopen(request, timeout=5).status)\n"
              "    except urllib.error.HTTPError as e:\n"
              "        codes.append(e.code)\n"
              "print(len(seen), sorted(set(codes)), len(codes))\n")
    running = subprocess.Popen([sys.executable, "-c", client], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={"PATH": os.environ["PATH"], "NO_PROXY": "*"})
    try:
        values = [path.read_text()]
        for _ in range(3):
            rotated = daemon.credd("token", "rotate", token_id)
            assert rotated.returncode == 0, rotated.stderr
            assert rotated.stdout == ""  # it has a file: the value is not printed
            values.append(path.read_text())
        stop.write_text("")
        out, err = running.communicate(timeout=60)
    finally:
        running.kill()
    assert len(set(values)) == 4  # four values in the file, one after another
    distinct, codes, count = out.split(" ", 1)[0], out.split(" ", 1)[1].rsplit(" ", 1)[0], out.split()[-1]
    assert codes == "[200]", out + err  # every request served, before, during and after the rotations
    assert int(distinct) >= 2 and int(count) >= 5, out
    assert not any(value in daemon.log() for value in values)


def test_botocore_fetches_across_a_rotation_from_the_file(served, tmp_path):
    from botocore.credentials import ContainerProvider

    daemon, address = served
    path = tmp_path / "token"
    reply = daemon.ask({"op": "token-issue", "profiles": ["prod-admin"], "ttl": 600, "file": str(path)})
    assert reply["ok"] and reply["file"] == str(path)
    provider = ContainerProvider(environ={"AWS_CONTAINER_CREDENTIALS_FULL_URI": reply["url"] + "prod-admin",
                                          "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(path)})
    assert provider.load().get_frozen_credentials().access_key.startswith("ASIA")
    first = path.read_text()
    for _ in range(2):  # twice: the first value is then refused, not merely in its grace
        assert daemon.ask({"op": "token-rotate", "id": reply["id"]})["ok"]
    assert get(address, "/v1/credentials/prod-admin", first)[0] == 401
    assert provider.load().get_frozen_credentials().access_key.startswith("ASIA")  # it read the file again


def test_the_daemon_rotates_on_its_own_and_removes_files_at_its_stop(served, tmp_path):
    daemon, address = served
    path = tmp_path / "auto.token"
    issued = daemon.credd("token", "issue", "prod-admin", "--file", str(path), "--rotate", "1s")
    assert issued.returncode == 0 and "a new value every 1s" in issued.stderr, issued.stderr
    first = path.read_text()
    daemon.wait_until("a rotation", lambda: path.read_text() != first, timeout=10)
    assert get(address, "/v1/credentials/prod-admin", path.read_text())[0] == 200
    shown = daemon.credd("status").stdout
    assert f"file {path}, a new value every 1s)" in shown and first not in shown
    assert daemon.stop() == 0
    assert not path.exists()  # the token died with the daemon, and so did its file


def test_token_flags_refused_with_the_fix(served, tmp_path):
    daemon, _ = served
    no_file = daemon.credd("token", "issue", "prod-admin", "--rotate", "1h")
    assert no_file.returncode == 2 and "--rotate needs --file" in no_file.stderr
    taken = tmp_path / "taken"
    taken.write_text("mine")
    refused = daemon.credd("token", "issue", "prod-admin", "--file", str(taken))
    assert refused.returncode == 1 and f"{taken} exists" in refused.stderr and taken.read_text() == "mine"
    unknown = daemon.credd("token", "rotate", "deadbeef")
    assert unknown.returncode == 1 and "no live token 'deadbeef'" in unknown.stderr
    assert daemon.credd("exec", "--ttl", "1h", "prod-admin", "--", "true").returncode == 2  # --ttl needs --server


def test_status_and_doctor_show_the_endpoint_its_tokens_and_that_it_refuses_without_one(served):
    daemon, address = served
    token = issue(daemon, "prod-admin")
    reply = json.loads(daemon.credd("status", "--json").stdout)
    url = f"http://127.0.0.1:{address[1]}/v1/credentials/"
    container = reply["endpoints"]["container"]
    assert {key: container[key] for key in ("kind", "url", "address", "profiles")} == {
        "kind": "container", "url": url, "address": f"127.0.0.1:{address[1]}", "profiles": ["prod-admin"]}
    assert [t["id"] for t in container["tokens"]] == [token["id"]]
    shown = daemon.credd("status").stdout
    assert f"container endpoint: {url}PROFILE; live tokens: {token['id']} (prod-admin, until {token['expires']})" \
        in shown
    doctor = daemon.credd("doctor")
    assert (f"ok   endpoints: the container endpoint at {url} (endpoints.container: 127.0.0.1:0) answers, and "
            "refuses a request without a token (401)") in doctor.stdout, doctor.stdout
    assert f"ok   endpoints: 1 live token for the container endpoint: {token['id']} (prod-admin" in doctor.stdout
    assert token["token"] not in doctor.stdout + shown + json.dumps(reply)
    assert "refused a request without a valid token (401)" in daemon.log()  # doctor's probe, as the log says it


def test_files_a_killed_daemon_left_are_removed_at_its_next_start(served):
    daemon, _ = served
    reply = daemon.ask({"op": "token-issue", "profiles": ["prod-admin"], "ttl": 600, "file": True})
    path = Path(reply["file"])
    daemon.process.kill()  # SIGKILL: no stop, so the file stays, holding a value no daemon honours any more
    daemon.process.wait(10)
    assert path.read_text() == reply["token"]
    daemon.start()
    assert not path.exists()  # removed before the new daemon serves
    address = daemon.ask({"op": "status"})["endpoints"]["container"]["address"]
    host, _, port = address.rpartition(":")
    assert get((host, int(port)), "/v1/credentials/prod-admin", reply["token"])[0] == 401


def test_status_lines_for_each_server_and_for_a_daemon_of_before_servers():
    token = {"id": "ab12cd34", "profiles": ["prod-admin"], "expires": "2030-01-01T00:00:00Z", "file": None,
             "rotate_every": None, "rotated_at": "2029-12-31T23:00:00Z"}
    container = {"kind": "container", "address": "127.0.0.1:8911", "url": "http://127.0.0.1:8911/v1/credentials/",
                 "profiles": ["prod-admin"], "tokens": [token]}
    imds = {"kind": "imds", "address": "127.0.0.1:8912", "url": "http://127.0.0.1:8912/", "profiles": ["dev"]}
    assert endpoint_lines({"endpoints": {"container": container, "imds": [imds]}}) == [
        "container endpoint: http://127.0.0.1:8911/v1/credentials/PROFILE; live tokens: ab12cd34 (prod-admin, until "
        "2030-01-01T00:00:00Z)",
        "imds endpoint: http://127.0.0.1:8912/ (profile dev)"]
    older = {"container": {"address": "127.0.0.1:8911", "tokens": [token]}}  # a 0.2 daemon: address and tokens
    assert endpoint_lines({"endpoints": older}) == endpoint_lines({"endpoints": {"container": container}})
    assert endpoint_lines({"endpoints": {"container": None, "imds": []}}) == []
    assert endpoint_lines({}) == []  # a daemon of before the endpoints
