"""credd as users install it: the sdist and wheel that `python -m build` makes, the wheel installed with pipx
into a clean home (the README's install line, as written), and used there: the plain `credd` script from
pipx's bin dir (a symlink into pipx's venv), the hook's start-up, `credd init`'s wiring, `service install
--dry-run`, and the demo with the extra it asks for.

One build and one install for the whole session (about 25 s here, most of it pip resolving the dependencies);
the demo's extra is added in its own test, with the command the demo itself prints.
"""

from __future__ import annotations

import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from credd import __version__
from tests.conftest import SCRUBBED_PREFIXES, assert_no_secrets, require_tool
from tests.fixtures_daemon import DaemonProcess

REPO = Path(__file__).resolve().parents[1]
WHEEL = f"credd-{__version__}-py3-none-any.whl"
SDIST = f"credd-{__version__}.tar.gz"
PIPX_LINE = "pipx install dist/credd-*.whl"  # the README's line, run here as written


@dataclass
class Installed:
    root: Path  # the build directory: dist/ holds the sdist and the wheel
    env: dict[str, str]  # HOME, PIPX_HOME and PIPX_BIN_DIR in the session's temporary directory
    bin_dir: Path  # PIPX_BIN_DIR: `credd` there is pipx's symlink
    venv: Path  # pipx's venv for credd
    seconds: dict[str, float]

    def run(self, *argv: str, env: dict[str, str] | None = None, timeout: float = 120,
            **options) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(list(argv), env=env or self.env, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL, **options)
        assert_no_secrets(result.stdout + result.stderr)
        return result


def _user_pip_config() -> str | None:
    """The pip config file of the user running the tests: a clean HOME must still reach the same package index."""
    if os.environ.get("PIP_CONFIG_FILE"):
        return os.environ["PIP_CONFIG_FILE"]
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    for path in (os.path.join(config_home, "pip", "pip.conf"), os.path.expanduser("~/.pip/pip.conf")):
        if os.path.isfile(path):
            return path
    return None


def _checkout_copy(target: Path) -> Path:
    """The checkout's files (tracked and new, not ignored): building there leaves no egg-info in the checkout."""
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


@pytest.fixture(scope="session")
def pipx_install(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    pipx = require_tool("pipx")
    require_tool("git")
    base = tmp_path_factory.mktemp("install")
    root = _checkout_copy(base / "checkout")
    seconds = {}
    started = time.monotonic()
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(root / "dist"), str(root)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    seconds["build"] = time.monotonic() - started
    home = base / "home"
    home.mkdir()
    env = {name: value for name, value in os.environ.items()
           if not name.startswith((*SCRUBBED_PREFIXES, "PIPX_", "VIRTUAL_ENV", "PYTHON"))}
    env.update(HOME=str(home), PIPX_HOME=str(base / "pipx"), PIPX_BIN_DIR=str(base / "bin"),
               PATH=f"{base / 'bin'}:{os.environ.get('PATH', os.defpath)}", XDG_RUNTIME_DIR=str(base / "run"))
    (base / "run").mkdir(mode=0o700)
    pip_config = _user_pip_config()
    if pip_config:
        env["PIP_CONFIG_FILE"] = pip_config
    started = time.monotonic()
    installed = subprocess.run(["bash", "-c", PIPX_LINE.replace("pipx", shlex.quote(pipx), 1)], cwd=root, env=env,
                               capture_output=True, text=True, timeout=900)
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    seconds["pipx install"] = time.monotonic() - started
    return Installed(root, env, base / "bin", base / "pipx" / "venvs" / "credd", seconds)


def test_build_makes_an_sdist_and_a_wheel_with_every_module_and_the_plain_script(pipx_install: Installed):
    dist = pipx_install.root / "dist"
    assert sorted(path.name for path in dist.iterdir()) == sorted([SDIST, WHEEL])
    modules = sorted(str(path.relative_to(REPO)) for path in (REPO / "credd").rglob("*.py"))
    with zipfile.ZipFile(dist / WHEEL) as wheel:
        names = wheel.namelist()
        assert sorted(name for name in names if name.startswith("credd/")) == modules
        script = wheel.read(f"credd-{__version__}.data/scripts/credd").decode()
    assert script == (REPO / "scripts" / "credd").read_text()  # the plain script, not a console-script wrapper
    with tarfile.open(dist / SDIST) as sdist:
        members = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"README.md", "pyproject.toml", "scripts/credd", *modules} <= members
    print(f"build and install took {pipx_install.seconds}")


def test_the_readme_install_section_has_the_line_this_test_runs():
    readme = (REPO / "README.md").read_text()
    install = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    assert PIPX_LINE in install
    assert "python -m build" in install or "pipx run build" in install


