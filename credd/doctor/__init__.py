"""`credd doctor`'s checks: what stands between `aws` and credd's credentials, and how to fix each thing.

Pure: every check takes plain facts (the config, the environment, the AWS
config's profiles, file modes, the daemon's status reply, a measured clock
skew) and returns `Finding`s; `commands/doctor.py` gathers the facts. So a
broken setup is one table row in the tests, with no keyring, daemon or
network behind it.

Most of what goes wrong is shadowing, because of the order in which the SDKs
look for credentials: environment variables first, then a profile's keys in
the shared credentials file, and only then the profile's `credential_process`.
A key left in the environment, a file the SDKs read that credd does not
write, or a section in that file hides credd; so does a daemon that is not
running, a keyring without the key, or a clock AWS will not believe.

One module per area, each with its checks: `keys` (the config, the keyring
and what it holds), `files` (the credentials file), `statedir` (where the
daemon keeps its MFA state), `wiring` (~/.aws/config and the path each
profile takes), `environment`, `daemon` (socket, daemon, service) and
`clock`, and `endpoints` (the container endpoint and IMDS); `facts` and `findings` are what goes in and comes out.
This module runs them in order and re-exports what callers use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from credd.awsconfig import wired_profiles
from credd.doctor import facts as _facts
from credd.doctor import findings as _findings
from credd.doctor.clock import check_clock
from credd.doctor.daemon import check_daemon, check_service, check_socket
from credd.doctor.endpoints import check_endpoints, probe_url
from credd.doctor.environment import (
    check_endpoint_urls,
    check_environment_keys,
    check_environment_profile,
    check_shared_file,
)
from credd.doctor.facts import *  # noqa: F403  re-exported: the facts callers fill in
from credd.doctor.facts import Facts
from credd.doctor.files import check_credentials_file, parse_credentials
from credd.doctor.findings import *  # noqa: F403  re-exported: the findings and how to print them
from credd.doctor.findings import Finding, fail
from credd.doctor.keys import check_config, check_keyring, check_secrets
from credd.doctor.statedir import check_state_dir
from credd.doctor.wiring import check_aws_config, check_profiles, hook_config

__all__ = [  # the checks (a test may replace one here: `diagnose` looks them up at call time)
    "check_aws_config",
    "check_clock",
    "check_config",
    "check_credentials_file",
    "check_daemon",
    "check_endpoint_urls",
    "check_endpoints",
    "check_environment_keys",
    "check_environment_profile",
    "check_keyring",
    "check_profiles",
    "check_secrets",
    "check_service",
    "check_shared_file",
    "check_socket",
    "check_state_dir",
    "diagnose",
    "hook_config",
    "parse_credentials",
    "probe_url",
]
__all__ += _facts.__all__
__all__ += _findings.__all__


def diagnose(facts: Facts) -> list[Finding]:
    """Every check, in the order a user would fix things; without a valid config, those that need one are skipped."""
    parsed = parse_credentials(facts.credentials)
    wiring = wired_profiles(facts.aws_config.profiles)
    config, env, reply, hint = facts.config, facts.env, facts.socket.reply, facts.hint_config
    pid = reply.get("pid") if reply is not None and reply.get("ok") else None
    plan: list[tuple[Callable[..., list[Finding]], tuple, bool]] = [  # (check, its arguments, needs the config)
        (check_config, (facts.config_path, config, facts.config_error, hint), False),
        (check_keyring, (facts.keyring, env, hint), False),
        (check_secrets, (config, facts.secrets, facts.keyring, hint), True),
        (check_credentials_file, (facts.credentials, parsed, config, facts.uid, facts.secrets, hint), False),
        (check_state_dir, (facts.state_dir, facts.uid), False),
        (check_aws_config, (facts.aws_config, wiring, env), False),
        (check_profiles, (config, wiring, parsed, facts.credentials, facts.aws_config, env, facts.hook_configs,
                           hint), True),
        (check_environment_keys, (env,), False),
        (check_environment_profile, (config, env, wiring, facts.aws_config.profiles, parsed), True),
        (check_endpoint_urls, (config, env, facts.aws_config.profiles), True),
        (check_shared_file, (config, env, facts.credentials, facts.sdk_credentials_file,
                             facts.sdk_credentials_resolved), True),
        (check_socket, (facts.socket, hint), False),
        (check_daemon, (config, reply), True),
        (check_service, (facts.service, pid, hint), False),
        (check_endpoints, (config, reply, facts.endpoint_probes, hint), True),
        (check_clock, (facts.clock, config, reply), True),
    ]
    return [finding for check, args, needs_config in plan if config is not None or not needs_config
            for finding in _guarded(check, args, env)]


def _guarded(check: Callable[..., list[Finding]], args: tuple, env: Mapping[str, str]) -> list[Finding]:
    """One check's findings; a bug in one check must not cost the user the rest of the report."""
    try:
        return check(*args)
    except Exception as e:
        if env.get("CREDD_DEBUG"):
            raise
        return [fail("doctor", f"internal error in {check.__name__} ({type(e).__name__}); this is a bug in credd",
                     "run again with CREDD_DEBUG=1 for details, and report it")]
