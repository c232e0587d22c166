"""`credd doctor`: each check against the broken setup it exists for, then the real command on broken homes."""

from __future__ import annotations

import json
import os
import re
import socket
import stat
import threading
import time
from dataclasses import replace
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from credd import awsconfig, doctor, sts
from credd.commands.doctor import probe_clock, probe_clocks, sts_endpoints
from credd.doctor import (
    AwsConfigFacts,
    ClockProbe,
    Facts,
    FileFacts,
    KeyringFacts,
    SecretFacts,
    ServiceFacts,
    SocketFacts,
    Stat,
    StateDirFacts,
)
from credd.doctor.files import ParsedCredentials
from credd.model import Config, Profile, Source
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, Home, run_credd

UID = 1000
CREDS = "/home/u/.aws/credentials"
AWS_CONFIG = "/home/u/.aws/config"
CONFIG_PATH = "/home/u/.config/credd/config.yaml"
SOCKET = "/run/user/1000/credd/credd.sock"
STATE = "/home/u/.local/state/credd"
STATE_FILE = f"{STATE}/mfa-windows.json"
OWNED = "[alice-session]\naws_access_key_id = ASIAEXAMPLEEXAMPLE1\naws_secret_access_key = s\n" \
        "aws_session_token = t\nx_credd_expiration = 2030-01-01T00:00:00Z\n"
LONG_TERM = f"aws_access_key_id = {TEST_KEY_ID}\naws_secret_access_key = {TEST_SECRET_KEY}\n"
WIRED = {"prod-admin": {"credential_process": "credd process prod-admin"}}
ADMIN = "arn:aws:iam::222222222222:role/Admin"


def make_config(**changes) -> Config:
    source = Source("alice", "arn:aws:iam::111111111111:mfa/alice", "totp", None, 43200, "us-east-1",
                    "http://127.0.0.1:9")
    profiles = {
        "alice-session": Profile("alice-session", "alice", None, "credd-alice", None, 3600, True),
        "prod-admin": Profile("prod-admin", "alice", "arn:aws:iam::222222222222:role/Admin", "credd-alice", None,
                              3600, False),
    }
    config = Config(Path(CONFIG_PATH), Path(CREDS), Path(SOCKET), "credd", 1200, {"alice": source}, profiles)
    return replace(config, **changes)


def status_reply(**changes) -> dict:
    rows = [{"profile": name, "state": "fresh", "last_error": None} for name in ("alice-session", "prod-admin")]
    return {"ok": True, "version": "0.1", "pid": 4242, "config": CONFIG_PATH, "profiles": rows, **changes}


def healthy(**changes) -> Facts:
    """A setup with nothing wrong: every check says ok."""
    facts = Facts(
        uid=UID, env={"HOME": "/home/u"}, config_path=CONFIG_PATH, config=make_config(), config_error=None,
        keyring=KeyringFacts("keyring.backends.SecretService.Keyring"),
        secrets={"alice": SecretFacts(TEST_KEY_ID, has_seed=True)},
        credentials=file_with(),
        sdk_credentials_file=CREDS, sdk_credentials_resolved=CREDS,
        state_dir=state_dir_with(),
        aws_config=AwsConfigFacts(AWS_CONFIG, True, WIRED),
        socket=SocketFacts(SOCKET, stat=Stat(stat.S_IFSOCK | 0o600, UID), reply=status_reply()),
        service=ServiceFacts("credd.service", "/home/u/.config/systemd/user/credd.service", True, "active"),
        clock=(ClockProbe("http://127.0.0.1:9", skew=0.4),),
    )
    return replace(facts, **changes)


def file_with(text: str | None = OWNED, mode: int = 0o600, owner: int = UID, dir_mode: int = 0o700) -> FileFacts:
    return FileFacts(CREDS, CREDS, Stat(stat.S_IFREG | mode, owner), Stat(stat.S_IFDIR | dir_mode, UID), text)


def state_dir_with(mode: int = stat.S_IFDIR | 0o700, owner: int = UID, file_mode: int | None = stat.S_IFREG | 0o600,
                   error: str | None = None) -> StateDirFacts:
    file = Stat(file_mode, UID) if file_mode is not None else None
    return StateDirFacts(STATE, Stat(mode, owner) if error is None else None, STATE_FILE, file, error)


def sources_reply(skew: int | None, warning: str | None) -> dict:
    """A status reply whose source alice's last STS reply showed the clock `skew` seconds off."""
    return status_reply(sources={"alice": {"failures_in_a_row": 0, "next_attempt": None, "last_error_kind": None,
                                           "clock_skew_seconds": skew, "clock_warning": warning}})


def problems(findings: list[doctor.Finding]) -> list[doctor.Finding]:
    return [finding for finding in findings if finding.level != "ok"]


def test_a_healthy_setup_is_all_ok():
    findings = doctor.diagnose(healthy())
    assert problems(findings) == []
    topics = {finding.topic for finding in findings}
    assert {"config", "keyring", "source alice", "credentials file", "state directory", "aws config",
            "profile alice-session", "profile prod-admin", "environment", "daemon", "service", "clock"} <= topics
    paths = {f.topic: f.message for f in findings if f.topic.startswith("profile ")}
    assert paths["profile alice-session"].startswith("served from the credentials file")
    assert paths["profile prod-admin"].startswith("served by credential_process")


SERVED = {"kind": "container", "address": "127.0.0.1:8911", "url": "http://127.0.0.1:8911/v1/credentials/",
          "profiles": [], "tokens": []}
SERVING = SocketFacts(SOCKET, reply=status_reply(endpoints={"container": SERVED, "imds": []}))


