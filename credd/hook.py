"""`credd process PROFILE`: the credential_process hook, spawned for every AWS CLI call.

Standard library only (json, os, socket, sys; `re` only for a custom socket
path), and no pathlib: start-up time is the hook's whole cost. It asks the
daemon over the socket, bounds its own wait (the AWS CLI puts no timeout on
the hook), and prints exactly the credential_process JSON. Every failure is
one line on stderr that names the cause and the fix, and exit status 1.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping

from credd import paths, protocol
from credd.commandline import credd_command

DEFAULT_TIMEOUT = protocol.CLIENT_TIMEOUT
PROMPT_ATTEMPTS = 3  # a typo costs another question, not the user's `aws` call
FIELDS = ("Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")


class HookError(Exception):
    """A failure to report on stderr: the message names the cause and the fix."""


class DaemonDown(HookError):
    """Nothing listens at the socket: `credd env`/`exec` may then use the credentials file instead."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


def parse_args(args: list[str]) -> tuple[str | None, str] | None:
    """`[--config PATH] process [--config PATH] PROFILE` -> (config, profile); None for anything else."""
    config = None
    rest = []
    items = iter(args)
    for item in items:
        if item == "--config":
            config = next(items, None)
            if config is None:
                return None
        elif item.startswith("--config="):
            config = item.split("=", 1)[1]
        else:
            rest.append(item)
    if len(rest) != 2 or rest[0] != "process" or rest[1].startswith("-"):
        return None
    return config, rest[1]


def run(config: str | None, profile: str, env: Mapping[str, str] = os.environ, first_reply: dict | None = None) -> int:
    """`first_reply`: the daemon's reply to this profile's credentials request, when the fast path has it already."""
    try:
        path = socket_path(env, config)
        credentials = fetch(path, profile, _timeout(env), config, first_reply)
    except HookError as e:
        sys.stderr.write(f"credd: {e}\n")
        return 1
    sys.stdout.write(json.dumps(credentials) + "\n")
    return 0


def socket_path(env: Mapping[str, str], config: str | None, platform: str = sys.platform) -> str:
    """The daemon's socket, found as the daemon finds it, without reading YAML.

    `$CREDD_SOCKET`, else a top-level `socket:` line of the config file, else
    the platform's default.
    """
    try:
        return paths.socket_file(env, config, platform, os.getuid())
    except ValueError as e:
        raise HookError(str(e)) from None


def fetch(path: str, profile: str, timeout: float, config: str | None = None,
          first_reply: dict | None = None) -> dict:
    """Credentials for `profile`, handing in an MFA code from the terminal when the daemon needs one.

    `config`: the `--config` the user runs with, for the commands that messages name. `first_reply`: the
    daemon's reply to this request, when the fast path has it already.
    """
    reply = first_reply if first_reply is not None else ask(path, {"op": "credentials", "profile": profile},
                                                            timeout, config)
    if not reply.get("ok") and reply.get("error") == "mfa-required":
        source = str(reply.get("source", ""))
        code = _prompt_tty(f"credd: MFA code for {source} (profile {profile}): ")
        if code is None:
            raise HookError(f"profile {profile} needs an MFA code for source {source}: run "
                            f"`{credd_command(config, 'mfa', source)}` in a terminal, then try again")
        if not _is_code(code):
            raise HookError(f"no 6-digit MFA code in {PROMPT_ATTEMPTS} tries; run "
                            f"`{credd_command(config, 'mfa', source)}` in a terminal, then try again")
        handed = ask(path, {"op": "mfa", "source": source, "code": code}, timeout, config)
        if not handed.get("ok"):
            raise HookError(str(handed.get("message", "the MFA code was not accepted")))
        reply = ask(path, {"op": "credentials", "profile": profile}, timeout, config)
    if not reply.get("ok"):
        raise HookError(str(reply.get("message", "the daemon refused without saying why")))
    return _checked(reply.get("credentials"), config)


def ask(path: str, message: dict, timeout: float, config: str | None = None) -> dict:
    """One request to the daemon; every way it can fail becomes a HookError that says what to do."""
    try:
        return protocol.request(path, message, timeout)
    except protocol.DaemonUnreachable:
        raise DaemonDown(f"the credd daemon is not running (nothing listens at {path}); start it with "
                         f"`{credd_command(config, 'service', 'install')}` (starts at login) or "
                         f"`{credd_command(config, 'serve')}` (in a terminal)", path) from None
    except TimeoutError:
        raise HookError(f"the credd daemon did not answer within {timeout:g} s; see "
                        f"`{credd_command(config, 'status')}`") from None
    except protocol.ProtocolError as e:
        raise HookError(str(e)) from None
    except OSError as e:
        raise HookError(f"cannot reach the credd daemon at {path}: {e.strerror or e}") from None


def _checked(credentials: object, config: str | None) -> dict:
    """Exactly the credential_process fields, or an error: never half a credential."""
    if not isinstance(credentials, dict):
        raise HookError("the daemon's reply holds no credentials")
    result = {name: credentials.get(name) for name in FIELDS}
    if result["Version"] != 1 or not all(isinstance(result[name], str) and result[name] for name in FIELDS[1:]):
        raise HookError("the daemon's reply holds incomplete credentials; see "
                        f"`{credd_command(config, 'status')}`")
    return result


def _prompt_tty(prompt: str) -> str | None:
    """A code from the controlling terminal (the AWS CLI owns stdin and stdout), or None without one.

    Not echoed, as `credd mfa` and the AWS CLI's own MFA prompt do not. A typo
    is asked again, up to PROMPT_ATTEMPTS times, rather than failing the
    user's `aws` call; what comes back after the last try may still be one.
    """
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        answer = None
        for _ in range(PROMPT_ATTEMPTS):
            answer = _read_hidden(fd, prompt)
            if answer is None or _is_code(answer):
                return answer
            os.write(fd, f"credd: that is not an MFA code: expected 6 digits, got {len(answer)} characters\n".encode())
        return answer
    except OSError:
        return None
    except KeyboardInterrupt:  # Ctrl-C at the prompt: one line, not a traceback
        raise HookError("the MFA prompt was interrupted; no code was handed in") from None
    finally:
        os.close(fd)


def _read_hidden(fd: int, prompt: str) -> str | None:
    """One line from the terminal `fd` with echo off (restored whatever happens), stripped; None at end of input."""
    import termios  # only here: the prompt is the rare path, and start-up is the hook's whole cost

    try:
        saved = termios.tcgetattr(fd)
    except termios.error as e:
        raise OSError(str(e)) from None
    hidden = list(saved)
    hidden[3] &= ~termios.ECHO  # lflag; ICANON stays, so the line can still be edited
    os.write(fd, prompt.encode())
    termios.tcsetattr(fd, termios.TCSAFLUSH, hidden)
    try:
        line = b""
        while not line.endswith(b"\n") and len(line) < 256:
            chunk = os.read(fd, 256)
            if not chunk:
                if not line:
                    return None
                break
            line += chunk
    finally:
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
        os.write(fd, b"\n")  # the Enter the terminal did not echo
    return line.decode(errors="replace").strip()


def _is_code(text: str) -> bool:
    return len(text) == 6 and text.isascii() and text.isdigit()


_timeout = protocol.client_timeout  # shared with the fast path (quickhook), which must wait just as long
