"""The hook's fast path (`credd.quickhook`, run by the installed `credd` script): it never disagrees with
the full hook (`credd.hook`), it handles the daemon's common reply without json or re, and it hands
everything else over to the full hook."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from credd import hook, protocol, quickhook
from credd.endpoints.unix_socket import Listener
from tests.conftest import Home, require_tool, run_credd
from tests.socket_helpers import RunningServer

REPO = Path(__file__).resolve().parents[1]
DOCUMENT = {"Version": 1, "AccessKeyId": "ASIAEXAMPLEEXAMPLE12", "SecretAccessKey": "quick/hook+secret",
            "SessionToken": "quick-hook-token==", "Expiration": "2026-11-22T13:45:00Z"}
FIELDS = ("Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")


class RawServer:
    """A Unix socket that answers every connection with the bytes in `reply`, whatever was asked."""

    def __init__(self, path: Path) -> None:
        self.listener = Listener(path, os.getuid())
        self.listener.sock.setblocking(True)
        self.reply = b""
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.sock.accept()
            except OSError:
                return
            with client:
                client.recv(65536)
                client.sendall(self.reply)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture(scope="module")
def raw_server(tmp_path_factory):
    server = RawServer(Path(tempfile.mkdtemp(prefix="credd-q-", dir="/tmp")) / "s.sock")  # short: sun_path
    yield server
    server.close()


def full_hook_output(path: Path) -> tuple[int, str]:
    """What the full hook prints for the server's reply, asked as it asks (its own request, a real socket)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = hook.run(None, "p", {"CREDD_SOCKET": str(path), "CREDD_PROCESS_TIMEOUT": "5"})
    return status, out.getvalue()


# Every shape of reply: the exact form with any values, near misses of it, protocol 1's compact form,
# errors, MFA prompts, other JSON and bytes that are not JSON.
values = st.one_of(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
                   st.text(max_size=20), st.sampled_from(["", "a\"b", "a\\b", "\x7f", "é", "\n", "x y"]))
version = st.one_of(st.just(1), st.sampled_from([True, 1.0, 2, 0, "1", None]))
documents = st.builds(lambda v, a, s, t, e: {"Version": v, "AccessKeyId": a, "SecretAccessKey": s,
                                            "SessionToken": t, "Expiration": e},
                      version, values, values, values, values)


@st.composite
def replies(draw) -> bytes:
    document = draw(documents)
    kind = draw(st.sampled_from(["exact", "exact", "exact", "reordered", "extra", "compact", "ascii-off",
                                 "error", "mfa", "garbage", "truncated", "spaces"]))
    if kind == "exact":
        return protocol.encode({"ok": True, "credentials": document})
    if kind == "reordered":
        items = draw(st.permutations(list(document.items())))
        return protocol.READY_PREFIX + json.dumps(dict(items)).encode() + b"}\n"
    if kind == "extra":
        return protocol.READY_PREFIX + json.dumps(dict(document, Extra="x")).encode() + b"}\n"
    if kind == "compact":  # protocol 1, as an older daemon writes it
        return json.dumps({"ok": True, "credentials": document}, separators=(",", ":")).encode() + b"\n"
    if kind == "ascii-off":
        return protocol.READY_PREFIX + json.dumps(document, ensure_ascii=False).encode() + b"}\n"
    if kind == "error":
        return protocol.encode(protocol.error_reply("failed", draw(values)))
    if kind == "mfa":
        return protocol.encode({"ok": False, "error": "mfa-required", "source": "s", "message": "m"})
    if kind == "truncated":
        whole = protocol.encode({"ok": True, "credentials": document})
        return whole[:draw(st.integers(0, len(whole) - 1))] + b"\n"
    if kind == "spaces":
        whole = protocol.encode({"ok": True, "credentials": document})
        at = draw(st.integers(len(protocol.READY_PREFIX), len(whole) - 2))
        return whole[:at] + b" " + whole[at:]
    return draw(st.binary(max_size=200)) + b"\n"


