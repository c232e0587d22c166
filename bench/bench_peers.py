"""Start-up of Python peers' credential_process commands, side by side with credd's hook.

    .venv/bin/python bench/bench_peers.py [--runs 25] [--reinstall] [--no-install]

Each peer is installed from PyPI into its own throw-away venv under
bench/.peers/ (git-ignored; never into .venv, never a dependency of credd), and
so is credd itself, as a user installs it (`pip install .`, not editable: an
editable install slows every start of its interpreter). A peer that cannot be
installed is reported with the reason, and the rest run.

Peers are untrusted code: each runs in its own throw-away HOME, with the
AWS_* variables scrubbed, detached from the terminal (nothing can prompt),
and only on a path that needs no network: a warm cache hit where the peer
has one (it then prints real credentials, as credd's warm daemon does), else
its start-up to a fast failure or to `--help` (which pays the same imports).
All commands run interleaved; the ratio is to `credd process p`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import common
import installs
from common import SERIAL, markdown, running_daemon, time_commands

from credd.commands.demo import DEMO_KEY_ID, DEMO_SECRET, demo_env, local_sts

PROFILE = "p"
LATER = (datetime.now(timezone.utc) + timedelta(hours=8)).replace(microsecond=0)
SESSION = {"AccessKeyId": "ASIAEXAMPLEEXAMPLE01", "SecretAccessKey": "x" * 40, "SessionToken": "FwoG" + "y" * 300}


@dataclass
class Peer:
    name: str  # the venv's directory and the table's label
    steps: list[list[str]]  # `pip install` argument lists, in order
    argv: Callable[[Path], list[str]]  # the command, given the venv's bin directory
    does: str  # what the command does here, for the table
    serves: bool  # prints credentials (exit 0) rather than failing fast by design
    prepare: Callable[[Path, dict[str, str]], None] | None = None  # writes the peer's config or cache
    needs: list[tuple[str, str]] = field(default_factory=list)  # (file that must exist, how to get it)


# Each peer's warm path, set up in its own throw-away home -------------------------------

def _aws_credential_process(bin_dir: Path, env: dict[str, str]) -> None:
    """Its access key id in the credentials file, its secret and a cached MFA session in the (file) keyring."""
    aws = Path(env["HOME"]) / ".aws"
    aws.mkdir(mode=0o700, parents=True, exist_ok=True)
    (aws / "credentials").write_text(f"[default]\naws_access_key_id = {DEMO_KEY_ID}\n")
    cached = {"expiration": LATER.isoformat(), "access_key_id": SESSION["AccessKeyId"],
              "secret_access_key": SESSION["SecretAccessKey"], "session_token": SESSION["SessionToken"]}
    script = ("import json, sys, keyring\n"
              "key_id, secret, session = sys.argv[1:4]\n"
              "keyring.set_password('aws_credential_process', key_id, secret)\n"
              "keyring.set_password('aws_credential_process', key_id + '-mfa-session', session)\n")
    subprocess.run([str(bin_dir / "python"), "-c", script, DEMO_KEY_ID, DEMO_SECRET, json.dumps(cached)],
                   env=env, check=True, capture_output=True, timeout=60)


def _aws_export_credentials(bin_dir: Path, env: dict[str, str]) -> None:
    """A profile with static keys, and a cache file holding unexpired session credentials."""
    aws = Path(env["HOME"]) / ".aws"
    aws.mkdir(mode=0o700, parents=True, exist_ok=True)
    (aws / "credentials").write_text(f"[{PROFILE}]\naws_access_key_id = {DEMO_KEY_ID}\n"
                                     f"aws_secret_access_key = {DEMO_SECRET}\n")
    cache = {"ProviderType": "aws-export-credentials",
             "Credentials": {**SESSION, "Expiration": LATER.strftime("%Y-%m-%dT%H:%M:%SZ")}}
    (Path(env["HOME"]) / "cache.json").write_text(json.dumps(cache))


def _aws_sso_util(bin_dir: Path, env: dict[str, str]) -> None:
    """A profile without Identity Center settings: it reads the config, then stops with 'Missing ...'."""
    aws = Path(env["HOME"]) / ".aws"
    aws.mkdir(mode=0o700, parents=True, exist_ok=True)
    (aws / "config").write_text(f"[profile {PROFILE}]\nregion = us-east-1\n")


PCSC_HEADERS = ("/usr/include/PCSC/winscard.h", "apt-get install libpcsclite-dev (Debian/Ubuntu)")

PEERS = [
    Peer(installs.CREDD, [], lambda b: [str(b / "credd"), "process", PROFILE],
         "asks the warm daemon; prints credentials", True),
    # yubikey-manager 5.0.0 (pinned by aws-credential-process 0.20.0) imports smartcard.pcsc.PCSCContext,
    # which pyscard 2.2 dropped; pyscard 2.0.x has no wheels and its SWIG interface builds only with SWIG 3.
    Peer("aws-credential-process",
         [["swig==3.0.12", "setuptools", "wheel"], ["--no-build-isolation", "pyscard==2.0.10"],
          ["aws-credential-process==0.20.0", "keyrings.alt"]],
         lambda b: [str(b / "aws-credential-process"), "--mfa-serial-number", SERIAL],
         "MFA session cached in the keyring (warm); prints credentials", True, _aws_credential_process,
         [PCSC_HEADERS]),
    Peer("aws-export-credentials", [["aws-export-credentials==0.18.0"]],
         lambda b: [str(b / "aws-export-credentials"), "--profile", PROFILE, "--json", "--cache-file",
                    "$HOME/cache.json"],
         "credentials cached in its --cache-file (warm); prints credentials", True, _aws_export_credentials),
    Peer("aws-sso-util", [["aws-sso-util==4.33.0"]],
         lambda b: [str(b / "aws-sso-util"), "credential-process", "--profile", PROFILE],
         "reads the profile, stops: no Identity Center settings (exit 2)", False, _aws_sso_util),
    Peer("awsprocesscreds", [["awsprocesscreds==0.0.2"]],
         lambda b: [str(b / "awsprocesscreds-saml"), "--help"],
         "`--help` (SAML needs an IdP and a password prompt)", False),
    Peer("aws-okta-processor", [["aws-okta-processor==1.10.0"]],
         lambda b: [str(b / "aws-okta-processor"), "authenticate", "--help"],
         "`authenticate --help` (Okta needs a login)", False),
]


# Measuring -----------------------------------------------------------------------------

def check(name: str, argv: list[str], env: dict[str, str], serves: bool) -> str:
    """Run once before timing: a peer that should print credentials must; returns its first line of stderr."""
    result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                            start_new_session=True, check=False)
    if serves and (result.returncode != 0 or '"AccessKeyId"' not in result.stdout):
        raise SystemExit(f"{name} did not print credentials (exit {result.returncode}): {result.stderr[-400:]}")
    return (result.stderr.strip().splitlines() or [""])[-1][:120]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--reinstall", action="store_true", help="remake every venv under bench/.peers/")
    parser.add_argument("--no-install", action="store_true", help="use only peers' venvs installed before")
    args = parser.parse_args()
    installs.install_credd(args.reinstall)
    missing = {}
    for peer in PEERS[1:]:
        if args.no_install and not (installs.PEERS_DIR / peer.name / ".installed").exists():
            missing[peer.name] = "not installed (--no-install)"
            continue
        reason = installs.install(peer.name, peer.steps, reinstall=args.reinstall, needs=peer.needs)
        if reason:
            missing[peer.name] = reason
    bin_of = {peer.name: installs.bin_dir(peer.name) for peer in PEERS}
    python = str(bin_of[installs.CREDD] / "python")
    with tempfile.TemporaryDirectory(prefix="credd-bench-") as temp, local_sts() as endpoint:
        root = Path(temp)
        env = demo_env(root / "credd")
        with running_daemon(env, endpoint, {PROFILE: "arn:aws:iam::210987654321:role/Admin"}, write=False):
            commands = {"python -I -S -c pass": [python, "-I", "-S", "-c", "pass"],
                        "python -c pass": [python, "-c", "pass"]}
            envs, rows_of = {}, {}
            for peer in PEERS:
                if peer.name in missing:
                    continue
                peer_env = env if peer.name == installs.CREDD else demo_env(root / peer.name)
                Path(peer_env["HOME"]).mkdir(parents=True, exist_ok=True)
                if peer.prepare:
                    peer.prepare(bin_of[peer.name], peer_env)
                argv = [arg.replace("$HOME", peer_env["HOME"]) for arg in peer.argv(bin_of[peer.name])]
                label = " ".join([Path(argv[0]).name, *argv[1:]]).replace(peer_env["HOME"], "~")
                check(peer.name, argv, peer_env, peer.serves)
                commands[label], envs[label], rows_of[label] = argv, peer_env, peer
            times = time_commands(commands, env, args.runs, envs=envs,
                                  expect_ok=[label for label, peer in rows_of.items() if peer.serves])
    credd_label = next(label for label, peer in rows_of.items() if peer.name == installs.CREDD)
    base = statistics.median(times[credd_label])
    rows = []
    for label, values in times.items():
        peer = rows_of.get(label)
        median = statistics.median(values)
        rows.append((peer.name if peer else "(baseline)", f"`{label}`", peer.does if peer else "the interpreter alone",
                     f"{median:.0f}", f"{min(values):.0f}", f"{max(values):.0f}", f"{median / base:.2f}"))
    print(f"### Peers\n\n{args.runs} runs each, interleaved; each in its own venv under bench/.peers/ "
          f"(same interpreter); credd installed as a user installs it (not editable); {common.machine()}\n")
    print(markdown(("tool", "command", "what it does here", "median ms", "min ms", "max ms",
                    f"ratio to `{credd_label}`"), rows, "lll"))
    for name, reason in missing.items():
        print(f"\nNot measured: {name}: {reason}")


if __name__ == "__main__":
    main()