def test_the_endpoints_section_shows_what_serves_and_its_tokens():
    tokens = [{"id": "ab12cd34", "profiles": ["prod-admin"], "expires": "2030-01-01T00:00:00Z", "file": "/run/t",
               "rotate_every": 3600, "rotated_at": "2029-12-31T23:00:00Z"}]
    imds = {"kind": "imds", "address": "127.0.0.1:8912", "url": "http://127.0.0.1:8912/", "profiles": ["dev"]}
    reply = status_reply(endpoints={"container": {**SERVED, "profiles": ["prod-admin"], "tokens": tokens},
                                    "imds": [imds]})
    probes = {f"{SERVED['url']}doctor-probe": 401,
              "http://127.0.0.1:8912/latest/meta-data/iam/security-credentials/": 401}
    findings = doctor.diagnose(healthy(config=make_config(container=("127.0.0.1", 8911)),
                                       socket=SocketFacts(SOCKET, reply=reply), endpoint_probes=probes))
    shown = [f.message for f in findings if f.topic == "endpoints"]
    assert problems(findings) == []
    assert shown == [
        f"the container endpoint at {SERVED['url']} (endpoints.container: 127.0.0.1:8911) answers, and refuses a "
        "request without a token (401)",
        "the imds endpoint at http://127.0.0.1:8912/ answers, and refuses a request without a token (401)",
        "1 live token for the container endpoint: ab12cd34 (prod-admin, until 2030-01-01T00:00:00Z, file /run/t, "
        "a new value every 1h)"]
    off = [f.message for f in doctor.diagnose(healthy()) if f.topic == "endpoints"]
    assert off == [f"the container endpoint is off (turn it on with `endpoints: {{container: 127.0.0.1:0}}` in "
                   f"{CONFIG_PATH}, then restart the daemon)"]


