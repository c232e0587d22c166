"""Asking the daemon over its socket: the one client of `credd process`, `status`, `refresh`, `mfa`, `env`, `exec`
and `doctor`.

Every way a request can fail becomes a `ClientError` whose message says what
to do (`DaemonDown` when nothing listens), so no caller converts errors again.
Standard library only, no pathlib or typing, and `termios` only when a code is
asked for: `credd process` uses this on every AWS CLI call that misses the
fast path (`quickhook`).
"""

from __future__ import annotations

import os
import sys

from credd import paths, protocol
from credd.commandline import credd_command
from credd.errors import ClientError, DaemonDown, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see paths.py)
if TYPE_CHECKING:
    from collections.abc import Mapping

PROMPT_ATTEMPTS = 3  # a typo costs another question, not the user's `aws` call
FIELDS = ("Version", "AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration")


def socket_path(env: Mapping[str, str], config: str | None, platform: str = sys.platform,
                uid: int | None = None) -> str:
    """The daemon's socket, found as the daemon finds it (`paths.socket_file`); a UsageError for a path that
    names an unset variable or is relative. `config`: the `--config` given, if any."""
    try:
        return paths.socket_file(env, config, platform, os.getuid() if uid is None else uid)
    except ValueError as e:
        raise UsageError(str(e)) from None


def ask(path: str, message: dict, timeout: float, config: str | None = None) -> dict:
    """One request to the daemon and its reply; every way it can fail becomes a ClientError that says what to do.

    `config`: the `--config` the user runs with, for the commands that messages name.
    """
    try:
        return protocol.request(path, message, timeout)
    except protocol.DaemonUnreachable:
        raise DaemonDown(f"the credd daemon is not running (nothing listens at {path}); start it with "
                         f"`{credd_command(config, 'service', 'install')}` (starts at login) or "
                         f"`{credd_command(config, 'serve')}` (in a terminal)", path) from None
    except TimeoutError:
        raise ClientError(f"the credd daemon did not answer within {timeout:g} s; see "
                          f"`{credd_command(config, 'status')}`", f"no answer within {timeout:g} s") from None
    except protocol.ProtocolError as e:
        raise ClientError(str(e)) from None
    except OSError as e:
        raise ClientError(f"cannot reach the credd daemon at {path}: {e.strerror or e}", e.strerror or str(e)) from None


def credentials(path: str, profile: str, timeout: float, config: str | None = None,
                first_reply: dict | None = None) -> dict:
    """Exactly the credential_process fields for `profile`, handing in an MFA code from the terminal when the daemon
    needs one.

    `config` as for `ask`. `first_reply`: the daemon's reply to this request, when the fast path has it already.
    """
    reply = first_reply if first_reply is not None else ask(path, {"op": "credentials", "profile": profile},
                                                            timeout, config)
    notice = used = None
    for _ in range(PROMPT_ATTEMPTS):  # a code AWS already took is asked for again, as a typo is
        if reply.get("ok") or reply.get("error") != "mfa-required":
            break
        source = str(reply.get("source", ""))
        code = _prompt_tty(f"credd: MFA code for {source} (profile {profile}): ", notice)
        if code is None:
            raise ClientError(f"profile {profile} needs an MFA code for source {source}: run "
                              f"`{credd_command(config, 'mfa', source)}` in a terminal, then try again")
        if not _is_code(code):
            raise ClientError(f"no 6-digit MFA code in {PROMPT_ATTEMPTS} tries; run "
                              f"`{credd_command(config, 'mfa', source)}` in a terminal, then try again")
        handed = ask(path, {"op": "mfa", "source": source, "code": code}, timeout, config)
        if not handed.get("ok") and handed.get("error") != "mfa-code-used":
            raise ClientError(str(handed.get("message", "the MFA code was not accepted")))
        if handed.get("ok"):
            notice = used = None
        else:
            # Another prompt (a second `aws` call) may have handed in this very code: then the session is
            # there now and the question below gets credentials; else the next code is asked for.
            notice = "credd: that code was already sent to AWS, which takes each code once; type the next one"
            used = str(handed.get("message"))
        reply = ask(path, {"op": "credentials", "profile": profile}, timeout, config)
    if not reply.get("ok") and reply.get("error") == "mfa-required" and used is not None:
        raise ClientError(used)  # the last code tried was one AWS had taken already: say so, not "needs a code"
    if not reply.get("ok"):
        raise ClientError(str(reply.get("message", "the daemon refused without saying why")))
    return _checked(reply.get("credentials"), config)


def _checked(credentials: object, config: str | None) -> dict:
    """Exactly the credential_process fields, or an error: never half a credential."""
    if not isinstance(credentials, dict):
        raise ClientError("the daemon's reply holds no credentials")
    result = {name: credentials.get(name) for name in FIELDS}
    if result["Version"] != 1 or not all(isinstance(result[name], str) and result[name] for name in FIELDS[1:]):
        raise ClientError("the daemon's reply holds incomplete credentials; see "
                          f"`{credd_command(config, 'status')}`")
    return result


def _prompt_tty(prompt: str, notice: str | None = None) -> str | None:
    """A code from the controlling terminal (the AWS CLI owns stdin and stdout), or None without one.

    Not echoed, as `credd mfa` and the AWS CLI's own MFA prompt do not. A typo
    is asked again, up to PROMPT_ATTEMPTS times, rather than failing the
    user's `aws` call; what comes back after the last try may still be one.
    `notice`: a line to show first (why the code is asked for again).
    """
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY)
    except OSError:
        return None
    try:
        if notice is not None:
            os.write(fd, f"{notice}\n".encode())
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
        raise ClientError("the MFA prompt was interrupted; no code was handed in") from None
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
