"""The systemd unit and launchd plist as rendered, checked by their own tools where we have them;
`credd service` through the real CLI, with stand-ins for systemctl and launchctl that record each call.

`python -m tests.test_service` rewrites the example copies in systemd/ and launchd/.
"""

from __future__ import annotations

import io
import json
import os
import plistlib
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from credd import cli, service
from credd.context import Context
from credd.service import LABEL, ServiceSpec, build_spec, find_credd, render_plist, render_unit
from tests.conftest import Home, require_tool, run_credd
from tests.test_cli import CONFIG

REPO = Path(__file__).resolve().parent.parent
DARWIN_SOCKET = "/tmp/credd-test-darwin.sock"  # never bound: only rendered
CREDD = find_credd(os.environ)  # what `credd service install` puts in ExecStart when run from this venv

# The stand-in records `NAME ARGS...` in $FAKE_LOG and answers as the real tool would.
# FAKE_MODE=broken: no user manager to talk to. FAKE_MODE=no-namespaces: systemd cannot set up
# the mount sandbox (as on Ubuntu 24.04), so a start of a unit with ProtectSystem= fails with 226.
FAKE_TOOL = """\
#!/bin/sh
echo "${0##*/} $*" >> "$FAKE_LOG"
case "$FAKE_MODE:$*" in
  broken:*) echo "Failed to connect to bus: No medium found" >&2; exit 1 ;;
  no-namespaces:"--user restart credd.service")
    if grep -q '^ProtectSystem=' "$FAKE_UNIT"; then
      echo "Job for credd.service failed because the control process exited with error code." >&2
      echo 'See "systemctl --user status credd.service" for details.' >&2
      exit 1
    fi ;;
  no-namespaces:"--user show --property=ExecMainStatus --value credd.service") echo 226 ;;
  bad-start:"--user restart credd.service") echo "Job for credd.service failed." >&2; exit 1 ;;
  bad-start:"--user show --property=ExecMainStatus --value credd.service") echo 1 ;;
  *:"--user is-enabled credd.service") echo enabled ;;
  *:"--user is-active credd.service") echo active ;;
  *:"print gui/"*) printf 'gui/0/io.github.credd = {\\n\\tstate = running\\n\\tpid = 4242\\n'
                   printf '\\tlast exit code = (never exited)\\n}\\n' ;;
esac
exit 0
"""


@dataclass
class Tools:
    """The stand-ins' directory, their record, and the environment that puts them first on PATH."""

    bin: Path
    log: Path
    env: dict[str, str]

    def calls(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []


@pytest.fixture
def tools(home: Home, tmp_path: Path) -> Tools:
    home.write_config(CONFIG)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("systemctl", "launchctl"):
        (bin_dir / name).write_text(FAKE_TOOL)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls.log"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "FAKE_LOG": str(log), "FAKE_MODE": "ok",
           "FAKE_UNIT": str(unit_file(home))}
    return Tools(bin_dir, log, env)


def unit_file(home: Home) -> Path:
    return home.root / ".config" / "systemd" / "user" / "credd.service"


def plist_file(home: Home) -> Path:
    return home.root / "Library" / "LaunchAgents" / f"{LABEL}.plist"


def credd(args: list[str], home: Home, tools: Tools, **env: str) -> subprocess.CompletedProcess[str]:
    if "darwin" in args:  # macOS's default socket, under the test's long home, would not fit in sun_path
        env = {"CREDD_SOCKET": DARWIN_SOCKET, **env}
    return run_credd(["service", *args], home, extra_env={**tools.env, **env})


def spec_for(command: tuple[str, ...] = (*CREDD, "serve"), **changes) -> ServiceSpec:
    """A user's spec, with this venv's credd: `systemd-analyze verify` wants ExecStart's program to exist."""
    return replace(ServiceSpec(
        command=command, home="/home/you",
        environment=(("PATH", "/usr/local/bin:/usr/bin:/bin"),),
        writable=("/home/you/.aws", "/home/you/.local/state/credd"),
    ), **changes)