# One row per broken setup: (what is broken, the facts, level, topic, in the message, in the fix).
BROKEN = [
    ("config error", {"config": None, "config_error": f"{CONFIG_PATH}:3: sources: expected a mapping"},
     "fail", "config", "config.yaml:3: sources: expected a mapping", None),
    ("config warning", {"config": make_config(
        warnings=(f"{CONFIG_PATH}:5: sources.bob: no profile uses this source",))},
     "warn", "config", "config.yaml:5: sources.bob: no profile uses this source", None),
    ("no keyring", {"keyring": KeyringFacts(None, error="no secure keyring is available; install one")},
     "fail", "keyring", "no secure keyring", None),
    ("plain-text keyring chosen", {"keyring": KeyringFacts("keyrings.alt.file.PlaintextKeyring", True, True),
                                       "env": {"PYTHON_KEYRING_BACKEND": "keyrings.alt.file.PlaintextKeyring"}},
     "warn", "keyring", "plain text", "unset PYTHON_KEYRING_BACKEND"),
    ("plain-text keyring in keyringrc", {"keyring": KeyringFacts("keyrings.alt.file.PlaintextKeyring", True, True)},
     "warn", "keyring", "keyringrc.cfg", "default-keyring"),
    ("no access key", {"secrets": {"alice": SecretFacts(None, has_seed=True)}},
     "fail", "source alice", "no access key", "credd keys set alice"),
    ("no TOTP seed", {"secrets": {"alice": SecretFacts(TEST_KEY_ID, has_seed=False)}},
     "fail", "source alice", "no TOTP seed", "credd totp set alice"),
    ("locked keyring", {"secrets": {"alice": SecretFacts(error="cannot read the access key: locked. Unlock it")}},
     "fail", "source alice", "locked", None),
    ("credentials file 0644", {"credentials": file_with(mode=0o644)},
     "fail", "credentials file", "mode 644", f"chmod 600 {CREDS}"),
    ("credentials file of another user", {"credentials": file_with(owner=0)},
     "fail", "credentials file", "belongs to uid 0", f"sudo chown {UID} {CREDS}"),
    ("directory writable by others", {"credentials": file_with(dir_mode=0o777)},
     "fail", "credentials file", "writable by other users", "chmod go-w /home/u/.aws"),
    ("credentials file botocore refuses", {"credentials": file_with(OWNED + "[alice-session]\n")},
     "fail", "credentials file", ":6: section [alice-session] appears a second time", None),
    ("credentials file unreadable", {"credentials": FileFacts(CREDS, CREDS, error=f"cannot read {CREDS}: denied")},
     "fail", "credentials file", "cannot read", None),
    ("long-term key in the file", {"credentials": file_with(OWNED + "[old]\n" + LONG_TERM)},
     "warn", "credentials file", "[old] in /home/u/.aws/credentials holds a long-term access key (AKIA…MPLE)",
     "credd keys import alice --from-profile old"),
    ("long-term key where credd writes", {"credentials": file_with("[alice-session]\n" + LONG_TERM)},
     "fail", "credentials file", f"[alice-session] at {CREDS}:1 holds a long-term access key (AKIA…MPLE) that credd "
     "does not overwrite, so `aws --profile alice-session` uses that key, not credd's credentials. It is source "
     "alice's own key", "credd keys import alice --from-profile alice-session"),
    ("another identity's long-term key where credd writes",
     {"credentials": file_with("[alice-session]\n" + LONG_TERM),
      "secrets": {"alice": SecretFacts("AKIAOTHEROTHEROTHER1", has_seed=True)}},
     "fail", "credentials file", "It is not known to be source alice's key (source alice's key in the keyring is "
     "AKIA…HER1)", f"move or rename section [alice-session], or remove its key by hand, at {CREDS}:1; or set "
     "`write: false` for profile alice-session in /home/u/.config/credd/config.yaml"),
    ("state directory a symlink", {"state_dir": state_dir_with(mode=stat.S_IFLNK | 0o777)},
     "fail", "state directory", (f"credd refuses it (so after a restart it may send an MFA code again, which AWS "
                                 f"refuses): {STATE} is a symlink, which credd does not follow there; remove it "
                                 f"(`rm {STATE}`)"),
     None),
    ("state directory not a directory", {"state_dir": state_dir_with(mode=stat.S_IFREG | 0o600)},
     "fail", "state directory", f"{STATE} is not a directory; remove it", None),
    ("state directory of another user", {"state_dir": state_dir_with(owner=0)},
     "fail", "state directory", f"{STATE} belongs to uid 0, not you (uid {UID}); remove it", None),
    ("state directory writable by the group", {"state_dir": state_dir_with(mode=stat.S_IFDIR | 0o770)},
     "fail", "state directory", f"open to other users (mode 770); run `chmod 700 {STATE}`", None),
    ("state directory writable by all", {"state_dir": state_dir_with(mode=stat.S_IFDIR | 0o1777)},
     "fail", "state directory", f"open to other users (mode 1777); run `chmod 700 {STATE}`", None),
    ("state file a symlink", {"state_dir": state_dir_with(file_mode=stat.S_IFLNK | 0o777)},
     "fail", "state directory", f"{STATE_FILE} is a symlink", f"rm {STATE_FILE}"),
    ("state directory out of reach", {"state_dir": state_dir_with(error="Permission denied")},
     "fail", "state directory", f"cannot look at {STATE} (Permission denied), and neither can credd",
     "must be a directory you can enter"),
    ("AWS config botocore refuses", {"aws_config": AwsConfigFacts(AWS_CONFIG, True, error=f"{AWS_CONFIG}:4: bad")},
     "fail", "aws config", "config:4: bad", None),
    ("wired to a profile credd lacks",
     {"aws_config": AwsConfigFacts(AWS_CONFIG, True, {**WIRED, "ghost": {"credential_process": "credd process gost"}})
      },
     "fail", "profile ghost", "runs `credd process gost`, but /home/u/.config/credd/config.yaml has no profile gost",
     "add gost under `profiles:`"),
    ("wired to credd without a profile",
     {"aws_config": AwsConfigFacts(AWS_CONFIG, True, {**WIRED, "odd": {"credential_process": "credd status"}})},
     "warn", "profile odd", "not as `credd process PROFILE`", "credential_process = credd process PROFILE"),
    ("written profile also wired",
     {"aws_config": AwsConfigFacts(AWS_CONFIG, True, {
         **WIRED, "alice-session": {"credential_process": "/usr/bin/credd process alice-session"}})},
     "warn", "profile alice-session", "never runs", "remove `credential_process` from [profile alice-session]"),
    ("wired profile shadowed by the file", {"credentials": file_with(OWNED + "[prod-admin]\n" + LONG_TERM)},
     "fail", "profile prod-admin", "the SDKs read [prod-admin] from /home/u/.aws/credentials first",
     "remove [prod-admin] from /home/u/.aws/credentials"),
    ("role lines left in a written profile's section",
     {"config": make_config(profiles={"prod-admin": Profile("prod-admin", "alice", ADMIN, "x", None, 3600, True)}),
      "aws_config": AwsConfigFacts(AWS_CONFIG, True, {"prod-admin": {"source_profile": "base", "role_arn": ADMIN}},
                                   lines={"prod-admin": {"source_profile": 2, "role_arn": 3}})},
     "fail", "profile prod-admin",
     (f"{AWS_CONFIG}:2: [profile prod-admin] sets role_arn, source_profile, which botocore uses before the "
      "credentials file credd writes: the SDKs never take credd's credentials for it"),
     "`credd config import --profile prod-admin` (it turns those lines into comments"),
    ("another role in a wired profile's section",
     {"aws_config": AwsConfigFacts(AWS_CONFIG, True, {"prod-admin": {
         **WIRED["prod-admin"], "role_arn": "arn:aws:iam::999999999999:role/Other", "source_profile": "x"}},
         lines={"prod-admin": {"credential_process": 2, "role_arn": 3, "source_profile": 4}})},
     "fail", "profile prod-admin", f"{AWS_CONFIG}:3: [profile prod-admin] sets role_arn, source_profile, which "
                                   "botocore uses before credd's credential_process",
     f"remove role_arn, source_profile from [profile prod-admin] in {AWS_CONFIG} (lines 3, 4)"),
    ("SSO keys in a written profile's section",
     {"aws_config": AwsConfigFacts(AWS_CONFIG, True, {**WIRED, "alice-session": {"sso_session": "corp"}},
                                   lines={"alice-session": {"sso_session": 7}})},
     "fail", "profile alice-session", f"{AWS_CONFIG}:7: [profile alice-session] sets sso_session",
     f"remove sso_session from [profile alice-session] in {AWS_CONFIG} (line 7)"),
    ("write: false profile not wired", {"aws_config": AwsConfigFacts(AWS_CONFIG, True, {})},
     "warn", "profile prod-admin", "not wired",
     "add `[profile prod-admin]` with `credential_process = credd process prod-admin`"),
    ("wiring unknown: AWS config unreadable", {"aws_config": AwsConfigFacts(AWS_CONFIG, True, error="x:1: bad")},
     "warn", "profile prod-admin", "cannot tell whether it is wired", "fix the AWS config"),
    ("default profile not wired",
     {"config": make_config(profiles={"default": Profile("default", "alice", None, "x", None, 3600, False)}),
          "socket": SocketFacts(SOCKET, reply=status_reply(profiles=[{"profile": "default"}]))},
     "warn", "profile default", "not wired", "add `[default]` with `credential_process = credd process default`"),
    ("keys in the environment", {"env": {"AWS_ACCESS_KEY_ID": TEST_KEY_ID, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY}},
     "warn", "environment", "AWS_ACCESS_KEY_ID (AKIA…MPLE), AWS_SECRET_ACCESS_KEY are set",
     "unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY"),
    ("AWS_PROFILE not credd's", {"env": {"AWS_PROFILE": "mine"},
                                     "aws_config": AwsConfigFacts(AWS_CONFIG, True, {**WIRED, "mine": {}})},
     "warn", "environment", "AWS_PROFILE=mine is not a credd profile", "or unset AWS_PROFILE"),
    ("AWS_PROFILE names nothing", {"env": {"AWS_DEFAULT_PROFILE": "nope"}},
     "fail", "environment", "AWS_DEFAULT_PROFILE=nope names no profile", "alice-session, prod-admin"),
    ("AWS_SHARED_CREDENTIALS_FILE elsewhere",
     {"env": {"AWS_SHARED_CREDENTIALS_FILE": "/tmp/other"}, "sdk_credentials_file": "/tmp/other",
          "sdk_credentials_resolved": "/tmp/other"},
     "fail", "environment", "the SDKs read /tmp/other, but credd writes /home/u/.aws/credentials",
     f"export AWS_SHARED_CREDENTIALS_FILE={CREDS}"),
    ("credentials_file the SDKs do not read",
     {"sdk_credentials_file": "/home/u/.aws/credentials2", "sdk_credentials_resolved": "/home/u/.aws/credentials2"},
     "fail", "environment", "(credentials_file in", "remove `credentials_file:`"),
    ("socket directory open", {"socket": SocketFacts(SOCKET, dir_problem="/run/user/1000/credd is open to other users "
                                                                          "(mode 755); run `chmod 700 x`",
                                                      reply=status_reply())},
     "fail", "socket", "open to other users (mode 755)", None),
    ("socket mode 0666", {"socket": SocketFacts(SOCKET, stat=Stat(stat.S_IFSOCK | 0o666, UID), reply=status_reply())},
     "fail", "socket", "mode 666", f"chmod 600 {SOCKET}"),
    ("not a socket", {"socket": SocketFacts(SOCKET, stat=Stat(stat.S_IFREG | 0o600, UID), reply=status_reply())},
     "fail", "socket", "is not a socket", "move it out of the way"),
    ("daemon not running", {"socket": SocketFacts(SOCKET)},
     "warn", "daemon", "not running", "credd service install"),
    ("daemon stuck", {"socket": SocketFacts(SOCKET, error="no answer within 3 s")},
     "fail", "daemon", "does not answer: no answer within 3 s", "restart it"),
    ("another user's daemon", {"socket": SocketFacts(SOCKET, reply={"ok": False, "error": "forbidden",
                                                                     "message": "this credd serves another user"})},
     "fail", "daemon", "refused: this credd serves another user", "$CREDD_SOCKET"),
    ("daemon on another config", {"socket": SocketFacts(SOCKET, reply=status_reply(config="/etc/credd.yaml"))},
     "warn", "daemon", "runs with /etc/credd.yaml", "credd --config /etc/credd.yaml doctor"),
    ("daemon not reloaded", {"socket": SocketFacts(SOCKET, reply=status_reply(profiles=[{"profile": "alice-session"},
                                                                                        {"profile": "gone"}]))},
     "warn", "daemon", "does not serve prod-admin; it still serves gone", "kill -HUP 4242"),
    ("refresh failing", {"socket": SocketFacts(SOCKET, reply=status_reply(profiles=[
        {"profile": "alice-session"}, {"profile": "prod-admin", "last_error": "AccessDenied: fix the trust policy"}]))},
     "warn", "profile prod-admin", "last refresh failed: AccessDenied", None),
    ("service not installed", {"service": ServiceFacts("credd.service", "/u/credd.service", False)},
     "warn", "service", "was started by hand", "credd service install"),
    ("service failed", {"service": ServiceFacts("credd.service", "/u/credd.service", True, "failed",
                                                 logs="journalctl --user -u credd.service")},
     "fail", "service", "not running (failed)", "journalctl --user -u credd.service"),
    ("service manager unreachable", {"service": ServiceFacts("credd.service", "/u/credd.service", True, None,
                                                              "Failed to connect to bus")},
     "warn", "service", "state is unknown: Failed to connect to bus", "credd service status"),
    ("clock far off", {"clock": (ClockProbe("https://sts.us-east-1.amazonaws.com", skew=-400.2),)},
     "fail", "clock", ("6m40s behind STS (https://sts.us-east-1.amazonaws.com): AWS refuses the TOTP codes made "
                       "here, and some AWS services refuse requests signed this far off (STS from 15 minutes)"),
     "timedatectl set-ntp true"),
    ("clock a little off", {"clock": (ClockProbe("https://sts.us-east-1.amazonaws.com", skew=45),)},
     "warn", "clock", "45s ahead of STS", "timedatectl"),
    ("STS unreachable", {"clock": (ClockProbe("https://sts.us-east-1.amazonaws.com", error="Name not known"),)},
     "warn", "clock", "cannot reach STS at https://sts.us-east-1.amazonaws.com to check the clock", "offline"),
    ("daemon saw the clock off", {"socket": SocketFacts(SOCKET, reply=sources_reply(-400, "7 min behind")),
                                  "clock": (ClockProbe("http://127.0.0.1:9", error="timed out"),)},
     "warn", "clock", ("at source alice's last STS reply, the daemon found this machine's clock 6m40s behind STS: "
                       "AWS refuses the TOTP codes made on a clock this far off"), "timedatectl set-ntp true"),
    ("an endpoint URL credd ignores", {"env": {"HOME": "/home/u", "AWS_ENDPOINT_URL_STS": "http://localhost:4566"}},
     "warn", "environment", ("AWS_ENDPOINT_URL_STS=http://localhost:4566: credd ignores it and calls STS only at "
                             "the endpoint its config names, else the region's (http://127.0.0.1:9)"),
     f"set sources.NAME.sts_endpoint in {CONFIG_PATH}"),
    ("endpoint_url in ~/.aws/config", {"env": {"HOME": "/home/u", "AWS_PROFILE": "dev"},
                                       "aws_config": AwsConfigFacts(AWS_CONFIG, True, {
                                           "default": {"endpoint_url": "http://ignored"},
                                           "dev": {"endpoint_url": "http://localhost:4566"}})},
     "warn", "environment", "endpoint_url = http://localhost:4566: credd ignores it", "sources.NAME.sts_endpoint"),
    ("daemon saw the clock off, set right since",
     {"socket": SocketFacts(SOCKET, reply=sources_reply(420, "7 min ahead"))},
     "warn", "clock", ("clock 7m ahead of STS: AWS refuses the TOTP codes made on a clock this far off; it is "
                       "within 1 s of STS now, so it was set right since"), "timedatectl set-ntp true"),
    ("endpoint turned on after the daemon started", {"config": make_config(container=("127.0.0.1", 8911))},
     "warn", "endpoints", ("config.yaml turns the container endpoint on (endpoints.container: 127.0.0.1:8911), but "
                           "the daemon (pid 4242) started before that and serves none"), "systemctl --user restart"),
    ("endpoint turned on, daemon down", {"config": make_config(container=("127.0.0.1", 0)),
                                         "socket": SocketFacts(SOCKET)},
     "warn", "endpoints", "turns the container endpoint on (endpoints.container: 127.0.0.1:0), but the daemon is not "
                          "running", None),
    ("endpoint turned off since", {"socket": SERVING},
     "warn", "endpoints", "serves the container endpoint, which /home/u/.config/credd/config.yaml no longer turns on",
     "restart the daemon"),
    ("endpoint does not answer", {"config": make_config(container=("127.0.0.1", 0)),
                                  "socket": SERVING,
                                  "endpoint_probes": {f"{SERVED['url']}doctor-probe": "Connection refused"}},
     "fail", "endpoints", f"the container endpoint at {SERVED['url']} (endpoints.container: 127.0.0.1:0) does not "
                          "answer: Connection refused", "the daemon's log says why"),
    ("endpoint answers without a token", {"config": make_config(container=("127.0.0.1", 0)),
                                          "socket": SERVING,
                                          "endpoint_probes": {f"{SERVED['url']}doctor-probe": 200}},
     "warn", "endpoints", "answered a request without a token with 200, not 401", "nothing else listens"),
]


