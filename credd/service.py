"""The systemd user unit and the launchd agent that run `credd serve`, and the steps that install them.

Pure: a `ServiceSpec` (how to start the daemon, what it may write) goes in;
the unit or plist text and a plan (directories, file writes, commands) come
out. `commands/service.py` executes a plan, or prints it for `--dry-run`, so
what a dry run shows is exactly what an install does.

The templates live here, not in the repository's `systemd/` and `launchd/`
folders: an installed package (a wheel, pipx) has nothing outside `credd/`.
Those folders hold copies rendered for an example user, for people to read;
a test fails when they drift from what this module renders.

No socket activation (`credd.socket`): the daemon has to run anyway, to
refresh credentials on a schedule before they expire; it binds its socket
itself, under a lock that keeps a second daemon off it and with the
directory and peer checks the spec asks for; the socket path comes from the
config, which systemd would then have to repeat; and launchd would need its
own activation API. Starting on the first request would only delay that
request behind the daemon's start-up.
"""

from __future__ import annotations

import os.path
import plistlib
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from credd import paths
from credd.commandline import credd_command
from credd.errors import CreddError, UsageError, one_line

UNIT = "credd.service"
LABEL = "io.github.credd"  # the launchd label, and the plist's file name

# What the daemon reads from its environment to find its config, socket, credentials file and
# keyring, plus PATH for `mfa_command`. systemd's user manager and launchd do not start the
# daemon from the user's shell, so the user's values are copied into the unit or plist: the
# daemon then finds the same files as `credd` run from that shell.
PASSED_ENV = ("PATH", "CREDD_CONFIG", "CREDD_SOCKET", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
              "XDG_CONFIG_HOME", "XDG_STATE_HOME", "PYTHON_KEYRING_BACKEND")

# ExecMainStatus when systemd could not set up the service's user or mount namespace (217/USER,
# 226/NAMESPACE): some systems refuse user services the namespaces that ProtectSystem=,
# ReadWritePaths= and PrivateTmp= need (Ubuntu 23.10+ restricts unprivileged user namespaces).
NAMESPACE_REFUSED = frozenset({"217", "226"})

SHARED_TMP = ("/tmp", "/var/tmp")
TIMEOUT = 120.0  # seconds for one systemctl/launchctl call: a Type=notify start waits for READY=1


@dataclass(frozen=True)
class ServiceSpec:
    """What the unit or plist says, decided at install time from the user's environment and config."""

    command: tuple[str, ...]  # the daemon's argv, ending in `serve`
    home: str
    environment: tuple[tuple[str, str], ...] = ()
    writable: tuple[str, ...] = ()  # directories the daemon writes: open in systemd's read-only sandbox
    runtime_directory: bool = True  # the socket is the default $XDG_RUNTIME_DIR/credd/...: systemd makes that dir
    mount_sandbox: bool = True  # ProtectSystem=, ReadWritePaths=, PrivateTmp= (they need user namespaces)


def find_credd(env: Mapping[str, str], executable: str = sys.executable) -> list[str]:
    """The installed `credd` to put in the unit (and in `credential_process` lines): absolute, and the one that is
    running now where possible.

    A venv or pipx install has its console script beside its Python; else the
    one on PATH; else this Python runs the module.
    """
    if executable:
        beside = os.path.join(os.path.dirname(os.path.abspath(executable)), "credd")
        if os.path.isfile(beside) and os.access(beside, os.X_OK):
            return [beside]
    found = shutil.which("credd", path=env.get("PATH", os.defpath))
    if found:
        return [os.path.abspath(found)]
    if not executable:
        raise CreddError("cannot tell where credd is installed (no `credd` on PATH, and Python does not say "
                         "where it runs from); put the credd command on PATH, then try again")
    return [os.path.abspath(executable), "-m", "credd"]