# The unit -------------------------------------------------------------------------------------

def verify(unit_text: str, tmp_path: Path) -> None:
    """`systemd-analyze --user verify`: systemd's own parser, as the user manager would load the unit.

    --user because this is a user unit (it resolves RuntimeDirectory= against
    $XDG_RUNTIME_DIR, which it needs set); verify also checks that
    ExecStart's program exists. It reports unknown or malformed settings as
    warnings with exit status 0, so any output at all fails the test.
    """
    tool = require_tool("systemd-analyze")
    unit_dir = tmp_path / "unit"
    unit_dir.mkdir(parents=True)
    (unit_dir / "credd.service").write_text(unit_text)
    (tmp_path / "verify-run").mkdir(mode=0o700, exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "verify-run")}
    result = subprocess.run([tool, "--user", "verify", str(unit_dir / "credd.service")], check=False, env=env,
                            capture_output=True, text=True, timeout=30)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def settings(unit_text: str) -> list[str]:
    """The unit's setting lines, without comments and blank lines."""
    return [line for line in unit_text.splitlines() if line and not line.startswith("#")]


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path):
    verify(render_unit(spec_for()), tmp_path)
    verify(render_unit(spec_for(mount_sandbox=False, runtime_directory=False)), tmp_path / "x")


EXPOSURE_CEILING = 2.5  # SECURITY.md quotes the score; the unit scored 6.2 MEDIUM before it was hardened


