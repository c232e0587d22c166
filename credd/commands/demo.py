"""`credd demo`: the flow so far, self-contained, in a throw-away home and keyring.

It runs the real `credd` commands in subprocesses whose HOME, XDG dirs and
keyring point into a temporary directory, so the user's own ~/.aws, config
and keyring are never touched, and removes that directory at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from credd.context import Context
from credd.errors import CreddError

# AWS's documented example key; the demo never talks to real AWS.
DEMO_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
DEMO_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DEMO_SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def demo_env(root: Path) -> dict[str, str]:
    """An environment whose home, config, state and keyring all live under `root`."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "CREDD_", "XDG_"))}
    env.update(
        HOME=str(root),
        XDG_CONFIG_HOME=str(root / ".config"),
        XDG_DATA_HOME=str(root / ".local" / "share"),
        XDG_STATE_HOME=str(root / ".local" / "state"),
        XDG_RUNTIME_DIR=str(root / "run"),
        # A throw-away file keyring, chosen explicitly: fine for a demo, never for real keys.
        PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring",
    )
    return env


def run(ctx: Context, args: argparse.Namespace) -> int:
    try:
        import keyrings.alt  # noqa: F401
    except ImportError:
        raise CreddError("the demo needs its extras: pip install 'credd[demo]'") from None
    with tempfile.TemporaryDirectory(prefix="credd-demo-") as temp:
        root = Path(temp)
        (root / "run").mkdir(mode=0o700)
        env = demo_env(root)
        ctx.say(f"credd demo: a throw-away home in {root}; your own ~/.aws and keyring are not touched.\n")
        steps = [
            ("Write a starter config for an IAM user 'alice' with a TOTP MFA device and one role.",
             ["init", "--source", "alice", "--mfa-serial", "arn:aws:iam::123456789012:mfa/alice", "--mfa", "totp",
              "--role", "prod-admin=arn:aws:iam::210987654321:role/Admin"], None),
            ("Validate it: every error would name the file, the line and the key.", ["config", "check"], None),
            ("Store alice's long-term key in the keyring (two lines on stdin; on a terminal it prompts).",
             ["keys", "set", "alice"], f"{DEMO_KEY_ID}\n{DEMO_SECRET}\n"),
            ("Store her TOTP seed, so credd can make MFA codes itself.", ["totp", "set", "alice"], DEMO_SEED + "\n"),
            ("See what the keyring holds (masked).", ["keys", "ls"], None),
            ("A config mistake: a profile naming a source that does not exist.", None, None),
            ("Clean up: remove alice's key and seed.", ["keys", "rm", "alice"], None),
        ]
        for number, (title, argv, stdin) in enumerate(steps, 1):
            ctx.say(f"{number}. {title}")
            if argv is None:
                with _typo_in_config(root):
                    _step(ctx, ["config", "check"], None, env)
            else:
                _step(ctx, argv, stdin, env)
        ctx.say("Done; the throw-away home is removed.")
    return 0


@contextlib.contextmanager
def _typo_in_config(root: Path):
    config = root / ".config" / "credd" / "config.yaml"
    good = config.read_text()
    config.write_text(good.replace("source: alice", "source: alcie", 1))
    try:
        yield
    finally:
        config.write_text(good)


def _step(ctx: Context, argv: list[str], stdin: str | None, env: dict[str, str]) -> None:
    shown = "credd " + shlex.join(argv) + (" < (lines on stdin)" if stdin else "")
    ctx.say(f"   $ {shown}")
    result = subprocess.run([sys.executable, "-m", "credd", *argv], input=stdin or "", capture_output=True,
                            text=True, env=env, timeout=60)
    for line in (result.stdout + result.stderr).splitlines():
        ctx.say(f"     {line}")
    ctx.say(f"     (exit {result.returncode})\n")
