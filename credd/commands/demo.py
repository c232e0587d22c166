"""`credd demo`: the whole flow, self-contained, in a throw-away home and keyring.

An embedded local STS (moto's server on loopback, from the `demo` extra), the
real `credd` commands in subprocesses whose HOME, XDG dirs, socket and
keyring point into a temporary directory, the daemon started and stopped with
a real signal. The user's own ~/.aws, config and keyring are never touched,
and the temporary directory is removed at the end. Secrets are shown masked.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from credd import protocol
from credd.commands.args import NoArgs
from credd.context import Context
from credd.errors import CreddError

# A made-up long-term key id (unlike the local STS's session ids: moto issues AWS's documented example id,
# AKIAIOSFODNN7EXAMPLE, for every session), AWS's documented example secret, and a demo seed; the demo never
# talks to real AWS.
DEMO_KEY_ID = "AKIA2CREDDDEMOLTKEY7"
DEMO_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DEMO_SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
SECRET_VALUE = re.compile(r'("(?:SecretAccessKey|SessionToken)": "|aws_(?:secret_access_key|session_token) = )[^"\n]+')


def demo_env(root: Path) -> dict[str, str]:
    """An environment whose home, config, state, socket and keyring all live under `root`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "CREDD_", "XDG_"))}
    env.update(
        HOME=str(root),
        XDG_CONFIG_HOME=str(root / ".config"),
        XDG_DATA_HOME=str(root / ".local" / "share"),
        XDG_STATE_HOME=str(root / ".local" / "state"),
        CREDD_SOCKET=str(root / "run" / "credd.sock"),
        # A throw-away file keyring, chosen explicitly: fine for a demo, never for real keys.
        PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


def extra_command(prefix: str, python: str, extra: str = "demo") -> str:
    """The command that adds `extra`'s packages to the install at `prefix`, as the installed metadata lists them.

    A pipx install is changed with `pipx inject` (pipx keeps its venvs to itself: a
    `pip install` there is lost on `pipx reinstall`); any other with its own pip.
    Without installed metadata (run from a bare source tree), `pip install 'credd[extra]'`.
    """
    from importlib import metadata

    try:
        marker = f'extra == "{extra}"'
        wanted = [requirement.split(";")[0].strip() for requirement in metadata.requires("credd") or ()
                  if requirement.split(";", 1)[-1].strip() == marker]
    except metadata.PackageNotFoundError:
        wanted = []
    if not wanted:
        return shlex.join(["pip", "install", f"credd[{extra}]"])
    if Path(prefix, "pipx_metadata.json").is_file():
        return shlex.join(["pipx", "inject", Path(prefix).name, *wanted])
    return shlex.join([python, "-m", "pip", "install", *wanted])


def run(ctx: Context, args: NoArgs) -> int:
    try:
        import keyrings.alt  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError:
        raise CreddError("the demo needs credd's `demo` extra (a local STS and a file keyring); add it to this "
                         f"install: {extra_command(sys.prefix, sys.executable)}") from None
    with tempfile.TemporaryDirectory(prefix="credd-demo-") as temp, local_sts() as endpoint:
        root = Path(temp)
        env = demo_env(root)
        ctx.say(f"credd demo: a throw-away home in {root}, a local STS at {endpoint}.\n"
                "Your own ~/.aws, config and keyring are not touched. Secrets below are masked.\n")
        _setup(ctx, env, endpoint)
        with _daemon(ctx, env, root) as daemon:
            _use(ctx, env, root, daemon)
        ctx.say("Done; the daemon is stopped and the throw-away home is removed.")
    return 0


def _setup(ctx: Context, env: dict[str, str], endpoint: str) -> None:
    _step(ctx, env, "Write a config: IAM user 'alice' with a TOTP MFA device, her session and one role.",
          ["init", "--source", "alice", "--mfa-serial", "arn:aws:iam::123456789012:mfa/alice", "--mfa", "totp",
           "--session-profile", "alice-session", "--role", "prod-admin=arn:aws:iam::210987654321:role/Admin",
           "--sts-endpoint", endpoint])
    _step(ctx, env, "Validate it: every error would name the file, the line and the key.", ["config", "check"])
    _step(ctx, env, "Store alice's long-term key in the keyring (two lines on stdin; on a terminal it prompts).",
          ["keys", "set", "alice"], stdin=f"{DEMO_KEY_ID}\n{DEMO_SECRET}\n")
    _step(ctx, env, "Store her TOTP seed, so credd makes MFA codes itself.", ["totp", "set", "alice"],
          stdin=DEMO_SEED + "\n")
    _step(ctx, env, "What the keyring holds, masked.", ["keys", "ls"])


def _use(ctx: Context, env: dict[str, str], root: Path, daemon: subprocess.Popen) -> None:
    _wait_for_state(env, "fresh")
    _step(ctx, env, "The daemon got one session with one MFA code and assumed the role with it:", ["status"])
    credentials = root / ".aws" / "credentials"
    ctx.say(f"   It wrote the profiles into {credentials} (mode 0600), atomically:")
    for line in _masked(credentials.read_text()).splitlines():
        ctx.say(f"     {line}")
    ctx.say("")
    _step(ctx, env, "The credential_process hook, as the AWS CLI runs it (`credential_process = credd process "
                    "prod-admin` in ~/.aws/config):", ["process", "prod-admin"])
    _step(ctx, env, "Refresh now instead of on schedule (otherwise 20 minutes before expiry):",
          ["refresh", "prod-admin"])
    _step(ctx, env, "A profile that is not configured gets a message that says what to do:", ["process", "nope"])
    with _typo_in_config(root):
        _step(ctx, env, "A config mistake: a profile naming a source that does not exist.", ["config", "check"])
    ctx.say(f"Stop the daemon with SIGTERM (pid {daemon.pid}): it finishes any write and removes its socket.")


@contextlib.contextmanager
def local_sts() -> Iterator[str]:
    """moto's STS on a free loopback port (the demo and the benchmarks)."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def _daemon(ctx: Context, env: dict[str, str], root: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = root / "serve.log"
    ctx.say("Start the daemon (systemd or launchd would run this at login): credd serve")
    with open(log, "wb") as stderr:
        daemon = subprocess.Popen([sys.executable, "-m", "credd", "serve"], env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        _wait_for_state(env, None)
        yield daemon
    finally:
        daemon.send_signal(signal.SIGTERM)
        status = daemon.wait(30)
        ctx.say(f"   (exit {status}); its log, one line an event, no secrets:")
        for line in log.read_text().splitlines():
            ctx.say(f"     {line}")
        ctx.say("")


def _wait_for_state(env: dict[str, str], state: str | None, timeout: float = 30.0) -> None:
    """Until the daemon answers (and, with `state`, every profile is in it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            reply = protocol.request(env["CREDD_SOCKET"], {"op": "status"}, 5)
            if state is None or all(row["state"] == state for row in reply["profiles"]):
                return
        except (protocol.DaemonUnreachable, OSError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise CreddError("the demo daemon did not come up within 30 s")
        time.sleep(0.05)


@contextlib.contextmanager
def _typo_in_config(root: Path) -> Iterator[None]:
    config = root / ".config" / "credd" / "config.yaml"
    good = config.read_text()
    config.write_text(good.replace("source: alice", "source: alcie", 1))
    try:
        yield
    finally:
        config.write_text(good)


def _masked(text: str) -> str:
    return SECRET_VALUE.sub(lambda match: match.group(1) + "…masked…", text)


def _step(ctx: Context, env: dict[str, str], title: str, argv: list[str], stdin: str | None = None) -> None:
    ctx.say(title)
    ctx.say(f"   $ credd {shlex.join(argv)}" + (" < (lines on stdin)" if stdin else ""))
    result = subprocess.run([sys.executable, "-m", "credd", *argv], input=stdin or "", capture_output=True,
                            text=True, env=env, timeout=120, check=False)  # its exit status is shown below
    for line in _masked(result.stdout + result.stderr).splitlines():
        ctx.say(f"     {line}")
    ctx.say(f"     (exit {result.returncode})\n")
