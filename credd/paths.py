"""Where things live by default, per platform.

Pure functions of an environment mapping, a platform name and a uid, so tests
can ask "where would this go on macOS?" on Linux. Strings and `os.path` only,
no pathlib or re at import: `credd process` uses this on every AWS CLI call.
"""

from __future__ import annotations

import os.path
from collections.abc import Mapping

# sun_path holds 108 bytes on Linux and 104 on macOS, the terminating NUL included.
SOCKET_PATH_MAX = {"linux": 107, "darwin": 103}


def home_of(env: Mapping[str, str]) -> str:
    """`$HOME`, unless it is unset or relative: then the home the password database gives the user.

    A relative `$HOME` would put every default path wherever the process
    happens to run (`/` for a service), so it is not taken.
    """
    home = env.get("HOME", "")
    if os.path.isabs(home):
        return home
    import pwd

    return pwd.getpwuid(os.getuid()).pw_dir


def expand(path: str, env: Mapping[str, str]) -> str:
    """Expand a leading `~` and `$VAR`/`${VAR}` from `env`; refuse unset variables."""
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


def config_file(env: Mapping[str, str], explicit: str | None = None) -> str:
    """`--config`, else `$CREDD_CONFIG`, else `$XDG_CONFIG_HOME/credd/config.yaml`."""
    if explicit:
        return expand(explicit, env)
    if env.get("CREDD_CONFIG"):
        return expand(env["CREDD_CONFIG"], env)
    return os.path.join(_xdg(env, "XDG_CONFIG_HOME", ".config"), "credd", "config.yaml")


def credentials_file(env: Mapping[str, str]) -> str:
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


def aws_config_file(env: Mapping[str, str]) -> str:
    if env.get("AWS_CONFIG_FILE"):
        return expand(env["AWS_CONFIG_FILE"], env)
    return os.path.join(home_of(env), ".aws", "config")


def default_socket(env: Mapping[str, str], platform: str, uid: int) -> str:
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


def state_dir(env: Mapping[str, str]) -> str:
    """`$XDG_STATE_HOME/credd`: small non-secret state such as the last MFA window used."""
    return os.path.join(_xdg(env, "XDG_STATE_HOME", os.path.join(".local", "state")), "credd")


def _xdg(env: Mapping[str, str], variable: str, fallback: str) -> str:
    value = env.get(variable)
    # The XDG spec says relative values are invalid and must be ignored.
    if value and os.path.isabs(value):
        return value
    return os.path.join(home_of(env), fallback)