@settings(max_examples=400, deadline=None)
@given(reply=replies())
def test_the_fast_path_prints_what_the_full_hook_prints_or_hands_over(reply, raw_server):
    raw_server.reply = reply
    fast = quickhook.ready_document(reply)
    if fast is not None:
        assert full_hook_output(raw_server.listener.path) == (0, fast.decode())


@settings(max_examples=200, deadline=None)
@given(document=st.builds(dict, AccessKeyId=st.from_regex(r"ASIA[A-Z0-9]{16}", fullmatch=True),
                          SecretAccessKey=st.from_regex(r"[A-Za-z0-9/+]{40}", fullmatch=True),
                          SessionToken=st.from_regex(r"[A-Za-z0-9/+]{100,900}={0,2}", fullmatch=True),
                          Expiration=st.from_regex(r"20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z",
                                                   fullmatch=True)))
def test_every_real_credential_takes_the_fast_path(document):
    document = {"Version": 1, **{name: document[name] for name in FIELDS[1:]}}
    line = quickhook.ready_document(protocol.encode({"ok": True, "credentials": document}))
    assert line == json.dumps(document).encode() + b"\n"


def test_the_daemons_credentials_reply_is_in_the_exact_form():
    assert protocol.encode({"ok": True, "credentials": DOCUMENT}) == (
        b'{"ok":true,"credentials":' + json.dumps(DOCUMENT).encode() + b"}\n")
    # protocol 1 readers parse it as before
    assert protocol.decode_reply(protocol.encode({"ok": True, "credentials": DOCUMENT})) == {
        "ok": True, "credentials": DOCUMENT}


@pytest.mark.parametrize("name", ["", "-x", "a b", "é", "a\"b", "x" * 65])
def test_names_that_need_escaping_take_the_full_path(name):
    assert not quickhook.is_plain_name(name)


@settings(max_examples=500, deadline=None)
@given(args=st.lists(st.one_of(st.sampled_from(["process", "--config", "--config=c.yaml", "c.yaml", "p", "-p", "",
                                                "prod-admin", "a b", "--version"]), st.text(max_size=8)), max_size=5))
def test_the_fast_path_reads_a_command_line_as_the_full_hook_does_or_hands_it_over(args):
    from credd.commandline import process_args

    request = quickhook.credentials_request(args)
    if request is not None:
        assert request == process_args(args) and quickhook.is_plain_name(request[1])


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """credd as a wheel lays it out (not editable): a venv with the package in site-packages and the script in bin.

    Copied, not pip-installed (the wheel itself is tested in test_install.py): the fast path and the full
    hook need nothing beyond the standard library, and `python -S` finds the package only this way.
    """
    venv = tmp_path_factory.mktemp("plain-install")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    package = venv / "lib" / version / "site-packages" / "credd"
    shutil.copytree(REPO / "credd", package, ignore=shutil.ignore_patterns("__pycache__"))
    # Byte-compiled as pip and pipx do at install: the tests' PYTHONDONTWRITEBYTECODE keeps a run from doing it.
    subprocess.run([str(venv / "bin" / "python"), "-m", "compileall", "-q", str(package)], check=True)
    script = venv / "bin" / "credd"
    script.write_text((REPO / "scripts" / "credd").read_text().replace("#!python", f"#!{venv}/bin/python", 1))
    script.chmod(0o755)
    return venv / "bin"


def script(bin_dir: Path, home: Home, sock_path: Path | None, *args: str, flags: tuple[str, ...] = (),
           **variables: str) -> subprocess.CompletedProcess[str]:
    """The installed script run in `home` with `$CREDD_SOCKET` at `sock_path` (None: unset) and more `variables`."""
    env = dict(home.env, **variables)
    if sock_path is not None:
        env["CREDD_SOCKET"] = str(sock_path)
    return subprocess.run([str(bin_dir / "python"), *flags, str(bin_dir / "credd"), *args], capture_output=True,
                          text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)