@pytest.mark.parametrize("changes,level,topic,message,fix", [row[1:] for row in BROKEN], ids=[row[0] for row in BROKEN])
def test_each_broken_setup_is_found_with_its_fix(changes, level, topic, message, fix):
    findings = doctor.diagnose(healthy(**changes))
    matching = [f for f in findings if f.level == level and f.topic == topic and message in f.message]
    assert matching, "\n".join(map(str, problems(findings)))
    if fix is not None:
        assert fix in (matching[0].fix or "")
    assert TEST_SECRET_KEY not in doctor.format_text(findings) and TEST_KEY_ID not in doctor.format_text(findings)


def test_a_bad_config_skips_the_checks_that_need_it_and_says_so():
    findings = doctor.diagnose(healthy(config=None, config_error="bad", env={"AWS_PROFILE": "x"}))
    assert findings[0] == doctor.fail("config", "bad")
    assert findings[1].topic == "doctor" and findings[1].message.startswith("skipped")
    assert not any(f.topic.startswith(("profile ", "source ", "clock")) for f in findings)
    topics = {finding.topic for finding in findings}
    assert {"keyring", "credentials file", "aws config", "environment", "daemon", "service"} <= topics


def test_no_keyring_skips_the_entries_of_each_source():
    findings = doctor.diagnose(healthy(keyring=KeyringFacts(None, error="none"), secrets={}))
    assert any(f.topic == "doctor" and "keyring entries" in f.message for f in findings)
    assert not any(f.topic == "source alice" for f in findings)


