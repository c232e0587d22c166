"""`credd doctor [--json]`: gather the facts `credd.doctor` judges, print its findings.

Everything here is bounded I/O that cannot hang or raise at the user: the
daemon gets a few seconds to answer, the service manager a few more, and STS
(one unauthenticated request per distinct endpoint, for its `Date` header) a
few seconds in a daemon thread, because name resolution has no timeout of its
own. Exit status 1 when a check failed; warnings alone leave it 0.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from credd import __version__, awsconfig, client, credfile, doctor, mfa, paths
from credd.atomicfile import read_text, resolve_target
from credd.commands.args import JsonArgs
from credd.commands.control import servers_of
from credd.context import Context
from credd.doctor.clock import sts_endpoints
from credd.errors import ClientError, CreddError, CredentialsFileError, DaemonDown, KeyringError, UsageError
from credd.model import Config
from credd.timefmt import http_date

if TYPE_CHECKING:  # store imports keyring: only when doctor opens it
    from credd.store import KeyringBackend

STATUS_TIMEOUT = 3.0  # the daemon answers status from memory
SERVICE_TIMEOUT = 5.0
CLOCK_TIMEOUT = 3.0
PROBE_TIMEOUT = 2.0  # an endpoint answers from memory; the SDKs give the container endpoint 2 s


def run(ctx: Context, args: JsonArgs) -> int:
    findings = doctor.diagnose(gather(ctx))
    ctx.say(json.dumps(doctor.as_json(findings), indent=2) if args.json else doctor.format_text(findings))
    return 1 if doctor.failed(findings) else 0


def gather(ctx: Context) -> doctor.Facts:
    config_path, config, config_error = _config(ctx)
    keyring, backend = _keyring(ctx)
    sdk_credentials = _sdk_file(ctx.env, "AWS_SHARED_CREDENTIALS_FILE", paths.credentials_file)
    credentials = Path(config.credentials_file if config else sdk_credentials)
    aws_config = _aws_config(_sdk_file(ctx.env, "AWS_CONFIG_FILE", paths.aws_config_file))
    socket = _socket(ctx)
    return doctor.Facts(
        uid=ctx.uid, env=ctx.env, config_path=config_path, config=config, config_error=config_error,
        keyring=keyring, secrets=_secrets(config, backend) if config and backend is not None else {},
        credentials=_credentials_file(credentials),
        sdk_credentials_file=sdk_credentials, sdk_credentials_resolved=os.path.realpath(sdk_credentials),
        state_dir=_state_dir(paths.state_dir(ctx.env)),
        aws_config=aws_config,
        socket=socket, service=_service(ctx),
        clock=probe_clocks(sts_endpoints(config)) if config else (),
        hint_config=ctx.hint_config, hook_configs=_hook_configs(ctx, config, aws_config),
        endpoint_probes=probe_endpoints(socket.reply),
    )


def _hook_configs(ctx: Context, config: Config | None, aws: doctor.AwsConfigFacts) -> dict[str, frozenset[str] | str]:
    """The profiles of each other config that a hook line in ~/.aws/config names, or why it cannot be loaded."""
    from credd.config import load_config

    if config is None:
        return {}
    found: dict[str, frozenset[str] | str] = {}
    for arg in set(awsconfig.hook_config_args(aws.profiles).values()):
        path = doctor.hook_config(arg, ctx.env)
        if path == os.path.abspath(config.path) or path in found:
            continue
        try:
            found[path] = frozenset(load_config(Path(path), ctx.env, ctx.platform, ctx.uid).profiles)
        except CreddError as e:
            found[path] = str(e)
    return found


def _config(ctx: Context) -> tuple[str, Config | None, str | None]:
    try:
        path = str(ctx.config_path)
    except CreddError as e:  # `--config $UNSET/x.yaml`
        return str(ctx.config_arg or ctx.env.get("CREDD_CONFIG")), None, str(e)
    try:
        return path, ctx.load_config(), None
    except CreddError as e:
        return path, None, str(e)
    except ValueError as e:  # the one path config.py expands without a check: the default credentials_file
        return path, None, (f"{path}: credentials_file defaults to $AWS_SHARED_CREDENTIALS_FILE, and there {e}; "
                            "fix that variable, or set `credentials_file:`")


def _sdk_file(env: Mapping[str, str], variable: str, find: Callable[[Mapping[str, str]], str]) -> str:
    """Where the SDKs look; a `$VAR` in `variable` that is not set stays as written, as botocore leaves it."""
    try:
        return find(env)
    except ValueError:
        return env[variable]


def _keyring(ctx: Context) -> tuple[doctor.KeyringFacts, KeyringBackend | None]:
    from credd.store import is_plaintext, select_backend

    try:
        choice = select_backend(ctx.env, ctx.platform)
    except KeyringError as e:
        return doctor.KeyringFacts(None, error=str(e)), None
    return doctor.KeyringFacts(choice.name, choice.explicit, is_plaintext(choice.backend)), choice.backend


def _secrets(config: Config, backend: KeyringBackend) -> dict[str, doctor.SecretFacts]:
    from credd.store import TOTP_SEED, Store

    store = Store(backend, config.keyring_service)
    found = {}
    for name, source in config.sources.items():
        try:
            key = store.get_access_key(name)
            seed = source.mfa == "totp" and store.has(name, TOTP_SEED)
        except KeyringError as e:
            found[name] = doctor.SecretFacts(error=str(e))
            continue
        found[name] = doctor.SecretFacts(key.key_id if key else None, seed)
    return found


def _stat(path: str | Path, follow: bool = True) -> doctor.Stat | None:
    try:
        info = os.stat(path, follow_symlinks=follow)
    except OSError:
        return None
    return doctor.Stat(info.st_mode, info.st_uid)


def _credentials_file(path: Path) -> doctor.FileFacts:
    target = resolve_target(path)
    resolved = os.path.realpath(path)
    try:
        text = read_text(path)
    except CreddError as e:
        return doctor.FileFacts(str(path), resolved, error=str(e))
    if text is None:
        return doctor.FileFacts(str(path), resolved)
    return doctor.FileFacts(str(path), resolved, _stat(target), _stat(target.parent), text)


def _state_dir(path: str) -> doctor.StateDirFacts:
    """lstat of the state directory and of the state file in it, as `mfa.UsedWindows` looks at them."""
    file = str(mfa.state_file(path))
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return doctor.StateDirFacts(path, file_path=file)
    except OSError as e:  # EACCES on a directory above it, ENOTDIR
        return doctor.StateDirFacts(path, file_path=file, error=e.strerror or str(e))
    return doctor.StateDirFacts(path, doctor.Stat(info.st_mode, info.st_uid), file, _stat(file, follow=False))


def _aws_config(path: str) -> doctor.AwsConfigFacts:
    """~/.aws/config's profiles as botocore sees them (`[default]` and `[profile NAME]`).

    credfile reads it: botocore parses this file exactly as it parses the
    credentials file, and credfile's errors name the line without quoting it.
    """
    from botocore.configloader import build_profile_map

    try:
        text = read_text(Path(path))
        if text is None:
            return doctor.AwsConfigFacts(path)
        sections = credfile.read_profiles(text, path)
        lines = {name: {key: found.lines[0] + 1 for key, found in section.keys.items()}
                 for name, section in credfile.parse(text, path).sections.items()}
    except CredentialsFileError as e:
        return doctor.AwsConfigFacts(path, True, error=f"{e} (the AWS CLI and SDKs cannot read the file either)")
    except CreddError as e:
        return doctor.AwsConfigFacts(path, True, error=str(e))
    return doctor.AwsConfigFacts(path, True, build_profile_map(sections)["profiles"],
                                 lines=build_profile_map(lines)["profiles"])


def _socket(ctx: Context) -> doctor.SocketFacts:
    from credd.endpoints.unix_socket import prepare_directory

    try:
        path = client.socket_path(ctx.env, ctx.config_arg, ctx.platform, ctx.uid)  # where the daemon binds it too
    except UsageError as e:
        return doctor.SocketFacts(ctx.env.get("CREDD_SOCKET", "?"), dir_problem=str(e))
    directory = Path(path).parent
    problem = None
    if os.path.lexists(directory):  # an existing one is only checked: prepare_directory creates only missing ones
        try:
            prepare_directory(directory, ctx.uid)
        except CreddError as e:
            problem = str(e)
        except OSError as e:
            problem = f"cannot check {directory}: {e.strerror or e}"
    reply, error = _daemon_status(path)
    return doctor.SocketFacts(path, problem, _stat(path, follow=False), reply, error)


def _daemon_status(path: str) -> tuple[dict | None, str | None]:
    """The daemon's status reply; or None and why not, where the reason is None when nothing listens."""
    try:
        return client.ask(path, {"op": "status"}, STATUS_TIMEOUT), None
    except DaemonDown:
        return None, None
    except ClientError as e:
        return None, e.reason