def test_pipx_puts_the_plain_credd_script_on_path(pipx_install: Installed):
    link = pipx_install.bin_dir / "credd"
    assert link.is_symlink() and link.resolve() == (pipx_install.venv / "bin" / "credd").resolve()
    first_line = link.read_text().splitlines()[0]
    assert first_line == f"#!{pipx_install.venv / 'bin' / 'python'}"
    result = pipx_install.run("credd", "--version")  # found on PATH, as a user types it
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"credd {__version__} (socket protocol ")


def test_init_and_service_install_dry_run_name_the_pipx_script(pipx_install: Installed, tmp_path: Path):
    home = tmp_path / "home"
    env = dict(pipx_install.env, HOME=str(home))
    script = pipx_install.venv / "bin" / "credd"
    python = pipx_install.venv / "bin" / "python"
    init = pipx_install.run("credd", "init", "--source", "alice", "--role",
                            "prod-admin=arn:aws:iam::222222222222:role/Admin", "--hook", "--wire-aws-config", env=env)
    assert init.returncode == 0, init.stderr
    # the fast form (service.hook_command): pipx's venv Python without site, running the plain script
    wired = (home / ".aws" / "config").read_text()
    assert f"credential_process = {python} -I -S {script} process prod-admin\n" in wired
    dry_run = pipx_install.run("credd", "service", "install", "--dry-run", "--platform", "linux", env=env)
    assert dry_run.returncode == 0, dry_run.stderr
    assert f"ExecStart={script} serve\n" in dry_run.stdout


def test_the_hook_from_pipx_bin_dir_serves_and_its_start_up_is_reported(pipx_install: Installed,
                                                                        daemon: DaemonProcess):
    from bench.common import time_commands, timing_table

    daemon.start()
    daemon.wait_state("prod-admin", "fresh")
    env = dict(daemon.env, PATH=pipx_install.env["PATH"])
    env.pop("PYTHON_KEYRING_BACKEND", None)  # the hook needs no keyring
    expected = daemon.credd("process", "prod-admin").stdout
    python = str(pipx_install.venv / "bin" / "python")
    link = str(pipx_install.bin_dir / "credd")
    commands = {
        "python -I -S -c pass": [python, "-I", "-S", "-c", "pass"],
        "python -c pass": [python, "-c", "pass"],
        "credd process prod-admin": [link, "process", "prod-admin"],
        # the credential_process line `credd init` writes from this install (service.hook_command)
        "python -I -S VENV/bin/credd process prod-admin": [python, "-I", "-S", str(pipx_install.venv / "bin" / "credd"),
                                                           "process", "prod-admin"],
    }
    for name in ("credd process prod-admin", "python -I -S VENV/bin/credd process prod-admin"):
        result = pipx_install.run(*commands[name], env=env)
        assert (result.returncode, result.stdout) == (0, expected), result.stderr
    times = time_commands(commands, env, runs=15, expect_ok=list(commands))
    ratio = statistics.median(times["python -I -S VENV/bin/credd process prod-admin"]) / statistics.median(
        times["python -c pass"])
    print(f"\nthe hook from a pipx install of the wheel, 15 runs each, interleaved "
          f"(measured, not asserted: the machine is shared):\n{timing_table(times, 'python -c pass')}\n"
          f"hook as credd init wires it / python -c pass = {ratio:.2f}")


def test_the_demo_runs_in_the_pipx_install_with_the_extra_it_names(pipx_install: Installed, tmp_path: Path):
    env = dict(pipx_install.env, HOME=str(tmp_path))
    missing = pipx_install.run("credd", "demo", env=env)
    if missing.returncode == 0:
        pytest.fail("the demo ran without its extra: has another test added it?")
    inject = "pipx inject credd 'moto[server]>=5' 'keyrings.alt>=5'"
    assert missing.stderr == ("credd: error: the demo needs credd's `demo` extra (a local STS and a file keyring); "
                              f"add it to this install: {inject}\n")
    started = time.monotonic()
    added = pipx_install.run(*shlex.split(inject), env=env, timeout=900)
    assert added.returncode == 0, added.stdout[-2000:] + added.stderr[-2000:]
    pipx_install.seconds["pipx inject"] = time.monotonic() - started
    demo = pipx_install.run("credd", "demo", env=env)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-2000:]
    assert "credd process prod-admin" in demo.stdout
    assert demo.stdout.rstrip().endswith("Done; the daemon is stopped and the throw-away home is removed.")
    print(f"build, install and inject took {pipx_install.seconds}")