def hook_command(env: Mapping[str, str], executable: str = sys.executable) -> list[str]:
    """The words that run credd in a `credential_process` line (`process PROFILE` follows): the fastest correct form.

    `PYTHON -I -S SCRIPT` when this Python is a venv's (pipx's too) with credd's plain script beside it and
    credd in that venv's own site-packages, where the script finds it without `site` (`scripts/credd`): every
    AWS CLI call then starts Python without `site`, `.pth` files and sitecustomize (BENCHMARKS.md, section 1).
    The flags cannot ride in the script's shebang: pip rewrites `#!python` to `#!/abs/python` and drops what
    follows. Those paths stay the same across `pipx upgrade` and `pip install -U`. Anything else (a system or
    `--user` install, where `-I` would hide the package; pip's console-script wrapper): `find_credd`'s.
    """
    found = find_credd(env, executable)
    if not executable:
        return found
    python = os.path.abspath(executable)
    script = os.path.join(os.path.dirname(python), "credd")
    if found == [script] and _is_plain_script(script) and _in_venv_site_packages(python):
        return [python, "-I", "-S", script]
    return found


def _is_plain_script(path: str) -> bool:
    """credd's own script (`scripts/credd`), which finds the package under `-I -S`; not pip's wrapper."""
    try:
        with open(path, "rb") as script:
            return b"from credd.quickhook import main" in script.read(8192)
    except OSError:
        return False


def _in_venv_site_packages(python: str) -> bool:
    """Whether the running credd is the package in `VENV/lib/pythonX.Y/site-packages`, `python` being
    `VENV/bin/python`: the one directory `scripts/credd` adds to `sys.path` when run with `-S`."""
    import credd

    venv = os.path.dirname(os.path.dirname(python))
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    expected = os.path.join(venv, "lib", version, "site-packages", "credd")
    try:
        return os.path.samefile(expected, os.path.dirname(os.path.abspath(credd.__file__)))
    except OSError:
        return False


def daemon_command(credd: Sequence[str], config: str | None = None) -> tuple[str, ...]:
    """`credd [--config ABSOLUTE] serve`: the config path is made absolute, as the daemon runs from /."""
    options = ("--config", os.path.abspath(config)) if config else ()
    return (*credd, *options, "serve")


def build_spec(command: Sequence[str], env: Mapping[str, str], platform: str, uid: int, *,
               credentials_dir: str, socket: str) -> ServiceSpec:
    """The spec for the daemon that `credd` in this environment would talk to.

    `credentials_dir` is the directory the credentials file is really written
    in (a symlinked file's target's); `socket` is the config's socket path.
    A socket other than the default is written where it is, so its directory
    joins the writable ones.
    """
    default_socket = socket == paths.default_socket(env, platform, uid)
    writable = [credentials_dir, paths.state_dir(env)]
    if not default_socket:
        writable.append(os.path.dirname(socket))
    return ServiceSpec(
        command=tuple(command),
        home=paths.home_of(env),
        environment=passed_environment(env),
        writable=tuple(dict.fromkeys(os.path.normpath(p) for p in writable)),
        runtime_directory=default_socket,
    )