def _service(ctx: Context) -> doctor.ServiceFacts:
    from credd import service

    try:
        manager = service.manager_for(ctx.platform, ctx.env, ctx.uid)
    except CreddError:
        return doctor.ServiceFacts("credd", None)
    name = service.UNIT if isinstance(manager, service.Systemd) else service.LABEL
    facts = doctor.ServiceFacts(name, manager.path, os.path.lexists(manager.path), logs=manager.logs)
    query = manager.status_queries()[-1]  # the one that says whether it runs: `is-active`, `launchctl print`
    try:
        result = subprocess.run(query.argv, check=False, env=dict(ctx.env), stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=SERVICE_TIMEOUT)
    except FileNotFoundError:
        return replace(facts, detail=f"no {manager.tool} on PATH")
    except (OSError, subprocess.TimeoutExpired) as e:
        return replace(facts, detail=f"{manager.tool} did not answer ({type(e).__name__})")
    answer = query.summarize(result.returncode, result.stdout, result.stderr)
    # `systemctl is-active` always prints a state when it can ask; on stderr only, it could not.
    if isinstance(manager, service.Systemd) and not result.stdout.strip():
        return replace(facts, detail=answer)
    return replace(facts, state=answer)


# The HTTP endpoints ----------------------------------------------------------------------------------------