def test_a_check_that_breaks_costs_only_its_own_findings(monkeypatch: pytest.MonkeyPatch):
    def broken(*args):
        raise KeyError("boom")

    broken.__name__ = "check_clock"
    monkeypatch.setattr(doctor, "check_clock", broken)
    findings = doctor.diagnose(healthy())
    assert findings[-1].level == "fail" and "internal error in check_clock (KeyError)" in findings[-1].message
    assert len(findings) > 10


def test_a_state_directory_that_is_private_or_missing_is_ok():
    def state_findings(state: StateDirFacts) -> list[doctor.Finding]:
        return [f for f in doctor.diagnose(healthy(state_dir=state)) if f.topic == "state directory"]

    assert state_findings(StateDirFacts(STATE, file_path=STATE_FILE)) == [doctor.ok(
        "state directory", f"{STATE} does not exist yet; credd creates it (mode 700) when it first uses an MFA code")]
    # Others may read it (no secrets there), as the daemon allows; the state file need not exist yet.
    assert state_findings(state_dir_with(mode=stat.S_IFDIR | 0o755, file_mode=None)) == [
        doctor.ok("state directory", f"{STATE}: yours, mode 755")]


def clock_findings(**changes) -> list[doctor.Finding]:
    return [f for f in doctor.diagnose(healthy(**changes)) if f.topic == "clock"]


