"""Where things live by default, per platform.

Pure functions of an environment mapping, a platform name and a uid, so tests
can ask "where would this go on macOS?" on Linux. Strings and `os.path` only,
no pathlib or re at import: `credd process` comes here when its fast path hands over.
"""

import os.path

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy treats the name alike)
if TYPE_CHECKING:  # collections.abc pulls in collections: a millisecond the hook's fast path does not pay
    from collections.abc import Mapping

# sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included.
SOCKET_PATH_MAX = {"linux": 107, "darwin": 103}


def home_of(env: "Mapping[str, str]") -> str:
    """`$HOME`, unless it is unset or relative: then the home the password database gives the user.

    A relative `$HOME` would put every default path wherever the process
    happens to run (`/` for a service), so it is not taken.
    """
    home = env.get("HOME", "")
    if os.path.isabs(home):
        return home
    import pwd

    return pwd.getpwuid(os.getuid()).pw_dir


def expand(path: str, env: "Mapping[str, str]") -> str:
    """Expand a leading `~` and `$VAR`/`${VAR}` from `env`; refuse unset variables."""
    if "$" not in path:  # the common case, without importing re (the hook's fast path comes here)
        return home_of(env) + path[1:] if path == "~" or path.startswith("~/") else path
    import re

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in env:
            raise ValueError(f"${name} is not set in the environment")
        return env[name]

    text = re.sub(r"\$(?:\{(\w+)\}|(\w+))", substitute, path)
    if text == "~" or text.startswith("~/"):
        text = home_of(env) + text[1:]
    return text


def config_file(env: "Mapping[str, str]", explicit: str | None = None) -> str:
    """`--config`, else `$CREDD_CONFIG`, else `$XDG_CONFIG_HOME/credd/config.yaml`."""
    if explicit:
        return expand(explicit, env)
    if env.get("CREDD_CONFIG"):
        return expand(env["CREDD_CONFIG"], env)
    return os.path.join(_xdg(env, "XDG_CONFIG_HOME", ".config"), "credd", "config.yaml")


def credentials_file(env: "Mapping[str, str]") -> str:
    """Where the AWS SDKs look: `$AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.

    A relative `$AWS_SHARED_CREDENTIALS_FILE` is refused (ValueError), as a
    relative `credentials_file:` is: the daemon would write it relative to
    wherever it runs, not where the user's shell reads it.
    """
    if env.get("AWS_SHARED_CREDENTIALS_FILE"):
        path = expand(env["AWS_SHARED_CREDENTIALS_FILE"], env)
        if not os.path.isabs(path):
            raise ValueError(f"{path} is relative; give an absolute path or one starting with ~/")
        return path
    return os.path.join(home_of(env), ".aws", "credentials")


def aws_config_file(env: "Mapping[str, str]") -> str:
    if env.get("AWS_CONFIG_FILE"):
        return expand(env["AWS_CONFIG_FILE"], env)
    return os.path.join(home_of(env), ".aws", "config")


def default_socket(env: "Mapping[str, str]", platform: str, uid: int) -> str:
    """The socket path when neither `$CREDD_SOCKET` nor the config names one.

    Linux: the per-user runtime dir systemd makes (`/run/user/UID`), else a
    per-uid directory in /tmp (as tmux does; its owner and mode are checked
    before use). macOS: under Application Support, which launchd agents and
    terminals agree on, unlike `$TMPDIR`.
    """
    if platform == "darwin":
        return os.path.join(home_of(env), "Library", "Application Support", "credd", "credd.sock")
    runtime = env.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return os.path.join(runtime, "credd", "credd.sock")
    return f"/tmp/credd-{uid}/credd.sock"


