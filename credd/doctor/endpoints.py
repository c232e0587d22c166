"""The HTTP endpoints (the container credentials endpoint, IMDS): on or off, bound or not, answering, live tokens.

The config turns an endpoint on; the daemon binds it at its start (a reload
does not), so the two can disagree until a restart. Each endpoint the daemon
serves is asked once without a token (`commands/doctor.py`): a 401 proves it
listens and refuses who may not ask, without credd handing out anything.
"""

from __future__ import annotations

from collections.abc import Mapping

from credd.commandline import credd_command
from credd.commands.control import servers_of, token_text
from credd.doctor.findings import Finding, count, fail, ok, warn
from credd.model import Config

TOPIC = "endpoints"
# What to ask each kind without a token: a path that needs one (the container endpoint checks the token before the
# profile, so any name does; IMDSv2 refuses a credentials GET without its session token).
PROBE_PATHS = {"container": "doctor-probe", "imds": "latest/meta-data/iam/security-credentials/"}
RESTART = "restart the daemon (`systemctl --user restart credd`, or stop `{serve}` and start it again)"


def probe_url(server: Mapping) -> str:
    """The URL doctor asks `server` (as `describe()` gives it) without a token."""
    return str(server.get("url", "")).rstrip("/") + "/" + PROBE_PATHS.get(str(server.get("kind")), "")


def check_endpoints(config: Config, reply: Mapping | None, probes: Mapping[str, int | str],
                    hint: str | None = None) -> list[Finding]:
    """What the config turns on against what the daemon serves, each served endpoint's answer, and the live tokens.

    `probes`: per probe URL, the HTTP status a request without a token got, or why none came.
    """
    restart = RESTART.format(serve=credd_command(hint, "serve"))
    wanted = f"endpoints.container: {config.container[0]}:{config.container[1]}" if config.container else None
    if reply is None or not reply.get("ok"):
        if wanted is None:
            return [ok(TOPIC, f"the container endpoint is off (turn it on with `endpoints: {{container: 127.0.0.1:0}}` "
                              f"in {config.path}, then restart the daemon)")]
        return [warn(TOPIC, f"{config.path} turns the container endpoint on ({wanted}), but the daemon is not "
                            "running, so nothing listens")]
    servers = servers_of(reply)
    found = []
    serving = any(server.get("kind") == "container" for server in servers)
    if wanted is None and not serving:
        found.append(ok(TOPIC, f"the container endpoint is off (turn it on with `endpoints: {{container: "
                               f"127.0.0.1:0}}` in {config.path}, then restart the daemon)"))
    elif wanted is not None and not serving:
        found.append(warn(TOPIC, f"{config.path} turns the container endpoint on ({wanted}), but the daemon "
                                 f"(pid {reply.get('pid')}) started before that and serves none", restart))
    elif wanted is None and serving:
        found.append(warn(TOPIC, f"the daemon (pid {reply.get('pid')}) serves the container endpoint, which "
                                 f"{config.path} no longer turns on", restart))
    for server in servers:
        found.append(_answer(server, probes.get(probe_url(server)), wanted if server.get("kind") == "container"
                             else None))
    tokens = ((reply.get("endpoints") or {}).get("container") or {}).get("tokens")
    if serving and tokens is not None:
        listed = "; ".join(token_text(token) for token in tokens)
        found.append(ok(TOPIC, f"{count(len(tokens), 'live token')} for the container endpoint"
                               + (f": {listed}" if listed else "")))
    return found


def _answer(server: Mapping, probe: int | str | None, setting: str | None) -> Finding:
    kind, url = server.get("kind"), server.get("url")
    where = f"the {kind} endpoint at {url}" + (f" ({setting})" if setting else "")
    if probe == 401:
        return ok(TOPIC, f"{where} answers, and refuses a request without a token (401)")
    if isinstance(probe, int):
        return warn(TOPIC, f"{where} answered a request without a token with {probe}, not 401",
                    "check that nothing else listens on its port; the daemon's log names what it refused")
    return fail(TOPIC, f"{where} does not answer: {probe or 'not asked'}",
                "the daemon's log says why; restart the daemon if it is stuck")
