"""The socket, the daemon behind it, and the service manager that starts the daemon at login."""

from __future__ import annotations

import os.path
import shlex
import stat
from collections.abc import Mapping

from credd.commandline import credd_command
from credd.doctor.facts import ServiceFacts, SocketFacts
from credd.doctor.findings import Finding, fail, ok, warn
from credd.model import Config

RUNNING_STATES = ("active", "activating", "reloading")  # systemctl is-active; launchd says "state = running"


def check_socket(socket: SocketFacts, hint: str | None = None) -> list[Finding]:
    found = []
    if socket.dir_problem:
        found.append(fail("socket", socket.dir_problem))
    if socket.stat is not None and not stat.S_ISSOCK(socket.stat.mode):
        found.append(fail("socket", f"{socket.path} is not a socket",
                          f"move it out of the way; `{credd_command(hint, 'serve')}` makes the socket there"))
    elif socket.stat is not None and stat.S_IMODE(socket.stat.mode) & 0o077:
        found.append(fail("socket", f"{socket.path} is open to other users (mode {stat.S_IMODE(socket.stat.mode):o})",
                          f"chmod 600 {shlex.quote(socket.path)}"))
    reply = socket.reply
    if reply is not None and reply.get("ok"):
        found.append(ok("daemon", f"credd {reply.get('version')} (pid {reply.get('pid')}) answers at {socket.path}"))
    elif reply is not None:
        found.append(fail("daemon", f"the daemon at {socket.path} refused: {reply.get('message')}",
                          "make sure $CREDD_SOCKET and `socket:` name your own daemon's socket"))
    elif socket.error:
        found.append(fail("daemon", f"the daemon at {socket.path} does not answer: {socket.error}",
                          f"restart it (`{credd_command(hint, 'service', 'install')}` restarts the service; or stop "
                          f"`{credd_command(hint, 'serve')}` and start it again); its log says what it was stuck on"))
    else:
        found.append(warn("daemon", f"the daemon is not running (nothing listens at {socket.path}): `credd process` "
                                    "fails, and nothing refreshes the credentials file",
                          f"`{credd_command(hint, 'service', 'install')}` (starts it now and at login), or "
                          f"`{credd_command(hint, 'serve')}` in a terminal"))
    return found


def check_daemon(config: Config, reply: Mapping | None) -> list[Finding]:
    """The running daemon should serve this config, all of it, without errors."""
    if reply is None or not reply.get("ok"):
        return []
    pid, found = reply.get("pid"), []
    if os.path.normpath(str(reply.get("config"))) != os.path.normpath(str(config.path)):
        found.append(warn("daemon", f"the daemon (pid {pid}) runs with {reply.get('config')}, not {config.path}",
                          f"check that one too (`credd --config {shlex.quote(str(reply.get('config')))} doctor`), or "
                          "restart the daemon with this config"))
    served = {row.get("profile") for row in reply.get("profiles", [])}
    missing, extra = sorted(set(config.profiles) - served), sorted(served - set(config.profiles))
    if missing or extra:
        what = "; ".join(part for part in (missing and f"it does not serve {', '.join(missing)}",
                                           extra and f"it still serves {', '.join(extra)}") if part)
        found.append(warn("daemon", f"the daemon (pid {pid}) runs an older version of {config.path}: {what}",
                          f"reload it: `systemctl --user reload credd.service`, or `kill -HUP {pid}`"))
    for row in reply.get("profiles", []):
        if row.get("last_error"):
            found.append(warn(f"profile {row.get('profile')}",
                              f"the daemon's last refresh failed: {row['last_error']}"))
    return found


def check_service(service: ServiceFacts, daemon_pid: object, hint: str | None = None) -> list[Finding]:
    name = service.name
    if service.path is None:
        return [ok("service", f"credd has no service manager for this platform; run `{credd_command(hint, 'serve')}` "
                              "from your session's startup")]
    if not service.installed:
        why = (f"the daemon (pid {daemon_pid}) was started by hand and will not start again at login" if daemon_pid
               else "nothing starts the daemon at login")
        return [warn("service", f"{name} is not installed: {why}", credd_command(hint, "service", "install"))]
    if service.state is None:
        return [warn("service", f"{name} is installed ({service.path}), but its state is unknown: {service.detail}",
                     f"run `{credd_command(hint, 'service', 'status')}` in a login session of your own (su and sudo "
                     "leave no user service manager to ask)")]
    if service.state in RUNNING_STATES or service.state.startswith("state = running"):
        return [ok("service", f"{name} is installed and running ({service.state})")]
    return [fail("service", f"{name} is installed but not running ({service.state})",
                 f"`{credd_command(hint, 'service', 'install')}` starts it again; `{service.logs}` says why it "
                 "stopped")]