def socket_file(env: "Mapping[str, str]", config: str | None, platform: str, uid: int) -> str:
    """The daemon's socket as every client finds it, without reading YAML (the hook runs this on every call).

    `$CREDD_SOCKET`, else the config file's `socket:` line (`socket_setting`),
    else the platform's default. The config loader refuses a `socket:` that
    YAML reads otherwise (`socket_misread`), so the daemon binds where this
    looks. Raises ValueError, with the path in its message, for one that names
    an unset variable or is relative (the daemon refuses those too).

    The hook's fast path answers the common cases without `os`
    (`quickhook.socket_path`) and hands the rest here: a change here is a change
    there (tests/test_quickhook.py checks on generated environments that they agree).
    """
    value = env.get("CREDD_SOCKET") or None
    if value is None:
        value = _socket_line(env, config)
    if value is None:
        return default_socket(env, platform, uid)
    try:
        path = expand(value, env)
    except ValueError as e:
        raise ValueError(f"the socket path {value!r}: {e}") from None
    if not os.path.isabs(path):  # it would mean another socket in every directory
        raise ValueError(f"the socket path {path!r} is relative; set $CREDD_SOCKET (or `socket:`) to an absolute path")
    return path


def socket_setting(text: str) -> tuple[str, int] | None:
    """The value of the first top-level `socket:` line of config `text` that has one, and that line's number.

    Read without YAML: what follows `socket:` up to a ` #` comment, without
    the spaces and quotes around it.
    """
    for number, line in enumerate(text.split("\n"), 1):
        if line.startswith("socket:"):
            value = line[len("socket:"):].split(" #", 1)[0].strip().strip("\"'")
            if value:
                return value, number
    return None


def socket_misread(text: str, written: str | None) -> tuple[int | None, str] | None:
    """Why clients would look for the socket elsewhere than the daemon binds it, as (line, message); None if not.

    `written`: the top-level `socket` value YAML finds in `text` (None without
    one). A `socket:` form the line scan reads otherwise (doubled quotes,
    escapes, a block scalar, a value on the next line, a flow mapping) would
    send `credd process` and the other clients to another path; so would a
    path ending in `/`, which the daemon's `Path` drops and `connect` does not.
    """
    from credd.errors import one_line

    scanned = socket_setting(text)
    seen, line = scanned if scanned is not None else (None, None)
    if seen is not None and seen == written and seen.endswith("/"):  # the daemon binds it without the `/`
        return line, (f"the socket path {one_line(repr(seen), 200)} ends in `/`, which clients would connect to as a "
                      "directory; remove the `/` at its end")
    if seen == (written or None):
        return None
    fix = "write it on one line as `socket: PATH` (quoted only if it must be, without escapes or doubled quotes)"
    if written is None:
        return line, (f"credd's clients read the path {one_line(repr(seen), 200)} from this line, which YAML reads as "
                      f"part of another value; {fix}")
    if seen is None:
        return line, (f"credd's clients find no `socket: PATH` line at the start of a line here, so they would look "
                      f"for the daemon at the default path, not at {one_line(repr(written), 200)}; {fix}")
    return line, (f"credd's clients read this line without YAML and find the path {one_line(repr(seen), 200)}, not "
                  f"{one_line(repr(written), 200)}; {fix}")


def _socket_line(env: "Mapping[str, str]", config: str | None) -> str | None:
    """The value of the config file's top-level `socket:` line, if it has one."""
    from credd import configfile

    try:
        data, _ = configfile.read(config_file(env, config), 1 << 20)  # not open(): a FIFO would block it
    except (OSError, ValueError):
        return None  # no readable config: the daemon then uses the default too
    found = socket_setting(data.decode("utf-8", errors="replace"))
    return found[0] if found is not None else None


def state_dir(env: "Mapping[str, str]") -> str:
    """`$XDG_STATE_HOME/credd`: small non-secret state such as the last MFA window used."""
    return os.path.join(_xdg(env, "XDG_STATE_HOME", os.path.join(".local", "state")), "credd")


def _xdg(env: "Mapping[str, str]", variable: str, fallback: str) -> str:
    value = env.get(variable)
    # The XDG spec says relative values are invalid and must be ignored.
    if value and os.path.isabs(value):
        return value
    return os.path.join(home_of(env), fallback)
