"""Throw-away venvs under bench/.peers/ (git-ignored): the peers from PyPI, and credd as a user installs it.

Never .venv, never a dependency of credd. A venv that could not be made is
remembered with the reason (`.failed`) until `--reinstall`, so a run does not
retry a build that cannot work on this machine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from common import REPO

PEERS_DIR = Path(__file__).resolve().parent / ".peers"
CREDD = "credd"


def bin_dir(name: str) -> Path:
    return PEERS_DIR / name / "bin"


def install(name: str, steps: Sequence[Sequence[str]], *, reinstall: bool = False,
            needs: Sequence[tuple[str, str]] = ()) -> str | None:
    """Make venv `name` with `pip install` of each step; None when it is ready, else why it is not.

    `needs`: (file that must exist, how to get it), checked before any build.
    """
    home = PEERS_DIR / name
    done, failed = home / ".installed", home / ".failed"
    spec = json.dumps([list(step) for step in steps])
    if reinstall and home.exists():
        shutil.rmtree(home)
    if failed.exists():
        return failed.read_text().strip()
    if done.exists() and done.read_text() == spec:
        return None
    for path, how in needs:
        if not Path(path).exists():
            return _fail(home, f"needs {path} to build: {how}")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(home)], check=True, capture_output=True)
    for step in steps:
        result = pip(home, step)
        if result.returncode != 0:
            lines = [line for line in (result.stdout + result.stderr).splitlines()
                     if "error" in line.lower() and "Location 'file" not in line]
            return _fail(home, f"`pip install {' '.join(step)}` failed: " + " / ".join(lines[-3:])[:400])
    done.write_text(spec)
    return None


def install_credd(reinstall: bool = False) -> Path:
    """credd from this checkout, not editable, with its dependencies; refreshed from the source every call."""
    reason = install(CREDD, [[str(REPO)]], reinstall=reinstall)
    if reason:
        raise SystemExit(f"credd could not be installed in {PEERS_DIR / CREDD}: {reason}")
    result = pip(PEERS_DIR / CREDD, ["--no-deps", "--force-reinstall", str(REPO)])
    if result.returncode != 0:
        raise SystemExit(f"credd could not be reinstalled from {REPO}: {result.stderr[-400:]}")
    return bin_dir(CREDD)


def install_pipx_wheel() -> Path:
    """credd as pipx installs the wheel `python -m build` makes from this checkout (both redone every call).

    pipx's home and bin dir are under bench/.peers/ too, never the user's. Returns the venv's bin
    (pipx's bin dir only links to its `credd`).
    """
    pipx = shutil.which("pipx")
    if pipx is None:
        raise SystemExit("pipx is not installed (Debian: apt-get install pipx)")
    dist = PEERS_DIR / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    built = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(REPO)],
                           capture_output=True, text=True, timeout=900, check=False)
    if built.returncode != 0:
        raise SystemExit(f"python -m build failed: {built.stderr[-400:]}")
    env = dict(os.environ, PIPX_HOME=str(PEERS_DIR / "pipx"), PIPX_BIN_DIR=str(PEERS_DIR / "pipx-bin"))
    wheel = next(dist.glob("credd-*.whl"))
    installed = subprocess.run([pipx, "install", "--force", str(wheel)], env=env, capture_output=True, text=True,
                               timeout=900, check=False)
    if installed.returncode != 0:
        raise SystemExit(f"pipx install {wheel} failed: {installed.stderr[-400:]}")
    # Over an earlier install of the same version, pip keeps the old files ("already satisfied"): put this build's in.
    replaced = subprocess.run([pipx, "runpip", CREDD, "install", "--quiet", "--no-deps", "--force-reinstall",
                               str(wheel)], env=env, capture_output=True, text=True, timeout=900, check=False)
    if replaced.returncode != 0:
        raise SystemExit(f"pipx runpip {CREDD} install {wheel} failed: {replaced.stderr[-400:]}")
    return PEERS_DIR / "pipx" / "venvs" / CREDD / "bin"


def pip(home: Path, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """`pip install` into the venv at `home`, with its bin first on PATH (build tools installed there)."""
    env = dict(os.environ, PATH=f"{home / 'bin'}:{os.environ.get('PATH', '')}", PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    return subprocess.run([str(home / "bin" / "python"), "-m", "pip", "install", "--quiet", *args], env=env,
                          capture_output=True, text=True, timeout=900, check=False)


def _fail(home: Path, reason: str) -> str:
    home.mkdir(parents=True, exist_ok=True)
    (home / ".failed").write_text(reason + "\n")
    return reason