def probe_endpoints(reply: Mapping | None, timeout: float = PROBE_TIMEOUT) -> dict[str, int | str]:
    """Ask each HTTP endpoint the daemon serves for credentials without a token: 401 proves it listens and refuses.

    Loopback only (the endpoints bind nothing else), so no proxy: `$HTTP_PROXY` must not carry the request away.
    """
    if reply is None or not reply.get("ok"):
        return {}
    servers = servers_of(reply)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
    probes: dict[str, int | str] = {}
    for server in servers:
        url = doctor.probe_url(server)
        request = urllib.request.Request(url, headers={"User-Agent": f"credd/{__version__} doctor"})
        try:
            with opener.open(request, timeout=timeout) as response:
                probes[url] = response.status
        except urllib.error.HTTPError as e:
            probes[url] = e.code
            e.close()
        except urllib.error.URLError as e:
            probes[url] = str(getattr(e.reason, "strerror", None) or e.reason)
        except (OSError, ValueError, http.client.HTTPException) as e:
            probes[url] = f"{type(e).__name__}: {e}"
    return probes


# The clock -------------------------------------------------------------------------------------------------


def probe_clocks(endpoints: list[str], timeout: float = CLOCK_TIMEOUT) -> tuple[doctor.ClockProbe, ...]:
    """Every endpoint at once, each in a daemon thread: a name that does not resolve must not hang doctor."""
    results: dict[str, doctor.ClockProbe] = {}
    threads = [threading.Thread(target=lambda e=endpoint: results.__setitem__(e, probe_clock(e, timeout)),
                                daemon=True) for endpoint in endpoints]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout + 0.5
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    return tuple(results.get(e) or doctor.ClockProbe(e, error=f"no answer within {timeout:g} s") for e in endpoints)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """STS's own Date, not that of wherever it redirects a bare GET."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def probe_clock(endpoint: str, timeout: float) -> doctor.ClockProbe:
    """How far this clock is ahead of STS's, from the `Date` header of one unauthenticated request.

    Any reply will do, an error included: it is not signed, so STS refuses it,
    with the time on it. Date has whole seconds, hence the half second.
    """
    url = endpoint if urlsplit(endpoint).path else endpoint + "/"
    request = urllib.request.Request(url, headers={"User-Agent": f"credd/{__version__} doctor"})
    before = time.time()
    try:
        with urllib.request.build_opener(_NoRedirect).open(request, timeout=timeout) as response:
            date = response.headers.get("Date")
    except urllib.error.HTTPError as e:
        date = e.headers.get("Date")
        e.close()
    except urllib.error.URLError as e:
        return doctor.ClockProbe(endpoint, error=str(getattr(e.reason, "strerror", None) or e.reason))
    except (OSError, ValueError, http.client.HTTPException) as e:
        return doctor.ClockProbe(endpoint, error=f"{type(e).__name__}: {e}")
    after = time.time()
    server = http_date(date)
    if server is None:
        return doctor.ClockProbe(endpoint, error="its reply has no usable Date header")
    return doctor.ClockProbe(endpoint, skew=(before + after) / 2 - (server.timestamp() + 0.5))