def test_the_daemons_clock_is_reported_only_when_it_warns():
    quiet = SocketFacts(SOCKET, reply=sources_reply(200, None))  # 3m20s off: below the daemon's threshold
    refused = SocketFacts(SOCKET, reply={"ok": False, "error": "forbidden", "message": "not yours",
                                         "sources": sources_reply(-400, "x")["sources"]})
    older = SocketFacts(SOCKET, reply=status_reply())  # a daemon from before `sources`
    for socket_facts in (quiet, refused, older):
        assert clock_findings(socket=socket_facts) == [doctor.ok("clock", "within 1 s of STS (http://127.0.0.1:9)")]


def test_the_probe_and_the_daemon_tell_the_clock_alike():
    findings = clock_findings(socket=SocketFacts(SOCKET, reply=sources_reply(-400, "7 min behind")),
                              clock=(ClockProbe("http://127.0.0.1:9", skew=-400.2),))
    assert [f.level for f in findings] == ["fail", "warn"]  # now, from the probe; then, from the daemon
    assert "clock is 6m40s behind STS (http://127.0.0.1:9)" in findings[0].message
    assert "clock 6m40s behind STS" in findings[1].message and "set right since" not in findings[1].message
    assert findings[0].fix == findings[1].fix == doctor.clock.TIME_SYNC
    # The daemon warns from the size at which the probe fails.
    assert sts.SKEW_REPORTED.total_seconds() == doctor.clock.SKEW_FAIL


def test_the_daemons_clock_warning_without_a_size_or_a_known_source():
    reply = status_reply(sources={"alice": {"clock_skew_seconds": None, "clock_warning": "far off"},
                                  "bob": {"clock_skew_seconds": 900, "clock_warning": "15 min ahead"}})
    findings = clock_findings(socket=SocketFacts(SOCKET, reply=reply))[1:]
    assert [f.message for f in findings] == [
        ("at source alice's last STS reply, the daemon found this machine's clock far off STS's; it is within 1 s "
         "of STS now, so it was set right since"),
        ("at source bob's last STS reply, the daemon found this machine's clock 15m ahead of STS: AWS refuses the "
         "TOTP codes made on a clock this far off"),  # a source of another config: no probe of its endpoint to compare
    ]


@pytest.mark.parametrize("command,target", [
    ("credd process prod", "prod"),
    ("/usr/local/bin/credd --config /a/b.yaml process prod", "prod"),
    ("/venv/bin/python3 -m credd process --config x.yaml prod", "prod"),
    # the form `credd init` writes from a venv or pipx install (service.hook_command)
    ("/home/u/.local/pipx/venvs/credd/bin/python -I -S /home/u/.local/pipx/venvs/credd/bin/credd process prod", "prod"),
    ("'/home/u/my venv/bin/python' -I -S '/home/u/my venv/bin/credd' --config /a/b.yaml process prod", "prod"),
    ("credd status", None),
])
def test_wiring_reads_every_way_to_run_the_hook(command, target):
    assert awsconfig.wired_profiles({"p": {"credential_process": command}}) == {"p": target}


@pytest.mark.parametrize("command", ["aws-vault exec prod --json", "'unbalanced", ""])
def test_wiring_ignores_other_programs(command):
    assert awsconfig.wired_profiles({"p": {"credential_process": command}, "q": {"region": "x"}}) == {}


def test_text_output_puts_each_fix_under_its_finding_and_counts():
    text = doctor.format_text([doctor.ok("a", "fine"), doctor.warn("b", "meh", "do x"), doctor.fail("c", "bad")])
    assert text.splitlines() == ["ok   a: fine", "warn b: meh", "     fix: do x", "FAIL c: bad", "1 failed, 1 warning"]
    assert doctor.format_text([doctor.ok("a", "fine")]).endswith("everything is ok")
    assert doctor.as_json([doctor.warn("b", "meh")]) == {
        "ok": True, "findings": [{"level": "warn", "topic": "b", "message": "meh", "fix": None}]}


# The clock probe, against local HTTP servers -----------------------------------------------------------


class _Dated(BaseHTTPRequestHandler):
    offset = 0.0  # seconds the server's clock is ahead

    def do_GET(self) -> None:
        if self.path == "/redirect":
            self.send_response_only(302)
            self.send_header("Location", "/")
            self.send_header("Date", formatdate(0, usegmt=True))
        else:
            self.send_response_only(403)
            self.send_header("Date", formatdate(time.time() + self.offset, usegmt=True))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def dated_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Dated)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_clock_probe_reads_the_date_of_a_refused_request(dated_server, monkeypatch):
    assert abs(probe_clock(dated_server, 2.0).skew) < 2
    monkeypatch.setattr(_Dated, "offset", 600.0)
    assert -602 < probe_clock(dated_server, 2.0).skew < -598  # this clock is 10 minutes behind


def test_the_clock_probe_does_not_follow_redirects(dated_server):
    skew = probe_clock(dated_server + "/redirect", 2.0).skew  # the 302's own Date, 1970
    assert skew > 50 * 365 * 86400


def test_the_clock_probe_never_hangs():
    listener = socket.socket()  # accepts connections (the backlog) and never answers
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, not listening: connection refused
    try:
        silent = f"http://127.0.0.1:{listener.getsockname()[1]}"
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}"
        probes = probe_clocks([silent, refused], timeout=0.5)
    finally:
        listener.close()
        closed.close()
    assert [p.endpoint for p in probes] == [silent, refused]
    assert all(p.skew is None and p.error for p in probes)
    assert "refused" in probes[1].error