# credd's four modules, _socket and resource (core files off, as for every command): not `os` nor what it imports
# (`posixpath`, `_collections_abc`, ...), which `python -I -S -c pass` has not loaded; nor `paths` or `configfile`.
ALLOWED = {"credd", "credd.quickhook", "credd.coredump", "credd.protocol", "_socket", "resource"}


def bare_start(bin_dir: Path, home: Home, flags: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """`python -X importtime FLAGS -c pass` of that install."""
    return subprocess.run([str(bin_dir / "python"), "-X", "importtime", *flags, "-c", "pass"], capture_output=True,
                          text=True, env=home.env, check=True)


def imported(result: subprocess.CompletedProcess[str]) -> set[str]:
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("flags", [(), ("-I", "-S")], ids=["plain", "isolated-no-site"])
def test_the_script_serves_a_real_daemon_without_json_or_re(daemon, installed, flags):
    daemon.start()
    full = daemon.credd("process", "prod-admin")
    assert full.returncode == 0, full.stderr
    fast = script(installed, daemon.home, daemon.socket, "process", "prod-admin", flags=("-X", "importtime", *flags))
    assert fast.returncode == 0 and fast.stdout == full.stdout
    added = imported(fast) - imported(bare_start(installed, daemon.home, flags))  # beyond the interpreter's own start
    assert "credd.quickhook" in added
    assert added <= ALLOWED, sorted(added - ALLOWED)


def test_an_error_reply_goes_to_the_full_hook_with_the_same_message(daemon, installed):
    daemon.start()
    full = daemon.credd("process", "nope")
    fast = script(installed, daemon.home, daemon.socket, "process", "nope", flags=("-I", "-S"))
    assert fast.returncode == full.returncode == 1
    assert fast.stderr == full.stderr and "is not in" in fast.stderr and fast.stdout == ""


def test_an_older_daemon_is_served_by_the_full_hook_in_one_request(home, sock_path, monkeypatch, installed):
    asked = []

    def handler(request: dict) -> dict:
        asked.append(request)
        return {"ok": True, "credentials": DOCUMENT}

    # protocol 1's daemon: compact JSON for every reply
    monkeypatch.setattr(protocol, "encode", lambda m: json.dumps(m, separators=(",", ":")).encode() + b"\n")
    server = RunningServer(sock_path, handler)
    try:
        result = script(installed, home, sock_path, "process", "p", flags=("-I", "-S"))
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    assert result.stdout == json.dumps(DOCUMENT) + "\n"
    assert asked == [{"op": "credentials", "profile": "p"}]


def test_no_daemon_and_other_commands_go_the_full_way(home, sock_path, installed):
    result = script(installed, home, sock_path, "process", "p", flags=("-I", "-S"))
    assert result.returncode == 1 and "the credd daemon is not running" in result.stderr
    version = script(installed, home, sock_path, "--version", flags=("-I", "-S"))
    assert version.returncode == 0 and version.stdout.startswith("credd ")
    assert run_credd(["--version"], home).stdout == version.stdout


def instructions(argv: list[str], env: dict[str, str]) -> int:
    """The instructions a command executes (valgrind's callgrind): a cost the machine's load does not change."""
    valgrind = require_tool("valgrind")
    result = subprocess.run([valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv], env=env,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stderr.split("Collected : ")[1].split()[0])


# The line credd init writes (`-I -S`) at most 0.8x `python -c pass`; the plain script (a line written by hand, or
# before) within issue 17's stretch goal. Counted here: 0.75x and 0.94x; with `os` on the fast path the first was
# 0.92x, and before os._exit they counted 1.14x and 1.19x. Instruction counts do not change with the machine's load.
@pytest.mark.parametrize("flags,limit", [((), 1.05), (("-I", "-S"), 0.8)], ids=["plain", "isolated-no-site"])
def test_the_hook_executes_no_more_instructions_than_python_c_pass(daemon, installed, flags, limit):
    """Issue 17's floor, counted rather than timed: the fast path's imports and its exchange with the daemon
    cost less than the interpreter's teardown, which it skips (os._exit once the document is written)."""
    daemon.start()
    env = dict(daemon.home.env, CREDD_SOCKET=str(daemon.socket))
    python = str(installed / "python")
    argv = [python, *flags, str(installed / "credd"), "process", "prod-admin"]
    warm = subprocess.run(argv, env=env, capture_output=True, timeout=60)  # the daemon's own first reply, say
    assert warm.returncode == 0, warm.stderr
    hook = instructions(argv, env)
    bare = instructions([python, "-c", "pass"], env)
    print(f"\nhook {' '.join(flags) or '(plain)'}: {hook:,} instructions, python -c pass: {bare:,}: "
          f"{hook / bare:.2f}x")
    assert hook <= bare * limit


def written_form(bin_dir: Path, cwd: Path) -> list[str]:
    """What `credd init` puts before `process PROFILE`, run from the install in `bin_dir` (`service.hook_command`)."""
    result = subprocess.run([str(bin_dir / "python"), "-c", "import json; from credd.service import hook_command; "
                             "print(json.dumps(hook_command({})))"], capture_output=True, text=True, cwd=cwd,
                            check=True)  # not run from the checkout, whose credd would come first on sys.path
    return json.loads(result.stdout)


def test_credd_writes_the_fast_form_for_a_venv_install_and_it_serves(daemon, installed, tmp_path):
    daemon.start()
    words = written_form(installed, tmp_path)
    assert words == [str(installed / "python"), "-I", "-S", str(installed / "credd")]
    full = daemon.credd("process", "prod-admin")
    hooked = subprocess.run([*words, "process", "prod-admin"], capture_output=True, text=True, timeout=60,
                            env=dict(daemon.home.env, CREDD_SOCKET=str(daemon.socket)), stdin=subprocess.DEVNULL)
    assert (hooked.returncode, hooked.stdout, hooked.stderr) == (0, full.stdout, "")


def test_pip_console_script_or_a_package_elsewhere_keeps_the_plain_form(installed, tmp_path):
    from credd.service import find_credd, hook_command

    # this checkout's .venv: an editable install, so credd is not in the venv's site-packages and -I -S would miss it
    assert hook_command(os.environ) == find_credd(os.environ)
    assert "-I" not in hook_command(os.environ)
    # pip's console-script wrapper, which imports credd.entry with no way to find site-packages under -S
    venv = tmp_path / "venv"
    shutil.copytree(installed.parent, venv, symlinks=True)
    wrapper = venv / "bin" / "credd"
    wrapper.write_text(f"#!{venv}/bin/python\nimport sys\nfrom credd.entry import main\nsys.exit(main())\n")
    assert written_form(venv / "bin", tmp_path) == [str(wrapper)]


def test_a_line_with_config_takes_the_fast_path_too(daemon, installed):
    daemon.start()
    config = str(daemon.home.config)
    full = daemon.credd("--config", config, "process", "prod-admin")
    assert full.returncode == 0, full.stderr
    fast = script(installed, daemon.home, daemon.socket, "--config", config, "process", "prod-admin",
                  flags=("-I", "-S", "-X", "importtime"))
    assert fast.returncode == 0 and fast.stdout == full.stdout
    added = imported(fast)
    assert "credd.commandline" in added  # to read the line as the full hook does; nothing more
    assert added - imported(bare_start(installed, daemon.home, ("-I", "-S"))) <= ALLOWED | {"credd.commandline"}


def test_the_common_setup_is_served_without_os(installed, home, tmp_path):
    """A user's own setup: no $CREDD_SOCKET, a config at the default place without `socket:`, the socket in
    $XDG_RUNTIME_DIR. The fast path reads the config and finds the socket without importing `os`."""
    runtime = Path(tempfile.mkdtemp(prefix="credd-r-", dir="/tmp"))  # short: sun_path
    home.write_config("version: 1\n# socket: /not/this/one.sock\n")
    server = RawServer(runtime / "credd" / "credd.sock")
    server.reply = protocol.encode({"ok": True, "credentials": DOCUMENT})
    try:
        result = script(installed, home, None, "process", "p", flags=("-I", "-S", "-X", "importtime"),
                        XDG_RUNTIME_DIR=str(runtime))
    finally:
        server.close()
        shutil.rmtree(runtime, ignore_errors=True)
    assert result.returncode == 0 and result.stdout == json.dumps(DOCUMENT) + "\n", result.stderr[-2000:]
    added = imported(result) - imported(bare_start(installed, home, ("-I", "-S")))
    assert "credd.quickhook" in added and "os" not in added
    assert added <= ALLOWED, sorted(added - ALLOWED)


def test_a_config_with_a_socket_line_is_served_by_way_of_paths(installed, home):
    """`socket:` in the config: the fast path hands the socket's finding to `paths` (which imports os)."""
    runtime = Path(tempfile.mkdtemp(prefix="credd-r-", dir="/tmp"))
    home.write_config(f"version: 1\nsocket: {runtime}/elsewhere.sock  # mine\n")
    server = RawServer(runtime / "elsewhere.sock")
    server.reply = protocol.encode({"ok": True, "credentials": DOCUMENT})
    try:
        result = script(installed, home, None, "process", "p", flags=("-I", "-S", "-X", "importtime"))
    finally:
        server.close()
        shutil.rmtree(runtime, ignore_errors=True)
    assert result.returncode == 0 and result.stdout == json.dumps(DOCUMENT) + "\n", result.stderr[-2000:]
    assert {"credd.paths", "os"} <= imported(result)


# Where the fast path looks for the socket: every variable paths.socket_file reads, with values of every kind
# (unset, empty, absolute, with a trailing `/`, relative, `~`, `$VAR`), and configs that name a socket or not.
CONFIGS = {"plain": "version: 1\n", "socket": "version: 1\nsocket: /tmp/named.sock # here\n",
           "first-line": "socket: '/tmp/quoted.sock'\n", "indented": "x:\n  socket: /tmp/nested.sock\n",
           "empty-socket": "socket:\nversion: 1\n", "commented": "# socket: /tmp/no.sock\n", "none": None,
           "directory": "dir", "fifo": "fifo", "crlf": "version: 1\r\nsocket: /tmp/crlf.sock\r\n",
           "not-utf8": b"\xff\xfe\nsocket: /tmp/b.sock\n"}


@pytest.fixture(scope="module")
def config_roots(tmp_path_factory) -> dict[str, str]:
    """A directory per kind of config, holding it both as DIR/credd/config.yaml and DIR/.config/credd/config.yaml."""
    roots = {}
    for name, content in CONFIGS.items():
        root = tmp_path_factory.mktemp(name)
        for where in (root / "credd", root / ".config" / "credd"):
            where.mkdir(parents=True)
            target = where / "config.yaml"
            if content == "dir":
                target.mkdir()
            elif content == "fifo":
                os.mkfifo(target)
            elif isinstance(content, bytes):
                target.write_bytes(content)
            elif content is not None:
                target.write_text(content)
        roots[name] = str(root)
    return roots


@st.composite
def environments(draw, roots: dict[str, str]) -> tuple[dict[str, str], str | None]:
    dirs = st.sampled_from(sorted(roots.values()))
    odd = st.sampled_from(["", "relative", "rel/dir", "~", "~/x", "~user/x", "$HOME", "${HOME}/x", "/", "//x",
                           "/tmp/a$b", "$UNSET/x"])
    directory = st.one_of(dirs, dirs.map(lambda d: d + "/"), odd)
    config_file = st.one_of(dirs.map(lambda d: d + "/credd/config.yaml"), odd)
    variables = {"HOME": directory, "XDG_CONFIG_HOME": directory, "XDG_RUNTIME_DIR": directory,
                 "CREDD_CONFIG": config_file, "CREDD_SOCKET": st.one_of(st.just("/tmp/s.sock"), odd)}
    # The variables that decide alone (and a --config) are set in a quarter of the draws: the rest look further.
    rarely = {"CREDD_SOCKET", "CREDD_CONFIG"}
    env = {}
    for name, value in variables.items():
        if draw(st.integers(0, 3)) == 0 if name in rarely else draw(st.booleans()):
            env[name] = draw(value)
    return env, draw(config_file) if draw(st.integers(0, 3)) == 0 else None


@settings(max_examples=2000, deadline=None)
@given(data=st.data(), platform=st.sampled_from(["linux", "linux", "darwin", "freebsd14"]),
       uid=st.integers(0, 2 ** 31))
def test_the_fast_path_finds_the_socket_where_paths_does_or_hands_over(data, platform, uid, config_roots):
    from credd import paths

    env, config = data.draw(environments(config_roots))
    fast = quickhook.socket_path(env, config, platform, uid)
    if fast is not None:
        assert fast == paths.socket_file(env, config, platform, uid)


def test_the_usual_environments_take_the_fast_path(config_roots):
    plain, named = config_roots["plain"], config_roots["socket"]
    usual = {"HOME": plain, "XDG_RUNTIME_DIR": "/run/user/1000"}
    assert quickhook.socket_path(usual, None, "linux", 1000) == "/run/user/1000/credd/credd.sock"
    assert quickhook.socket_path({"HOME": plain}, None, "linux", 1000) == "/tmp/credd-1000/credd.sock"
    assert quickhook.socket_path({**usual, "CREDD_SOCKET": "/s/credd.sock"}, None, "linux", 1) == "/s/credd.sock"
    assert quickhook.socket_path(usual, f"{plain}/credd/config.yaml", "linux", 1000) == (
        "/run/user/1000/credd/credd.sock")
    # handed over: a config that names the socket, a variable to expand, a relative path, macOS
    assert quickhook.socket_path({**usual, "HOME": named}, None, "linux", 1000) is None
    assert quickhook.socket_path({**usual, "CREDD_SOCKET": "$HOME/s"}, None, "linux", 1000) is None
    assert quickhook.socket_path({**usual, "CREDD_SOCKET": "s.sock"}, None, "linux", 1000) is None
    assert quickhook.socket_path(usual, None, "darwin", 501) is None
    # a relative $XDG_CONFIG_HOME is ignored (XDG), so the config read is the one under $HOME
    assert quickhook.socket_path({**usual, "HOME": named, "XDG_CONFIG_HOME": "rel"}, None, "linux", 1000) is None
    assert quickhook.socket_path({**usual, "XDG_CONFIG_HOME": f"{named}/"}, None, "linux", 1000) is None


def test_the_environment_is_read_as_os_environ_reads_it(monkeypatch):
    import posix

    monkeypatch.setenv("CREDD_SOCKET", "/changed/since/the/start.sock")  # os.environ changes; posix.environ does not
    monkeypatch.setitem(posix.environ, b"HOME", "/h\udcff".encode("utf-8", "surrogateescape"))
    assert quickhook.environment(("CREDD_SOCKET",)) == {"CREDD_SOCKET": "/changed/since/the/start.sock"}
    monkeypatch.delitem(sys.modules, "os")  # as under `python -S`, where nothing has imported os
    assert quickhook.environment(("HOME", "UNSET_HERE")) == {"HOME": "/h\udcff"}
