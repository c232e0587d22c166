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

from credd import configfile, paths, protocol

DEFAULT_TIMEOUT = 45.0  # long enough for an MFA command (a YubiKey touch) and STS; short enough not to hang a script
FIELDS = ("Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")


class HookError(Exception):
    """A failure to report on stderr: the message names the cause and the fix."""


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


def run(config: str | None, profile: str, env: Mapping[str, str] = os.environ) -> int:
    try:
        path = socket_path(env, config)
        credentials = fetch(path, profile, _timeout(env))
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
    if env.get("CREDD_SOCKET"):
        return _expand(env["CREDD_SOCKET"], env)
    try:
        data, _ = configfile.read(paths.config_file(env, config), 1 << 20)  # not open(): a FIFO would block it
        for line in data.decode("utf-8", errors="replace").split("\n"):
            if line.startswith("socket:"):
                value = line[len("socket:"):].split(" #", 1)[0].strip().strip("\"'")
                if value:
                    return _expand(value, env)
    except (OSError, ValueError):
        pass  # no readable config: the daemon then uses the default too
    return paths.default_socket(env, platform, os.getuid())


def _expand(value: str, env: Mapping[str, str]) -> str:
    try:
        return paths.expand(value, env)
    except ValueError as e:
        raise HookError(f"the socket path {value!r}: {e}") from None


def fetch(path: str, profile: str, timeout: float) -> dict:
    """Credentials for `profile`, handing in an MFA code from the terminal when the daemon needs one."""
    reply = ask(path, {"op": "credentials", "profile": profile}, timeout)
    if not reply.get("ok") and reply.get("error") == "mfa-required":
        source = str(reply.get("source", ""))
        code = _prompt_tty(f"credd: MFA code for {source} (profile {profile}): ")
        if code is None:
            raise HookError(f"profile {profile} needs an MFA code for source {source}: run `credd mfa {source}` "
                            "in a terminal, then try again")
        handed = ask(path, {"op": "mfa", "source": source, "code": code}, timeout)
        if not handed.get("ok"):
            raise HookError(str(handed.get("message", "the MFA code was not accepted")))
        reply = ask(path, {"op": "credentials", "profile": profile}, timeout)
    if not reply.get("ok"):
        raise HookError(str(reply.get("message", "the daemon refused without saying why")))
    return _checked(reply.get("credentials"))


def ask(path: str, message: dict, timeout: float) -> dict:
    """One request to the daemon; every way it can fail becomes a HookError that says what to do."""
    try:
        return protocol.request(path, message, timeout)
    except protocol.DaemonUnreachable:
        raise HookError(f"the credd daemon is not running (nothing listens at {path}); start it with "
                        "`credd service install` (starts at login) or `credd serve` (in a terminal)") from None
    except TimeoutError:
        raise HookError(f"the credd daemon did not answer within {timeout:g} s; see `credd status`") from None
    except protocol.ProtocolError as e:
        raise HookError(str(e)) from None
    except OSError as e:
        raise HookError(f"cannot reach the credd daemon at {path}: {e.strerror or e}") from None


def _checked(credentials: object) -> dict:
    """Exactly the credential_process fields, or an error: never half a credential."""
    if not isinstance(credentials, dict):
        raise HookError("the daemon's reply holds no credentials")
    result = {name: credentials.get(name) for name in FIELDS}
    if result["Version"] != 1 or not all(isinstance(result[name], str) and result[name] for name in FIELDS[1:]):
        raise HookError("the daemon's reply holds incomplete credentials; see `credd status`")
    return result


def _prompt_tty(prompt: str) -> str | None:
    """Read a code from the controlling terminal, if there is one (the AWS CLI owns stdin and stdout)."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        os.write(fd, prompt.encode())
        line = b""
        while not line.endswith(b"\n") and len(line) < 256:
            chunk = os.read(fd, 256)
            if not chunk:
                break
            line += chunk
    except OSError:
        return None
    finally:
        os.close(fd)
    return line.decode(errors="replace").strip() or None


def _timeout(env: Mapping[str, str]) -> float:
    try:
        return max(1.0, float(env.get("CREDD_PROCESS_TIMEOUT", DEFAULT_TIMEOUT)))
    except ValueError:
        return DEFAULT_TIMEOUT