def exposure(unit_text: str, tmp_path: Path) -> float:
    """`systemd-analyze security --offline=yes --user`: systemd's own score of what the unit exposes (0 to 10)."""
    tool = require_tool("systemd-analyze")
    unit = tmp_path / "security" / "credd.service"
    unit.parent.mkdir(parents=True)
    unit.write_text(unit_text)
    (tmp_path / "security-run").mkdir(mode=0o700)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path / "security-run")}
    result = subprocess.run([tool, "security", "--offline=yes", "--user", "--no-pager", str(unit)], check=False,
                            env=env, capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for credd\.service: (\d+\.\d)", result.stdout)
    assert found, result.stdout + result.stderr
    return float(found.group(1))


def test_the_unit_scores_low_under_systemd_analyze_security(tmp_path: Path):
    assert exposure(render_unit(spec_for()), tmp_path) <= EXPOSURE_CEILING
    examples_unit = (REPO / "systemd" / "credd.service").read_text()
    assert exposure(examples_unit, tmp_path / "example") <= EXPOSURE_CEILING


def test_odd_characters_survive_systemd_quoting(tmp_path: Path):
    # A program in a directory with a space, a % (a specifier) and a $ (a variable): verify fails
    # unless systemd, unquoting ExecStart=, finds exactly this file.
    odd = tmp_path / "my tools" / "100% $HOME"
    odd.mkdir(parents=True)
    program = odd / "credd"
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    spec = spec_for(command=(str(program), "--config", str(odd / 'say "hi"\\.yaml'), "serve"),
                    environment=(("PATH", f"{odd}:/usr/bin"), ("CREDD_SOCKET", "/tmp/a b/credd.sock")),
                    writable=(str(odd),))
    text = render_unit(spec)
    assert f'ExecStart="{tmp_path}/my tools/100%% $HOME/credd" --config "{tmp_path}/my tools/100%% $$HOME/say' in text
    assert f'Environment="PATH={tmp_path}/my tools/100%% $HOME:/usr/bin"\n' in text
    assert f'ReadWritePaths="-{tmp_path}/my tools/100%% $HOME"\n' in text
    verify(text, tmp_path)


def test_unit_settings():
    lines = settings(render_unit(spec_for()))
    service_lines = lines[lines.index("[Service]") + 1:lines.index("[Install]")]
    assert service_lines == [
        "Type=notify",
        f"ExecStart={' '.join(CREDD)} serve",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartSec=5s",
        "RestartPreventExitStatus=2",
        "SyslogIdentifier=credd",
        "UMask=0077",
        "Environment=PATH=/usr/local/bin:/usr/bin:/bin",
        "RuntimeDirectory=credd",
        "RuntimeDirectoryMode=0700",
        "NoNewPrivileges=yes",
        "LockPersonality=yes",
        "MemoryDenyWriteExecute=yes",
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "SystemCallArchitectures=native",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
        "SystemCallErrorNumber=EPERM",
        "CapabilityBoundingSet=",
        "KeyringMode=private",
        "ProtectClock=yes",
        "LimitCORE=0",
        "RemoveIPC=yes",
        "DevicePolicy=closed",
        *MOUNT_SANDBOX,
    ]
    assert lines[-2:] == ["[Install]", "WantedBy=default.target"]


# What needs a user namespace (mounts, /proc, the UTS namespace): left out where the system refuses one.
MOUNT_SANDBOX = [
    "ProtectSystem=strict", "PrivateDevices=yes", "PrivateMounts=yes", "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes", "ProtectKernelLogs=yes", "ProtectControlGroups=yes", "ProtectHostname=yes",
    "ProtectProc=invisible", "ProcSubset=pid", "ReadWritePaths=-/home/you/.aws",
    "ReadWritePaths=-/home/you/.local/state/credd", "InaccessiblePaths=-/home/you/.ssh",
    "InaccessiblePaths=-/home/you/.gnupg", "PrivateTmp=yes"]


def test_without_the_mount_sandbox_only_the_namespace_settings_go():
    full = settings(render_unit(spec_for()))
    reduced = settings(render_unit(spec_for(mount_sandbox=False)))
    assert [line for line in full if line not in reduced] == MOUNT_SANDBOX


def test_a_writable_path_in_tmp_keeps_the_shared_tmp():
    spec = ServiceSpec(command=("/usr/bin/credd", "serve"), home="/home/you",
                       writable=("/home/you/.aws", "/tmp/credd-1000"))
    assert "PrivateTmp=yes" not in render_unit(spec)
    assert "ReadWritePaths=-/tmp/credd-1000" in render_unit(spec)


def test_spec_from_environment_and_config():
    env = {"HOME": "/home/you", "XDG_RUNTIME_DIR": "/run/user/1000", "PATH": "/usr/bin:.:bin::/usr/bin:/bin",
           "CREDD_SOCKET": "/run/user/1000/credd/credd.sock", "XDG_STATE_HOME": "/home/you/state",
           "AWS_PROFILE": "not-passed", "DBUS_SESSION_BUS_ADDRESS": "not-passed"}
    spec = build_spec(("/x/credd", "serve"), env, "linux", 1000, credentials_dir="/home/you/dotfiles/aws",
                      socket="/run/user/1000/credd/credd.sock")
    assert spec.environment == (("PATH", "/usr/bin:/bin"), ("CREDD_SOCKET", "/run/user/1000/credd/credd.sock"),
                                ("XDG_STATE_HOME", "/home/you/state"))
    assert spec.writable == ("/home/you/dotfiles/aws", "/home/you/state/credd")
    assert spec.runtime_directory  # the default socket: systemd makes $XDG_RUNTIME_DIR/credd
    moved = build_spec(("/x/credd", "serve"), env, "linux", 1000, credentials_dir="/home/you/.aws",
                       socket="/home/you/.credd/credd.sock")
    assert moved.writable == ("/home/you/.aws", "/home/you/state/credd", "/home/you/.credd")
    assert not moved.runtime_directory


def test_daemon_command_makes_the_config_path_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    assert service.daemon_command(["/x/credd"]) == ("/x/credd", "serve")
    assert service.daemon_command(["/x/credd"], "conf/c.yaml") == ("/x/credd", "--config",
                                                                   str(tmp_path / "conf" / "c.yaml"), "serve")


def test_find_credd(tmp_path: Path):
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    python = venv / "python"
    on_path = tmp_path / "path"
    on_path.mkdir()
    (on_path / "credd").write_text("#!/bin/sh\n")
    (on_path / "credd").chmod(0o755)
    assert find_credd({"PATH": str(on_path)}, str(python)) == [str(on_path / "credd")]
    assert find_credd({"PATH": str(tmp_path)}, str(python)) == [str(python), "-m", "credd"]
    (venv / "credd").write_text("#!/bin/sh\n")
    (venv / "credd").chmod(0o755)
    assert find_credd({"PATH": str(on_path)}, str(python)) == [str(venv / "credd")]


# The plist ------------------------------------------------------------------------------------

def test_plist_key_by_key():
    spec = ServiceSpec(command=("/Users/you/.local/bin/credd", "--config", "/Users/you/c.yaml", "serve"),
                       home="/Users/you", environment=(("PATH", "/opt/homebrew/bin:/usr/bin:/bin"),))
    agent = plistlib.loads(render_plist(spec))
    assert agent.pop("Label") == "io.github.credd"
    assert agent.pop("ProgramArguments") == ["/Users/you/.local/bin/credd", "--config", "/Users/you/c.yaml", "serve"]
    assert agent.pop("RunAtLoad") is True
    assert agent.pop("KeepAlive") == {"SuccessfulExit": False}
    assert agent.pop("Umask") == 0o077
    assert agent.pop("StandardOutPath") == "/Users/you/Library/Logs/credd/credd.log"
    assert agent.pop("StandardErrorPath") == "/Users/you/Library/Logs/credd/credd.log"
    assert agent.pop("EnvironmentVariables") == {"PATH": "/opt/homebrew/bin:/usr/bin:/bin"}
    assert agent == {}


# The example copies in the repository ---------------------------------------------------------

def examples() -> dict[Path, bytes]:
    """systemd/ and launchd/ as `credd service install` writes them for a user `you` with a pipx install."""
    linux = build_spec(("/home/you/.local/bin/credd", "serve"),
                       {"HOME": "/home/you", "XDG_RUNTIME_DIR": "/run/user/1000",
                        "PATH": "/home/you/.local/bin:/usr/local/bin:/usr/bin:/bin"},
                       "linux", 1000, credentials_dir="/home/you/.aws", socket="/run/user/1000/credd/credd.sock")
    darwin = build_spec(("/Users/you/.local/bin/credd", "serve"),
                        {"HOME": "/Users/you", "PATH": "/Users/you/.local/bin:/opt/homebrew/bin:/usr/bin:/bin"},
                        "darwin", 501, credentials_dir="/Users/you/.aws",
                        socket="/Users/you/Library/Application Support/credd/credd.sock")
    return {REPO / "systemd" / "credd.service": render_unit(linux).encode(),
            REPO / "launchd" / f"{LABEL}.plist": render_plist(darwin)}


@pytest.mark.parametrize("path", list(examples()), ids=lambda p: p.name)
def test_the_repository_examples_are_what_install_writes(path: Path):
    assert path.read_bytes() == examples()[path], (
        f"{path.relative_to(REPO)} differs from what credd renders; run `python -m tests.test_service`")


# `credd service` through the CLI --------------------------------------------------------------

def heredoc(script: str) -> str:
    """The file content in a dry run's `cat > FILE <<'EOF'`."""
    return re.search(r"<<'EOF'\n(.*?)^EOF$", script, re.DOTALL | re.MULTILINE).group(1)


def test_install_dry_run_linux_changes_nothing(home: Home, tools: Tools):
    result = credd(["install", "--dry-run", "--platform", "linux"], home, tools)
    assert (result.returncode, result.stderr) == (0, "")
    unit = unit_file(home)
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# credd service install --dry-run: nothing was changed")
    assert lines[1:3] == [f"mkdir -p -m 700 {home.root}/.aws", f"mkdir -p -m 700 {home.root}/.local/state/credd"]
    assert lines[3] == f"cat > {unit} <<'EOF'"
    text = heredoc(result.stdout)
    assert f"ExecStart={' '.join(CREDD)} serve\n" in text
    assert f"Environment=PATH={tools.bin}:/usr/bin:/bin\n" in text
    assert f"Environment=XDG_CONFIG_HOME={home.root}/.config\n" in text
    assert lines[-5:-1] == [f"chmod 644 {unit}", "systemctl --user daemon-reload",
                            "systemctl --user enable credd.service", "systemctl --user restart credd.service"]
    assert "226/NAMESPACE" in lines[-1]
    assert not unit.exists() and not (home.root / ".aws").exists()
    assert tools.calls() == []


def test_install_dry_run_darwin_changes_nothing(home: Home, tools: Tools):
    result = credd(["install", "--dry-run", "--platform", "darwin"], home, tools)
    assert (result.returncode, result.stderr) == (0, "")
    plist, uid = plist_file(home), os.getuid()
    lines = result.stdout.splitlines()
    assert lines[1:3] == [f"mkdir -p -m 700 {home.root}/Library/Logs/credd", f"cat > {plist} <<'EOF'"]
    agent = plistlib.loads(heredoc(result.stdout).encode())
    assert agent["ProgramArguments"] == [*CREDD, "serve"]
    assert agent["EnvironmentVariables"]["PATH"] == f"{tools.bin}:/usr/bin:/bin"
    assert lines[-4:] == [f"chmod 644 {plist}", f"launchctl bootout gui/{uid}/{LABEL} || true",
                          f"launchctl enable gui/{uid}/{LABEL}", f"launchctl bootstrap gui/{uid} {plist}"]
    assert not plist.exists() and not (home.root / "Library").exists()
    assert tools.calls() == []


def test_the_config_option_reaches_exec_start_as_an_absolute_path(home: Home, tools: Tools, tmp_path: Path):
    (tmp_path / "elsewhere.yaml").write_text(CONFIG)
    result = subprocess.run([sys.executable, "-m", "credd", "service", "install", "--dry-run", "--platform", "linux",
                             "--config", "elsewhere.yaml"], check=False, cwd=tmp_path, env={**home.env, **tools.env},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"ExecStart={' '.join(CREDD)} --config {tmp_path}/elsewhere.yaml serve\n" in result.stdout


def test_every_command_service_names_carries_the_users_config(home: Home, tools: Tools, tmp_path: Path,
                                                               no_user_manager):
    config = tmp_path / "my config.yaml"
    config.write_text(CONFIG)
    with_config = f"credd --config '{config}'"
    linux = ["--platform", "linux", "--config", str(config)]
    dry = credd(["install", "--dry-run", *linux], home, tools)
    program = " ".join(CREDD)
    assert f'ExecStart={program} --config "{config}" serve\n' in dry.stdout  # the daemon runs on it
    empty = tmp_path / "empty"
    empty.mkdir()
    for platform in ("linux", "darwin"):
        missing = credd(["install", "--platform", platform, "--config", str(config)], home, tools, PATH=str(empty))
        assert f"run `{with_config} serve` from your session's startup instead" in missing.stderr
    no_manager = credd(["install", *linux], home, tools, **no_user_manager)
    assert f"or run `{with_config} serve` from your session's startup instead" in no_manager.stderr
    bad_start = credd(["install", *linux], home, tools, FAKE_MODE="bad-start")
    assert f"fix that, then run `{with_config} service install` again\n" in bad_start.stderr
    installed = credd(["install", *linux], home, tools)
    assert installed.returncode == 0 and f"`{with_config} service status` shows it" in installed.stdout
    assert "`credd service" not in installed.stdout + bad_start.stderr and "`credd serve`" not in no_manager.stderr


def test_install_and_uninstall_linux(home: Home, tools: Tools):
    unit = unit_file(home)
    result = credd(["install", "--platform", "linux"], home, tools)
    assert (result.returncode, result.stderr) == (0, "")
    assert tools.calls() == ["systemctl --user daemon-reload", "systemctl --user enable credd.service",
                             "systemctl --user restart credd.service"]
    text = unit.read_text()
    assert f"ExecStart={' '.join(CREDD)} serve\n" in text and "ProtectSystem=strict\n" in text
    assert stat.S_IMODE(unit.stat().st_mode) == 0o644
    for made in (home.root / ".aws", home.root / ".local" / "state" / "credd"):
        assert stat.S_IMODE(made.stat().st_mode) == 0o700
    assert f"wrote {unit}" in result.stdout and "journalctl --user -u credd.service" in result.stdout

    again = credd(["install", "--platform", "linux"], home, tools)  # updating is installing again
    assert again.returncode == 0 and unit.read_text() == text

    tools.log.unlink()
    dry = credd(["uninstall", "--dry-run", "--platform", "linux"], home, tools)
    # Uninstall goes on whatever the manager says (`|| true`): the file goes even where no manager answers.
    assert dry.stdout.splitlines()[1:] == ["systemctl --user disable --now credd.service || true", f"rm -f {unit}",
                                           "systemctl --user daemon-reload || true"]
    assert unit.exists() and tools.calls() == []
    result = credd(["uninstall", "--platform", "linux"], home, tools)
    assert (result.returncode, result.stderr) == (0, "")
    assert tools.calls() == ["systemctl --user disable --now credd.service", "systemctl --user daemon-reload"]
    assert not unit.exists()
    assert credd(["uninstall", "--platform", "linux"], home, tools).stdout.startswith("not installed")


def test_install_and_uninstall_darwin(home: Home, tools: Tools):
    plist, uid = plist_file(home), os.getuid()
    result = credd(["install", "--platform", "darwin"], home, tools)
    assert (result.returncode, result.stderr) == (0, "")
    assert tools.calls() == [f"launchctl bootout gui/{uid}/{LABEL}", f"launchctl enable gui/{uid}/{LABEL}",
                             f"launchctl bootstrap gui/{uid} {plist}"]
    assert plistlib.loads(plist.read_bytes())["ProgramArguments"] == [*CREDD, "serve"]
    assert (home.root / "Library" / "Logs" / "credd").is_dir()

    tools.log.unlink()
    result = credd(["uninstall", "--platform", "darwin"], home, tools)
    assert (result.returncode, result.stderr) == (0, "")
    assert tools.calls() == [f"launchctl bootout gui/{uid}/{LABEL}"]
    assert not plist.exists()


def test_status(home: Home, tools: Tools):
    result = credd(["status", "--platform", "linux"], home, tools)
    assert result.returncode == 0  # the manager says it runs
    assert result.stdout.splitlines() == [f"file: {unit_file(home)} (not installed)", "enabled: enabled",
                                          "active: active", "service: running",
                                          "logs: journalctl --user -u credd.service"]
    assert tools.calls() == ["systemctl --user is-enabled credd.service", "systemctl --user is-active credd.service"]
    result = credd(["status", "--platform", "darwin"], home, tools)
    assert result.stdout.splitlines()[1] == "launchd: state = running, pid = 4242, last exit code = (never exited)"


def test_a_refused_mount_sandbox_is_installed_without_it(home: Home, tools: Tools):
    result = credd(["install", "--platform", "linux"], home, tools, FAKE_MODE="no-namespaces")
    assert result.returncode == 0, result.stderr
    assert "systemd refused this service the user namespace" in result.stderr
    assert tools.calls() == ["systemctl --user daemon-reload", "systemctl --user enable credd.service",
                             "systemctl --user restart credd.service",
                             "systemctl --user show --property=ExecMainStatus --value credd.service",
                             "systemctl --user daemon-reload", "systemctl --user enable credd.service",
                             "systemctl --user restart credd.service"]
    text = unit_file(home).read_text()
    assert "ProtectSystem=" not in text and "MemoryDenyWriteExecute=yes\n" in text


def test_a_service_that_does_not_start_says_where_to_look(home: Home, tools: Tools):
    result = credd(["install", "--platform", "linux"], home, tools, FAKE_MODE="bad-start")
    assert result.returncode == 1
    unit = unit_file(home)
    assert result.stderr == ("credd: error: `systemctl --user restart credd.service` failed (exit status 1: "
                             "Job for credd.service failed.); credd.service did not start: "
                             "`journalctl --user -u credd.service` says why; fix that, then "
                             "run `credd service install` again\n"
                             "install rolled back: ran systemctl --user stop credd.service; "
                             f"ran systemctl --user disable credd.service; removed {unit}\n")
    # All or nothing: what install enabled is disabled, what it wrote and made is gone.
    assert tools.calls()[-4:] == ["systemctl --user show --property=ExecMainStatus --value credd.service",
                                  "systemctl --user stop credd.service", "systemctl --user disable credd.service",
                                  "systemctl --user daemon-reload"]
    assert not unit.exists() and not (home.root / ".config" / "systemd").exists()
    assert not (home.root / ".aws").exists() and not (home.root / ".local" / "state" / "credd").exists()


def test_a_failed_update_puts_the_previous_unit_back(home: Home, tools: Tools):
    unit = unit_file(home)
    unit.parent.mkdir(parents=True)
    unit.write_text("[Service]\nExecStart=/old/credd serve\n")
    result = credd(["install", "--platform", "linux"], home, tools, FAKE_MODE="bad-start")
    assert result.returncode == 1
    assert f"put the previous {unit} back" in result.stderr
    assert "`systemctl --user restart credd.service` starts it again" in result.stderr
    assert unit.read_text() == "[Service]\nExecStart=/old/credd serve\n"
    # An update does not disable what the user had enabled before.
    assert "systemctl --user disable credd.service" not in tools.calls()


def test_no_user_manager_is_a_clear_error(home: Home, tools: Tools):
    result = credd(["install", "--platform", "linux"], home, tools, FAKE_MODE="broken")
    assert result.returncode == 1
    assert result.stderr.startswith("credd: error: `systemctl --user daemon-reload` failed (exit status 1: "
                                    "Failed to connect to bus: No medium found); is your systemd user manager running?")
    assert "Traceback" not in result.stderr


# No systemd user manager: what this machine (and CI's) has, and what a user meets under su or sudo.

@pytest.fixture
def no_user_manager(home: Home, tools: Tools) -> dict[str, str]:
    """The environment of a user with no systemd user manager to talk to.

    The real `systemctl` where there is one: the test's XDG_RUNTIME_DIR is a fresh directory where no manager
    listens, so every call that needs the manager fails as it does for a user without one ("Failed to connect
    to bus"), while `enable` and `disable`, which only change files, still work. Where there is no systemctl,
    the stand-in in FAKE_MODE=broken fails every call the same way (it cannot enable either).
    """
    real = shutil.which("systemctl", path=os.environ.get("PATH"))
    if real:
        return {"PATH": f"{os.path.dirname(real)}:/usr/bin:/bin"}
    return {"FAKE_MODE": "broken"}


def enable_link(home: Home) -> Path:
    return home.root / ".config" / "systemd" / "user" / "default.target.wants" / "credd.service"


def test_install_without_a_user_manager_leaves_nothing_behind(home: Home, tools: Tools, no_user_manager):
    result = credd(["install", "--platform", "linux"], home, tools, **no_user_manager)
    assert result.returncode == 1
    assert result.stderr.startswith("credd: error: `systemctl --user daemon-reload` failed (exit status 1: "
                                    "Failed to connect to bus")
    assert "`loginctl enable-linger $USER`" in result.stderr and "`credd serve`" in result.stderr
    assert f"install rolled back: removed {unit_file(home)}\n" in result.stderr
    assert not unit_file(home).exists() and not os.path.lexists(enable_link(home))
    assert not (home.root / ".config" / "systemd").exists()
    assert not (home.root / ".aws").exists() and not (home.root / ".local" / "state" / "credd").exists()
    assert "Traceback" not in result.stderr


def test_uninstall_without_a_user_manager_removes_what_credd_wrote(home: Home, tools: Tools, no_user_manager):
    assert credd(["install", "--platform", "linux"], home, tools).returncode == 0  # with a (stand-in) manager
    unit = unit_file(home)
    if "PATH" in no_user_manager:  # the real systemctl enables without a manager: the link uninstall must undo
        subprocess.run(["systemctl", "--user", "enable", "credd.service"], env={**home.env, **no_user_manager},
                       check=True, capture_output=True, timeout=30)
        assert os.path.islink(enable_link(home))
    result = credd(["uninstall", "--platform", "linux"], home, tools, **no_user_manager)
    assert result.returncode == 0, result.stderr
    assert not unit.exists() and not os.path.lexists(enable_link(home))
    # What the manager said is reported, and what it means.
    assert ("credd: warning: `systemctl --user disable --now credd.service` failed (exit status 1: "
            "Failed to connect to bus") in result.stderr
    assert f"removed {unit}" in result.stdout
    assert "if a credd service still runs, stop it with `systemctl --user stop credd.service`" in result.stdout
    assert "no longer runs as a service" not in result.stdout


def test_status_exit_code_says_whether_it_runs(home: Home, tools: Tools, no_user_manager):
    running = credd(["status", "--platform", "linux", "--json"], home, tools)
    assert running.returncode == 0
    assert json.loads(running.stdout) == {
        "file": str(unit_file(home)), "installed": False, "running": True, "state": "running",
        "manager": {"enabled": "enabled", "active": "active"}, "logs": "journalctl --user -u credd.service"}

    absent = credd(["status", "--platform", "linux"], home, tools, **no_user_manager)
    assert absent.returncode == 3 and "service: not running" in absent.stdout

    unit_file(home).parent.mkdir(parents=True)
    unit_file(home).write_text("[Service]\nExecStart=/bin/true\n")
    unknown = credd(["status", "--platform", "linux", "--json"], home, tools, **no_user_manager)
    assert unknown.returncode == 1, unknown.stdout
    answer = json.loads(unknown.stdout)
    assert (answer["installed"], answer["running"], answer["state"]) == (True, None, "unknown")
    assert answer["manager"]["active"].startswith("Failed to connect to bus")
    text = credd(["status", "--platform", "linux"], home, tools, **no_user_manager)
    assert text.returncode == 1
    assert "service: unknown: the service manager did not say whether it runs" in text.stdout


def test_status_of_a_stopped_service_exits_3(home: Home, tools: Tools, tmp_path: Path):
    stopped = tools.bin / "systemctl"
    stopped.write_text('#!/bin/sh\ncase "$*" in *is-active*) echo inactive; exit 3 ;; esac\necho enabled\n')
    result = credd(["status", "--platform", "linux"], home, tools)
    assert result.returncode == 3 and "service: not running" in result.stdout


@pytest.mark.parametrize("platform, tool", [("linux", "systemd"), ("darwin", "launchd")])
def test_a_missing_service_manager_is_a_clear_error(home: Home, tools: Tools, tmp_path: Path, platform, tool):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = credd(["install", "--platform", platform], home, tools, PATH=str(empty))
    assert result.returncode == 1
    assert result.stderr.startswith(f"credd: error: {tool} is not available here")
    assert "run `credd serve` from your session's startup instead" in result.stderr
    status = credd(["status", "--platform", platform], home, tools, PATH=str(empty))
    assert f"unknown ({tool} is not available here" in status.stdout
    assert status.returncode == 3 and "service: not running" in status.stdout  # nothing installed: it cannot run


def test_install_needs_a_valid_config(home: Home, tools: Tools):
    home.config.unlink()
    result = credd(["install", "--dry-run", "--platform", "linux"], home, tools)
    assert result.returncode == 2 and "run `credd init`" in result.stderr


def test_an_unsupported_platform_is_a_usage_error(home: Home):
    stdout, stderr = io.StringIO(), io.StringIO()
    ctx = Context(env=home.env, stdout=stdout, stderr=stderr, platform="freebsd13")
    assert cli.main(["service", "status"], ctx) == 2
    assert stderr.getvalue().startswith("credd: error: credd service knows systemd (linux) and launchd (darwin), "
                                        "not freebsd13")


if __name__ == "__main__":
    for example, content in examples().items():
        example.parent.mkdir(exist_ok=True)
        example.write_bytes(content)
        print(f"wrote {example.relative_to(REPO)}")