def passed_environment(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The PASSED_ENV variables that are set; PATH without repeats, empty or relative entries (the daemon runs in /)."""
    passed = []
    for name in PASSED_ENV:
        value = env.get(name)
        if name == "PATH" and value:
            value = os.pathsep.join(dict.fromkeys(p for p in value.split(os.pathsep) if os.path.isabs(p)))
        if value:
            passed.append((name, value))
    return tuple(passed)


# The systemd user unit ------------------------------------------------------------------------

UNIT_HEAD = """\
# The credd daemon as a systemd user service, written by `credd service install`.
# Change it with a drop-in (`systemctl --user edit credd.service`): that survives
# the next install. `credd service uninstall` removes it.

[Unit]
Description=credd: AWS credentials with MFA, kept fresh

[Service]
# The daemon sends READY=1 once its socket serves, so starting it returns only then.
Type=notify
"""

UNIT_SERVICE = """\
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5s
# Exit status 2 is a configuration error: restarting does not fix that. Fix the config,
# then `systemctl --user restart credd.service`.
RestartPreventExitStatus=2
SyslogIdentifier=credd
UMask=0077
"""

UNIT_RUNTIME_DIRECTORY = """\
# The socket's directory, $XDG_RUNTIME_DIR/credd, private to you.
RuntimeDirectory=credd
RuntimeDirectoryMode=0700
"""

UNIT_SANDBOX = """\

# Sandbox. It leaves alone what credd needs: the keyring over the D-Bus session bus (an
# AF_UNIX socket in $XDG_RUNTIME_DIR), STS over the network, the config under ~/.config.
# `mfa_command` runs inside it too: a command that needs more (a JIT such as node or java
# needs MemoryDenyWriteExecute=no; one that writes files needs ReadWritePaths=; one that
# talks to a USB key without pcscd needs PrivateDevices=no; one that runs gpg, such as
# `pass otp`, needs InaccessiblePaths= emptied) gets it in a drop-in.
NoNewPrivileges=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
# credd's own RLIMIT_CORE goes through prlimit64, which @resources leaves alone.
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
CapabilityBoundingSet=
KeyringMode=private
ProtectClock=yes
LimitCORE=0
# A user manager applies neither of these two (RemoveIPC= needs User=, a device policy the
# cgroup device controller, which a user manager is not given); they hold when a system
# manager runs this unit, and `systemd-analyze security` counts them.
RemoveIPC=yes
DevicePolicy=closed
"""

UNIT_MOUNTS = """\

# A read-only file system but for what credd writes; no devices, kernel knobs, other
# processes, SSH keys or GnuPG keyring in sight. A user service gets these through a user
# namespace; where the system refuses one, `credd service install` leaves them out.
ProtectSystem=strict
PrivateDevices=yes
PrivateMounts=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
"""

UNIT_TAIL = """\

[Install]
WantedBy=default.target
"""

_PLAIN_WORD = re.compile(r"[\w@%+=:,./-]+")


def render_unit(spec: ServiceSpec) -> str:
    """The text of `credd.service` for `spec`."""
    program, *args = spec.command
    text = UNIT_HEAD + f"ExecStart={' '.join([_word(program), *map(_exec_argument, args)])}\n" + UNIT_SERVICE
    text += _block([f"Environment={_word(f'{name}={value}')}" for name, value in spec.environment])
    if spec.runtime_directory:
        text += UNIT_RUNTIME_DIRECTORY
    text += UNIT_SANDBOX
    if spec.mount_sandbox:
        # "-": a directory removed later makes a write fail, not the whole service refuse to start.
        mounts = [f"ReadWritePaths={_word('-' + path)}" for path in spec.writable]
        # "-": a home without ~/.ssh or ~/.gnupg is fine.
        mounts += [f"InaccessiblePaths={_word('-' + os.path.join(spec.home, name))}" for name in (".ssh", ".gnupg")]
        if not any(_is_under(path, SHARED_TMP) for path in spec.writable):
            mounts.append("PrivateTmp=yes")
        text += UNIT_MOUNTS + _block(mounts)
    return text + UNIT_TAIL


def _block(lines: list[str]) -> str:
    return "".join(line + "\n" for line in lines)


def _word(text: str) -> str:
    """One word of a unit-file setting: specifiers (%) escaped; C-quoted unless it is plain."""
    if any(ord(c) < 32 or c == "\x7f" for c in text):
        raise CreddError(f"{text!r} holds a control character, which a unit file cannot hold; "
                         "use paths and values without them")
    text = text.replace("%", "%%")
    if _PLAIN_WORD.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exec_argument(text: str) -> str:
    """An argument in ExecStart=: systemd expands $VARIABLES there (not in the program's path), so `$` is doubled."""
    return _word(text.replace("$", "$$"))


def _is_under(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root + "/") for root in roots)


# The launchd agent ----------------------------------------------------------------------------

def log_dir(home: str) -> str:
    return os.path.join(home, "Library", "Logs", "credd")


def render_plist(spec: ServiceSpec) -> bytes:
    """The LaunchAgent for `spec`: started at login, started again when it fails, logging to ~/Library/Logs."""
    log_file = os.path.join(log_dir(spec.home), "credd.log")
    agent: dict[str, object] = {
        "Label": LABEL,
        "ProgramArguments": list(spec.command),
        "RunAtLoad": True,
        "KeepAlive": {"SuccessfulExit": False},
        "Umask": 0o077,
        "StandardOutPath": log_file,
        "StandardErrorPath": log_file,
    }
    if spec.environment:
        agent["EnvironmentVariables"] = dict(spec.environment)
    return plistlib.dumps(agent, sort_keys=False)


# Plans ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MakeDir:
    """A private directory the service needs before it starts (0700; an existing one is left alone)."""

    path: str

    def shell(self) -> str:
        return f"mkdir -p -m 700 {shlex.quote(self.path)}"


@dataclass(frozen=True)
class WriteFile:
    path: str
    data: bytes
    mode: int = 0o644

    def shell(self) -> str:
        target = shlex.quote(self.path)
        return f"cat > {target} <<'EOF'\n{self.data.decode()}EOF\nchmod {self.mode:o} {target}"


@dataclass(frozen=True)
class RemoveFile:
    path: str

    def shell(self) -> str:
        return f"rm -f {shlex.quote(self.path)}"


@dataclass(frozen=True)
class Run:
    """A systemctl/launchctl call, what to tell the user if it fails, and the call that takes it back."""

    argv: tuple[str, ...]
    advice: str = ""
    # "stop": a failure stops the plan (an install is then rolled back); "report": the plan goes on
    # and says what the manager said; "ignore": it fails when there is nothing to undo, which is fine.
    on_failure: str = "stop"
    starts_service: bool = False
    undo: tuple[str, ...] = ()  # what a rolled-back install runs to take this call back

    def shell(self) -> str:
        return shlex.join(self.argv) + ("" if self.on_failure == "stop" else " || true")


Step = MakeDir | WriteFile | RemoveFile | Run


@dataclass(frozen=True)
class Query:
    """A status question for the service manager, how to say its answer in a few words, and, for the one
    question that tells, whether the answer means the service runs (True), does not (False) or is unclear (None)."""

    label: str
    argv: tuple[str, ...]
    summarize: Callable[[int, str, str], str]
    running: Callable[[int, str, str], bool | None] | None = None


# `credd service status` exits as `systemctl is-active` and LSB init scripts' `status` do.
STATUS_RUNNING, STATUS_UNKNOWN, STATUS_NOT_RUNNING = 0, 1, 3


def status_exit_code(installed: bool, running: bool | None) -> int:
    """0 when the service runs; 3 when it does not (or is not installed); 1 when the manager could not say."""
    if running:
        return STATUS_RUNNING
    if running is False or not installed:
        return STATUS_NOT_RUNNING
    return STATUS_UNKNOWN


def dry_run_script(action: str, steps: Sequence[Step], note: str = "") -> str:
    """The steps as a shell script: what `--dry-run` prints, and what one could run by hand."""
    head = f"# credd service {action} --dry-run: nothing was changed. These are the steps:\n"
    body = "".join(step.shell() + "\n" for step in steps)
    return head + body + (f"# {note}\n" if note else "")


def first_line(code: int, stdout: str, stderr: str) -> str:
    """A systemctl answer (`active`, `enabled`), else the first line of its complaint."""
    text = stdout.strip() or stderr.strip()
    return text.splitlines()[0] if text else f"no answer (exit status {code})"


# `systemctl is-active` exits 0 for active (and reloading), 3 for every state that is not running; any other
# answer (exit 1 with "Failed to connect to bus", say) means the manager could not be asked.
SYSTEMD_NOT_RUNNING = frozenset({"inactive", "failed", "activating", "deactivating", "maintenance"})


def systemd_running(code: int, stdout: str, stderr: str) -> bool | None:
    state = stdout.strip()
    if code == 0 and state in ("active", "reloading"):
        return True
    if code == 3 and state in SYSTEMD_NOT_RUNNING:
        return False
    return None


LAUNCHCTL_NO_SUCH_SERVICE = 113  # `launchctl print` of a label that is not loaded: "Could not find service"


def launchd_running(code: int, stdout: str, stderr: str) -> bool | None:
    if code == LAUNCHCTL_NO_SUCH_SERVICE:
        return False
    if code != 0:
        return None
    return any(line.strip() == "state = running" for line in stdout.splitlines())


def launchctl_summary(code: int, stdout: str, stderr: str) -> str:
    """The state, pid and last exit code out of `launchctl print`'s long report."""
    if code != 0:
        return "not loaded"
    wanted = ("state = ", "pid = ", "last exit code = ")
    found = [line.strip() for line in stdout.splitlines() if line.strip().startswith(wanted)]
    return ", ".join(dict.fromkeys(found)) or "loaded"


class Systemd:
    """A user unit under `$XDG_CONFIG_HOME/systemd/user`, run by `systemctl --user`."""

    tool = "systemctl"
    fallback_note = ("if systemd refuses the service the namespaces ProtectSystem=, ReadWritePaths= and "
                     "PrivateTmp= need (exit status 226/NAMESPACE), install writes the unit again without them "
                     "and restarts it")

    def __init__(self, env: Mapping[str, str], hint_config: str | None = None) -> None:
        """`hint_config`: the user's --config, for the credd commands its advice names."""
        self.hint_config = hint_config
        self.missing = ("systemd is not available here (no `systemctl` on PATH); "
                        f"{_serve_instead(hint_config)}")
        self.manager_advice = ("is your systemd user manager running? It runs while you are logged in: run this again "
                               "in a login session of your own user (su and sudo leave none to talk to), or keep one "
                               "running without a login with `loginctl enable-linger $USER`; or "
                               f"{_serve_instead(hint_config)}")
        config_home = paths._xdg(env, "XDG_CONFIG_HOME", ".config")
        self.path = os.path.join(config_home, "systemd", "user", UNIT)
        self.logs = f"journalctl --user -u {UNIT}"
        self.start_command = f"systemctl --user restart {UNIT}"
        self.stop_command = f"systemctl --user stop {UNIT}"

    def render(self, spec: ServiceSpec) -> bytes:
        text = render_unit(spec)
        try:
            return text.encode()
        except UnicodeEncodeError as e:  # a path of bytes that are not UTF-8 (`--config $'\xff.yaml'`)
            line = text[:e.start].count("\n")
            key = text.split("\n")[line].split("=", 1)[0]
            shown = one_line(repr(e.object[e.start:e.end]))
            raise UsageError(f"the unit's {key}= would name a path that is not UTF-8 text ({shown}), "
                             "which a systemd unit cannot hold; move that file to a path of UTF-8 characters") from None

    def install_plan(self, spec: ServiceSpec) -> list[Step]:
        dirs: list[Step] = [MakeDir(path) for path in spec.writable] if spec.mount_sandbox else []
        return [
            *dirs,
            WriteFile(self.path, self.render(spec)),
            self._systemctl("daemon-reload"),
            Run(("systemctl", "--user", "enable", UNIT), advice=self.manager_advice,
                undo=("systemctl", "--user", "disable", UNIT)),
            Run(("systemctl", "--user", "restart", UNIT), starts_service=True,
                advice=f"{UNIT} did not start: `{self.logs}` says why; fix that, then "
                       f"run `{credd_command(self.hint_config, 'service', 'install')}` again",
                undo=("systemctl", "--user", "stop", UNIT)),
        ]

    def after_rollback(self) -> list[Run]:
        """Once the unit file is back as it was: tell the manager (it fails where there is none, which is fine)."""
        return [Run(("systemctl", "--user", "daemon-reload"), on_failure="ignore")]

    def uninstall_plan(self) -> list[Step]:
        # The unit file goes whatever the manager says: `disable` removes the enable link even when the
        # manager cannot be reached to stop the service (then none runs it).
        return [Run(("systemctl", "--user", "disable", "--now", UNIT), on_failure="report"), RemoveFile(self.path),
                Run(("systemctl", "--user", "daemon-reload"), on_failure="report")]

    def status_queries(self) -> list[Query]:
        return [Query("enabled", ("systemctl", "--user", "is-enabled", UNIT), first_line),
                Query("active", ("systemctl", "--user", "is-active", UNIT), first_line, systemd_running)]

    def exit_status_query(self) -> tuple[str, ...]:
        """How the last start ended: a number, e.g. 226 when the namespaces were refused."""
        return ("systemctl", "--user", "show", "--property=ExecMainStatus", "--value", UNIT)

    def _systemctl(self, *args: str) -> Run:
        return Run(("systemctl", "--user", *args), advice=self.manager_advice)


class Launchd:
    """A LaunchAgent in ~/Library/LaunchAgents, loaded into the user's GUI domain."""

    tool = "launchctl"
    fallback_note = ""

    def __init__(self, env: Mapping[str, str], uid: int, hint_config: str | None = None) -> None:
        """`hint_config`: the user's --config, for the credd commands its advice names."""
        self.hint_config = hint_config
        self.missing = ("launchd is not available here (no `launchctl` on PATH: it is macOS's); "
                        f"{_serve_instead(hint_config)}")
        home = paths.home_of(env)
        self.path = os.path.join(home, "Library", "LaunchAgents", f"{LABEL}.plist")
        self.logs = os.path.join(log_dir(home), "credd.log")
        self.domain = f"gui/{uid}"
        self.target = f"{self.domain}/{LABEL}"
        self.start_command = f"launchctl bootstrap {self.domain} {shlex.quote(self.path)}"
        self.stop_command = f"launchctl bootout {self.target}"

    def render(self, spec: ServiceSpec) -> bytes:
        return render_plist(spec)

    def install_plan(self, spec: ServiceSpec) -> list[Step]:
        advice = (f"see {self.logs} and `launchctl print {self.target}`; fix the cause, "
                  f"then run `{credd_command(self.hint_config, 'service', 'install')}` again")
        return [
            MakeDir(log_dir(spec.home)),  # launchd does not create the log file's directory
            WriteFile(self.path, self.render(spec)),
            Run(("launchctl", "bootout", self.target), on_failure="ignore"),  # an older copy, if one is loaded
            Run(("launchctl", "enable", self.target), advice=advice),  # undo a `launchctl disable`
            Run(("launchctl", "bootstrap", self.domain, self.path), advice=advice, starts_service=True,
                undo=("launchctl", "bootout", self.target)),
        ]

    def after_rollback(self) -> list[Run]:
        return []

    def uninstall_plan(self) -> list[Step]:
        return [Run(("launchctl", "bootout", self.target), on_failure="ignore"), RemoveFile(self.path)]

    def status_queries(self) -> list[Query]:
        return [Query("launchd", ("launchctl", "print", self.target), launchctl_summary, launchd_running)]


Manager = Systemd | Launchd


def manager_for(platform: str, env: Mapping[str, str], uid: int, hint_config: str | None = None) -> Manager:
    """The service manager of `platform`; `hint_config`: the user's --config, for the commands its advice names."""
    if platform == "linux":
        return Systemd(env, hint_config)
    if platform == "darwin":
        return Launchd(env, uid, hint_config)
    raise UsageError(f"credd service knows systemd (linux) and launchd (darwin), not {platform}; "
                     f"{_serve_instead(hint_config)}")


def _serve_instead(hint_config: str | None) -> str:
    """The way without a service manager, with the user's --config."""
    return f"run `{credd_command(hint_config, 'serve')}` from your session's startup instead"