def test_sts_endpoints_are_each_source_once():
    config = make_config(sources={
        "a": Source("a", None, None, None, 3600, "eu-west-1", None),
        "b": Source("b", None, None, None, 3600, "eu-west-1", None),
        "c": Source("c", None, None, None, 3600, "us-east-1", "http://127.0.0.1:9"),
    })
    assert sts_endpoints(config) == ["https://sts.eu-west-1.amazonaws.com", "http://127.0.0.1:9"]


# The real command -------------------------------------------------------------------------------------

HOME_CONFIG = """\
version: 1
sources:
  alice:
    sts_endpoint: http://127.0.0.1:9
profiles:
  alice-session:
    source: alice
"""


def broken_home(home: Home, break_it: str) -> dict[str, str]:
    """A home whose only FAILs come from `break_it` (the keyring is keyrings.alt, so it warns); its extra env."""
    home.write_config(HOME_CONFIG)
    run_credd(["keys", "set", "alice"], home, input=f"{TEST_KEY_ID}\n{TEST_SECRET_KEY}\n")
    home.credentials.parent.mkdir(mode=0o700, exist_ok=True)
    home.credentials.write_text("[mine]\naws_access_key_id = ASIAEXAMPLEEXAMPLE1\naws_session_token = t\n")
    home.credentials.chmod(0o600)
    if break_it == "bad config":
        home.write_config(HOME_CONFIG.replace("source: alice", "source: alcie"))
    elif break_it == "credentials file 0644":
        home.credentials.chmod(0o644)
    elif break_it == "unknown profile wired":
        (home.root / ".aws" / "config").write_text("[profile ghost]\ncredential_process = credd process ghost\n")
    elif break_it == "role lines left":
        (home.root / ".aws" / "config").write_text("[profile alice-session]\nregion = eu-west-1\n"
                                                   "role_arn = arn:aws:iam::222222222222:role/Admin\n"
                                                   "source_profile = alice-session\n")
    elif break_it == "state directory open":
        state = home.root / ".local" / "state" / "credd"
        state.mkdir(parents=True)
        state.chmod(0o777)
    elif break_it == "keys in the environment":
        return {"AWS_ACCESS_KEY_ID": TEST_KEY_ID, "AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY}
    return {}


@pytest.mark.parametrize("break_it,status,line,fix", [
    ("bad config", 1, "FAIL config: ", "no source named 'alcie' (did you mean 'alice'?)"),
    ("plain-text keyring", 0, "warn keyring: keyrings.alt.file.PlaintextKeyring keeps secrets in plain text",
     "fix: unset PYTHON_KEYRING_BACKEND"),
    ("credentials file 0644", 1, "FAIL credentials file: ", "fix: chmod 600 "),
    ("keys in the environment", 0, "warn environment: AWS_ACCESS_KEY_ID (AKIA…MPLE), AWS_SECRET_ACCESS_KEY are set",
     "fix: unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY"),
    ("unknown profile wired", 1, "FAIL profile ghost: [profile ghost] in ", "fix: add ghost under `profiles:`"),
    ("role lines left", 1, "FAIL profile alice-session: ",
     "/.aws/config:3: [profile alice-session] sets role_arn, source_profile, which botocore uses before the "
     "credentials file credd writes"),
    ("state directory open", 1, ("FAIL state directory: credd refuses it (so after a restart it may send an MFA "
                                 "code again, which AWS refuses): "),
     "is open to other users (mode 777); run `chmod 700 "),
])
def test_the_command_on_a_broken_home(plaintext_keyring: Home, break_it, status, line, fix):
    extra = broken_home(plaintext_keyring, break_it)
    result = run_credd(["doctor"], plaintext_keyring, extra_env=extra)
    assert result.returncode == status, result.stdout + result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    found = [n for n, text in enumerate(lines) if text.startswith(line)]
    assert found, result.stdout
    assert fix in result.stdout
    failures = [text for text in lines if text.startswith("FAIL")]
    assert len(failures) == status, result.stdout  # nothing else in the home is broken


def test_the_command_with_a_running_daemon(daemon, live_sts):
    daemon.start()
    aws_config = daemon.home.root / ".aws" / "config"
    aws_config.parent.mkdir(mode=0o700, exist_ok=True)
    aws_config.write_text("[profile prod-admin]\ncredential_process = credd process prod-admin\n")
    daemon.wait_state("alice-session", "fresh")

    result = daemon.credd("doctor", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    findings = json.loads(result.stdout)["findings"]
    levels = {(f["level"], f["topic"]) for f in findings}
    assert {("ok", "daemon"), ("ok", "clock"), ("ok", "credentials file"), ("ok", "profile alice-session"),
            ("ok", "profile prod-admin"), ("ok", "source alice"), ("ok", "state directory")} <= levels
    # What this test machine cannot help: keyrings.alt (chosen) and no user service manager.
    assert {topic for level, topic in levels if level != "ok"} <= {"keyring", "service"}, result.stdout

    socket_dir = daemon.socket.parent
    os.chmod(socket_dir, 0o755)
    try:
        result = daemon.credd("doctor")
    finally:
        os.chmod(socket_dir, 0o700)
    assert result.returncode == 1
    assert f"FAIL socket: {socket_dir} is open to other users (mode 755); run `chmod 700 {socket_dir}`" in result.stdout
    assert "ok   daemon: credd" in result.stdout


def test_the_command_with_a_daemon_that_saw_the_clock_off(daemon, live_sts):
    live_sts.clock_offset = 10 * 60  # STS's clock 10 min ahead of this machine's, in every reply to the daemon
    daemon.start()
    daemon.wait_state("alice-session", "fresh")

    result = daemon.credd("doctor", "--json")
    assert result.returncode == 0, result.stdout + result.stderr  # a warning
    clock = [f for f in json.loads(result.stdout)["findings"] if f["topic"] == "clock"]
    # The front answers doctor's bare GET without its STS clock (Python's own 501, dated now), so the
    # probe finds the clock right, and the daemon's finding says they disagree.
    assert [f["level"] for f in clock] == ["ok", "warn"], clock
    assert re.fullmatch(r"at source alice's last STS reply, the daemon found this machine's clock (9m5\ds|10m(\ds)?) "
                        r"behind STS: AWS refuses the TOTP codes made on a clock this far off; it is within \d+ s of "
                        r"STS now, so it was set right since", clock[1]["message"]), clock
    assert "timedatectl set-ntp true" in clock[1]["fix"]


def test_the_facts_repr_shows_neither_the_environment_nor_the_file():
    facts = healthy(env={"AWS_SECRET_ACCESS_KEY": TEST_SECRET_KEY},
                    credentials=file_with(f"[p]\naws_secret_access_key = {TEST_SECRET_KEY}\n"))
    assert TEST_SECRET_KEY not in repr(facts)
    assert "uid=" in repr(facts)  # the rest is still shown


def test_a_hook_line_init_wrote_with_another_config_is_judged_against_that_config(plaintext_keyring: Home):
    """`credd init --config other.yaml --wire-aws-config` writes `credd --config OTHER process P`: the hook reads
    OTHER, so doctor must too, whichever config it checks; and its fixes carry the --config it runs with."""
    home = plaintext_keyring
    home.write_config("version: 1\nsources:\n  bob: {}\nprofiles:\n  dev:\n    source: bob\n")
    other = home.root / "other.yaml"
    init = run_credd(["--config", str(other), "init", "--source", "alice", "--mfa-serial",
                      "arn:aws:iam::111111111111:mfa/alice",
                      "--role", "prod-admin=arn:aws:iam::222222222222:role/Admin",
                      "--hook", "--wire-aws-config"], home)
    assert init.returncode == 0, init.stderr

    default = run_credd(["doctor"], home)
    assert "FAIL profile prod-admin" not in default.stdout, default.stdout
    assert re.search(rf"ok +profile prod-admin: \[profile prod-admin\] in \S+ runs `credd --config {other} process "
                     rf"prod-admin`: served with that config, not the one checked here \(`credd --config {other} "
                     r"doctor` checks it\)", default.stdout), default.stdout

    checked = run_credd(["--config", str(other), "doctor"], home)
    assert re.search(r"ok +profile prod-admin: served by credential_process", checked.stdout), checked.stdout
    assert f"fix: credd --config {other} keys set alice" in checked.stdout
    assert f"`credd --config {other} service install` (starts it now and at login)" in checked.stdout


def test_a_hook_line_naming_another_config_without_the_profile_fails_there():
    aws = AwsConfigFacts(AWS_CONFIG, True,
                         {"prod-admin": {"credential_process": "credd --config /o.yaml process prod-admin"}})
    other = {"/o.yaml": frozenset({"dev"})}
    findings = doctor.check_profiles(make_config(), awsconfig.wired_profiles(aws.profiles), ParsedCredentials(),
                                     FileFacts(CREDS, CREDS), aws, {"HOME": "/home/u"}, other)
    [finding] = [f for f in findings if f.level == "fail"]
    assert finding.message == (f"[profile prod-admin] in {AWS_CONFIG} runs `credd --config /o.yaml process "
                               "prod-admin`, but /o.yaml has no profile prod-admin")
    unreadable = doctor.check_profiles(make_config(), awsconfig.wired_profiles(aws.profiles), ParsedCredentials(),
                                       FileFacts(CREDS, CREDS), aws, {"HOME": "/home/u"}, {"/o.yaml": "/o.yaml: gone"})
    assert [f.fix for f in unreadable if f.level == "fail"] == [
        "fix it (`credd --config /o.yaml config check`), or change the line to the config you use"]


def test_doctor_fails_a_config_others_can_write(plaintext_keyring: Home):
    path = plaintext_keyring.write_config("sources:\n  alice: {}\nprofiles:\n  p: {source: alice}\n")
    path.chmod(0o666)
    result = run_credd(["doctor", "--json"], plaintext_keyring)
    assert result.returncode == 1
    config = [finding for finding in json.loads(result.stdout)["findings"] if finding["topic"] == "config"]
    assert config[0]["level"] == "fail"
    assert config[0]["message"] == (f"{path}: it is writable by group and others (mode 666), who could change which "
                                    f"program credd runs; run `chmod go-w {path}`")


def test_a_section_config_import_rewired_no_longer_shadows():
    from credd import credfile
    from credd.doctor.wiring import role_shadowing

    text = f"[profile prod-admin]\nsource_profile = base\nrole_arn = {ADMIN}\nregion = eu-west-1\n"
    config = make_config(profiles={"prod-admin": Profile("prod-admin", "alice", ADMIN, "x", None, 3600, True)})
    before = AwsConfigFacts(AWS_CONFIG, True, {"prod-admin": credfile.read_profiles(text)["profile prod-admin"]})
    assert [f.topic for f in role_shadowing(config, {}, before)] == ["profile prod-admin"]
    rewired, _ = awsconfig.rewire_text(text, {"prod-admin": True}, ["credd"], AWS_CONFIG)
    after = AwsConfigFacts(AWS_CONFIG, True, {"prod-admin": credfile.read_profiles(rewired)["profile prod-admin"]})
    assert role_shadowing(config, {}, after) == []
