"""The config loader: a good config resolves every default; each bad one gives its one exact message."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from credd.config import load_config, parse_config
from credd.errors import ConfigError

ENV = {"HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/1000"}

GOOD = """\
version: 1
credentials_file: ~/.aws/credentials
keyring_service: credd
refresh_before: 20m

sources:
  alice:
    mfa_serial: arn:aws:iam::111111111111:mfa/alice
    mfa: totp
    duration: 12h
    region: us-east-1
    sts_endpoint: http://127.0.0.1:5000

profiles:
  alice-session:
    source: alice
  prod-admin:
    source: alice
    role_arn: arn:aws:iam::222222222222:role/Admin
    role_session_name: alice
    external_id: optional-external-id
    duration: 1h
    write: false
"""


def parse(text: str, env=ENV, platform="linux"):
    return parse_config(textwrap.dedent(text), "config.yaml", Path("/home/u/config.yaml"), env, platform, 1000)


def test_good_config_resolves_everything():
    config = parse(GOOD)
    assert config.credentials_file == Path("/home/u/.aws/credentials")
    assert config.socket == Path("/run/user/1000/credd/credd.sock")
    assert config.refresh_before == 1200
    alice = config.sources["alice"]
    assert (alice.mfa, alice.duration, alice.region, alice.sts_endpoint) == ("totp", 43200, "us-east-1",
                                                                             "http://127.0.0.1:5000")
    session, admin = config.profiles["alice-session"], config.profiles["prod-admin"]
    assert not session.is_role and session.write and session.role_session_name == "credd-alice"
    assert admin.role_arn == "arn:aws:iam::222222222222:role/Admin"
    assert (admin.role_session_name, admin.external_id, admin.duration, admin.write) == (
        "alice", "optional-external-id", 3600, False)
    assert config.warnings == ()
    assert (session.region, admin.region) == ("us-east-1", "us-east-1")  # the source's, by default


def test_a_profile_region_is_its_own_else_its_sources():
    config = parse("""\
        sources:
          alice: {region: eu-central-1}
        profiles:
          alice-session: {source: alice}
          prod-admin: {source: alice, role_arn: "arn:aws:iam::222222222222:role/Admin", region: ap-southeast-2}
        """)
    assert config.profiles["alice-session"].region == "eu-central-1"
    assert config.profiles["prod-admin"].region == "ap-southeast-2"
    assert config.region_of("prod-admin") == "ap-southeast-2" and config.region_of("alice-session") == "eu-central-1"


def test_defaults():
    config = parse("""\
        sources:
          bob: {}
        profiles:
          bob:
            source: bob
        """)
    bob = config.sources["bob"]
    assert ((bob.mfa_serial, bob.mfa, bob.duration, bob.region, bob.sts_endpoint)
            == (None, None, 43200, "us-east-1", None))
    assert config.keyring_service == "credd" and config.refresh_before == 1200
    assert config.credentials_file == Path("/home/u/.aws/credentials")


def test_mfa_serial_alone_means_prompt():
    config = parse("""\
        sources:
          a: {mfa_serial: "arn:aws:iam::111111111111:mfa/a"}
        profiles:
          p: {source: a}
        """)
    assert config.sources["a"].mfa == "prompt"


def test_environment_decides_defaults():
    env = {"HOME": "/home/u", "AWS_SHARED_CREDENTIALS_FILE": "/srv/creds", "CREDD_SOCKET": "/tmp/c.sock"}
    config = parse("sources: {a: {}}\nprofiles: {p: {source: a}}\n", env=env)
    assert config.credentials_file == Path("/srv/creds")
    assert config.socket == Path("/tmp/c.sock")


def test_config_values_win_over_environment_defaults_but_credd_socket_wins_over_file():
    env = {"HOME": "/home/u", "AWS_SHARED_CREDENTIALS_FILE": "/srv/creds", "CREDD_SOCKET": "/tmp/env.sock",
           "CREDS": "/data"}
    config = parse("credentials_file: $CREDS/credentials\nsocket: /tmp/file.sock\n"
                   "sources: {a: {}}\nprofiles: {p: {source: a}}\n", env=env)
    assert config.credentials_file == Path("/data/credentials")
    assert config.socket == Path("/tmp/env.sock")


def test_unset_variable_in_the_environment_default_is_a_config_error():
    with pytest.raises(ConfigError, match=r"credentials_file: \$AWS_SHARED_CREDENTIALS_FILE: \$NOPE is not set"):
        parse("sources: {a: {}}\n", env={"HOME": "/h", "AWS_SHARED_CREDENTIALS_FILE": "$NOPE/creds"})


def test_default_socket_per_platform():
    text = "sources: {a: {}}\nprofiles: {p: {source: a}}\n"
    assert parse(text, env={"HOME": "/home/u"}).socket == Path("/tmp/credd-1000/credd.sock")
    assert parse(text, env={"HOME": "/Users/u"}, platform="darwin").socket == Path(
        "/Users/u/Library/Application Support/credd/credd.sock")


def test_warnings():
    config = parse("""\
        refresh_before: 10m
        sources:
          a: {}
          b: {}
        profiles:
          p: {source: a, role_arn: "arn:aws:iam::222222222222:role/R", duration: 2h}
        """)
    # Each names the file and the line, as errors do, and quotes what the user wrote.
    assert config.warnings == (
        "config.yaml:4: sources.b: no profile uses this source",
        "config.yaml:6: profiles.p.duration: 2h will be capped at 1h: AWS limits a role assumed with session "
        "credentials to one hour",
        "config.yaml:1: refresh_before: 10m is under 15m; the AWS SDKs refresh credentials with less than 15 minutes "
        "left, so they would call credd on every request for the last stretch",
    )


def test_warnings_quote_what_the_user_wrote():
    config = parse("""\
        refresh_before: 600
        sources:
          a: {}
        profiles:
          p:
            source: a
            role_arn: "arn:aws:iam::222222222222:role/R"
            duration: 7200s
        """)
    assert config.warnings == (
        "config.yaml:8: profiles.p.duration: 7200s will be capped at 1h: AWS limits a role assumed with session "
        "credentials to one hour",
        "config.yaml:1: refresh_before: 600 (seconds) is under 15m; the AWS SDKs refresh credentials with less than "
        "15 minutes left, so they would call credd on every request for the last stretch",
    )


def test_no_profiles_warning_names_the_file():
    assert parse("sources: {a: {}}\n").warnings == (
        "config.yaml: no profiles: add one under `profiles:` so that credd has something to serve",)


def test_hardware_mfa_serial_is_accepted():
    config = parse("sources:\n  a:\n    mfa_serial: GAHT12345678\nprofiles:\n  p: {source: a}\n")
    assert config.sources["a"].mfa_serial == "GAHT12345678"


def test_gov_and_china_partitions_are_accepted():
    for arn in ("arn:aws-us-gov:iam::111111111111:mfa/a", "arn:aws-cn:iam::111111111111:mfa/path/a"):
        config = parse(f"sources:\n  a:\n    mfa_serial: {arn}\nprofiles:\n  p: {{source: a}}\n")
        assert config.sources["a"].mfa_serial == arn


OK_TAIL = "profiles:\n  p:\n    source: a\n"

BAD = [
    # (name, text, line, message)
    ("empty file", "", None, "the file is empty; run `credd init` to write a starter config"),
    ("only comments", "# nothing\n", None, "the file is empty; run `credd init` to write a starter config"),
    ("yaml syntax", "sources:\n  a: {\n", 3, "YAML syntax error: expected the node content, but found '<stream end>'"),
    ("tab indent", "sources:\n\ta: {}\n", 2, "YAML syntax error: found character '\\t' that cannot start any token"),
    ("two documents", "sources: {}\n---\nsources: {}\n", 2, "YAML syntax error: but found another document"),
    ("top is a list", "- a\n- b\n", 1, "expected a mapping of `name: value` lines"),
    ("unknown top key", "sources: {a: {}}\nprofile:\n  p: {source: a}\n", 2,
     "profile: unknown key (did you mean 'profiles'?)"),
    ("unknown key, no close match", "sources: {a: {}}\nzzz: 1\n", 2,
     "zzz: unknown key (known keys: version, credentials_file, socket, keyring_service, refresh_before, sources, "
     "profiles, endpoints)"),
    ("duplicate top key", "sources: {a: {}}\nsources: {b: {}}\n", 2,
     "sources: duplicate key (first defined on line 1)"),
    ("duplicate profile", "sources: {a: {}}\nprofiles:\n  p: {source: a}\n  p: {source: a}\n", 4,
     "profiles.p: duplicate key (first defined on line 3)"),
    ("duplicate field", "sources:\n  a:\n    region: us-east-1\n    region: eu-west-1\n" + OK_TAIL, 4,
     "sources.a.region: duplicate key (first defined on line 3)"),
    ("bad version", "version: 2\nsources: {a: {}}\n", 1,
     "version: only version 1 is supported; set `version: 1`"),
    ("boolean version", "version: true\nsources: {a: {}}\n", 1,
     "version: only version 1 is supported; set `version: 1`"),
    ("no sources", OK_TAIL, None,
     "sources: is required: define at least one source (an IAM user whose key credd keeps)"),
    ("empty sources", "sources: {}\n", 1, "sources: define at least one source (an IAM user whose key credd keeps)"),
    ("sources is a list", "sources: [a]\n", 1, "sources: expected a mapping of `name: value` lines"),
    ("bad source name", "sources:\n  'al ice': {}\n", 2,
     "sources.al ice: a name may have up to 64 letters, digits and _.@+=,- and must start with a letter or digit"),
    ("bracket in profile name", "sources: {a: {}}\nprofiles:\n  'p]': {source: a}\n", 3,
     "profiles.p]: a name may have up to 64 letters, digits and _.@+=,- and must start with a letter or digit"),
    ("unknown source key", "sources:\n  a:\n    mfa_seriall: x\n" + OK_TAIL, 3,
     "sources.a.mfa_seriall: unknown key (did you mean 'mfa_serial'?)"),
    ("totp without serial", "sources:\n  a:\n    mfa: totp\n" + OK_TAIL, 3,
     "sources.a.mfa: mfa: totp needs mfa_serial, the ARN of the MFA device (arn:aws:iam::ACCOUNT:mfa/NAME); "
     "remove `mfa` for a source without MFA"),
    ("unknown mfa method",
     "sources:\n  a:\n    mfa_serial: arn:aws:iam::111111111111:mfa/a\n    mfa: sms\n" + OK_TAIL, 4,
     "sources.a.mfa: expected one of totp, command, prompt, got 'sms'"),
    ("command without mfa_command",
     "sources:\n  a:\n    mfa_serial: arn:aws:iam::111111111111:mfa/a\n    mfa: command\n" + OK_TAIL, 4,
     "sources.a.mfa: mfa: command needs mfa_command, the program that prints a code, as a list: "
     "[ykman, oath, accounts, code, --single, aws]"),
    ("mfa_command with totp",
     "sources:\n  a:\n    mfa_serial: arn:aws:iam::111111111111:mfa/a\n    mfa: totp\n    mfa_command: [x]\n"
     + OK_TAIL, 5, "sources.a.mfa_command: is only used with `mfa: command` (this source has mfa: totp)"),
    ("mfa_command as a string",
     "sources:\n  a:\n    mfa_serial: arn:aws:iam::111111111111:mfa/a\n    mfa: command\n    mfa_command: ykman oath\n"
     + OK_TAIL, 5, "sources.a.mfa_command: expected a list of arguments (credd runs it without a shell), like "
     "[ykman, oath, accounts, code, --single, aws]"),
    ("bad serial", "sources:\n  a:\n    mfa_serial: alice\n" + OK_TAIL, 3,
     "sources.a.mfa_serial: expected the MFA device's ARN, like arn:aws:iam::111111111111:mfa/alice, got 'alice'"),
    ("serial with a 5-digit account", "sources:\n  a:\n    mfa_serial: arn:aws:iam::12345:mfa/alice\n" + OK_TAIL, 3,
     "sources.a.mfa_serial: expected the MFA device's ARN, like arn:aws:iam::111111111111:mfa/alice, "
     "got 'arn:aws:iam::12345:mfa/alice'"),
    ("serial of a role", "sources:\n  a:\n    mfa_serial: arn:aws:iam::111111111111:role/alice\n" + OK_TAIL, 3,
     "sources.a.mfa_serial: expected the MFA device's ARN, like arn:aws:iam::111111111111:mfa/alice, "
     "got 'arn:aws:iam::111111111111:role/alice'"),
    ("serial in another service", "sources:\n  a:\n    mfa_serial: arn:aws:sts::111111111111:mfa/alice\n" + OK_TAIL,
     3, "sources.a.mfa_serial: expected the MFA device's ARN, like arn:aws:iam::111111111111:mfa/alice, "
     "got 'arn:aws:sts::111111111111:mfa/alice'"),
    ("serial that is an account id", "sources:\n  a:\n    mfa_serial: '111111111111'\n" + OK_TAIL, 3,
     "sources.a.mfa_serial: expected the MFA device's ARN, like arn:aws:iam::111111111111:mfa/alice, "
     "got '111111111111'"),
    ("source key at the top level", "sts_endpoint: https://sts.amazonaws.com\nsources: {a: {}}\n", 1,
     "sts_endpoint: unknown key here: it belongs under sources.NAME (the source it is for)"),
    ("source and profile key at the top level", "duration: 1h\nsources: {a: {}}\n", 1,
     "duration: unknown key here: it belongs under sources.NAME (the source it is for) or under profiles.NAME "
     "(the profile it is for)"),
    ("top-level key under a source", "sources:\n  a:\n    keyring_service: x\n" + OK_TAIL, 3,
     "sources.a.keyring_service: unknown key here: it belongs at the top level"),
    ("profile key under a source", "sources:\n  a:\n    role_arn: arn:aws:iam::222222222222:role/R\n" + OK_TAIL, 3,
     "sources.a.role_arn: unknown key here: it belongs under profiles.NAME (the profile it is for)"),
    ("source key under a profile", "sources: {a: {}}\nprofiles:\n  p:\n    source: a\n    mfa: totp\n", 5,
     "profiles.p.mfa: unknown key here: it belongs under sources.a (the source it is for)"),
    ("session too short", "sources:\n  a:\n    duration: 10m\n" + OK_TAIL, 3,
     "sources.a.duration: 10m is out of range: GetSessionToken takes 15m to 36h"),
    ("session too long", "sources:\n  a:\n    duration: 37h\n" + OK_TAIL, 3,
     "sources.a.duration: 37h is out of range: GetSessionToken takes 15m to 36h"),
    ("session too long, as the user wrote it", "sources:\n  a:\n    duration: 48h\n" + OK_TAIL, 3,
     "sources.a.duration: 48h is out of range: GetSessionToken takes 15m to 36h"),
    ("session too long, in days", "sources:\n  a:\n    duration: 2d\n" + OK_TAIL, 3,
     "sources.a.duration: 2d is out of range: GetSessionToken takes 15m to 36h"),
    ("session too long, in seconds", "sources:\n  a:\n    duration: 200000\n" + OK_TAIL, 3,
     "sources.a.duration: 200000 (seconds) is out of range: GetSessionToken takes 15m to 36h"),
    ("refresh_before zero", "refresh_before: 0s\nsources: {a: {}}\n", 1,
     "refresh_before: 0s is out of range: expected 1s to 36h"),
    ("duration nonsense", "sources:\n  a:\n    duration: soon\n" + OK_TAIL, 3,
     "sources.a.duration: expected a duration like 90s, 20m or 12h, got 'soon'"),
    ("duration boolean", "sources:\n  a:\n    duration: yes\n" + OK_TAIL, 3,
     "sources.a.duration: expected a duration like 90s, 20m or 12h, got True"),
    ("bad region", "sources:\n  a:\n    region: mars\n" + OK_TAIL, 3,
     "sources.a.region: expected an AWS region like us-east-1, got 'mars'"),
    ("bad profile region", "sources: {a: {}}\nprofiles:\n  p:\n    source: a\n    region: mars\n", 5,
     "profiles.p.region: expected an AWS region like us-east-1, got 'mars'"),
    ("http endpoint not local", "sources:\n  a:\n    sts_endpoint: http://sts.example.com\n" + OK_TAIL, 3,
     "sources.a.sts_endpoint: plain http is only allowed to this machine (localhost); use https://sts.example.com"),
    ("endpoint not a url", "sources:\n  a:\n    sts_endpoint: sts.amazonaws.com\n" + OK_TAIL, 3,
     "sources.a.sts_endpoint: expected a URL like https://sts.us-east-1.amazonaws.com, got 'sts.amazonaws.com'"),
    ("missing profile source", "sources: {a: {}}\nprofiles:\n  p:\n    write: true\n", 3,
     "profiles.p.source: is required: name the source (under `sources:`) this profile uses, or the profile whose "
     "credentials assume its role (`source_profile:`)"),
    ("profile names a missing source", "sources:\n  alice: {}\nprofiles:\n  prod-admin:\n    source: alcie\n", 5,
     "profiles.prod-admin.source: no source named 'alcie' (did you mean 'alice'?)"),
    ("bad role arn", "sources: {a: {}}\nprofiles:\n  p:\n    source: a\n    role_arn: Admin\n", 5,
     "profiles.p.role_arn: expected a role ARN like arn:aws:iam::222222222222:role/Admin, got 'Admin'"),
    ("role duration too long",
     "sources: {a: {}}\nprofiles:\n  p:\n    source: a\n    role_arn: arn:aws:iam::222222222222:role/R\n"
     "    duration: 13h\n", 6, "profiles.p.duration: 13h is out of range: AssumeRole takes 15m to 12h"),
    ("role-only key on a session profile", "sources: {a: {}}\nprofiles:\n  p:\n    source: a\n    duration: 1h\n", 5,
     "profiles.p.duration: only applies to a role (set role_arn); a session profile lasts as long as the session "
     "(sources.a.duration)"),
    ("write not a bool", "sources: {a: {}}\nprofiles:\n  p:\n    source: a\n    write: maybe\n", 5,
     "profiles.p.write: expected true or false, got 'maybe'"),
    ("refresh_before too long",
     "refresh_before: 2h\nsources: {a: {}}\nprofiles:\n"
     "  p: {source: a, role_arn: 'arn:aws:iam::222222222222:role/R'}\n",
     1, "refresh_before: 2h is not shorter than profiles.p.duration (1h), so credd would refresh without pause; "
     "make it shorter"),
    ("relative credentials file", "credentials_file: creds\nsources: {a: {}}\n", 1,
     "credentials_file: creds is relative; give an absolute path or one starting with ~/"),
    ("unset variable", "credentials_file: $NOPE/creds\nsources: {a: {}}\n", 1,
     "credentials_file: $NOPE is not set in the environment"),
    ("socket too long", f"socket: /tmp/{'s' * 120}.sock\nsources: {{a: {{}}}}\n", 1,
     f"socket: /tmp/{'s' * 120}.sock is 130 bytes long, but a Unix socket path may have at most 107 here; "
     "set `socket:` (or $CREDD_SOCKET) to a shorter path"),
    ("python tag", "sources: !!python/object:os.system {}\n", 1,
     "sources: the YAML tag tag:yaml.org,2002:python/object:os.system is not supported here"),
    ("python tag scalar", "version: !!python/name:os.system ''\nsources: {a: {}}\n", 1,
     "version: cannot read this value (could not determine a constructor for the tag "
     "'tag:yaml.org,2002:python/name:os.system')"),
    ("merge key", "base: &b {region: us-east-1}\nsources:\n  a:\n    <<: *b\n", 1,
     "base: unknown key (known keys: version, credentials_file, socket, keyring_service, refresh_before, sources, "
     "profiles, endpoints)"),
    ("non-string key", "sources: {a: {}}\n1: x\n", 2, "(top level): keys must be names, got 1"),
    ("keyring service", "keyring_service: ''\nsources: {a: {}}\n", 1, "keyring_service: not a valid value, got ''"),
]


@pytest.mark.parametrize("name, text, line, message", BAD, ids=[case[0] for case in BAD])
def test_bad_config(name, text, line, message):
    with pytest.raises(ConfigError) as caught:
        parse(text)
    where = f"config.yaml:{line}" if line else "config.yaml"
    assert str(caught.value) == f"{where}: {message}"


def test_merge_key_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"config.yaml:3: sources.a: YAML merge keys \(<<\) are not supported"):
        parse("sources:\n  a:\n    <<: {region: us-east-1}\n")


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(ConfigError, match=r"nested too deeply|YAML"):
        parse("sources: " + "[" * 100000)


def test_file_errors(tmp_path):
    def load(path):
        return load_config(path, ENV, "linux", 1000)

    with pytest.raises(ConfigError, match="no such file; run `credd init`"):
        load(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError) as missing:  # `credd --config PATH ...`: init must write that file
        load_config(tmp_path / "my config.yaml", ENV, "linux", 1000, hint_config=str(tmp_path / "my config.yaml"))
    assert f"run `credd --config '{tmp_path}/my config.yaml' init` to write one" in str(missing.value)
    (tmp_path / "empty.yaml").write_text("# nothing yet\n")
    with pytest.raises(ConfigError) as empty:
        load_config(tmp_path / "empty.yaml", ENV, "linux", 1000, hint_config=str(tmp_path / "empty.yaml"))
    assert f"run `credd --config {tmp_path}/empty.yaml init` to write a starter config" in str(empty.value)
    with pytest.raises(ConfigError, match="is a directory"):
        load(tmp_path)
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"sources:\n  a: {}\n\xff\xfe\n")
    with pytest.raises(ConfigError, match=r"binary.yaml:3: is not valid UTF-8"):
        load(binary)
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"#" * (2 << 20))
    with pytest.raises(ConfigError, match="larger than"):
        load(huge)


GOOD_TEXT = "sources: {a: {}}\nprofiles: {p: {source: a}}\n"


@pytest.mark.parametrize("file_mode, dir_mode, message", [
    (0o664, 0o700, "{file}: it is writable by its group (mode 664), who could change which program credd runs; "
                   "run `chmod go-w {file}`"),
    (0o646, 0o700, "{file}: it is writable by others (mode 646), who could change which program credd runs; "
                   "run `chmod go-w {file}`"),
    (0o600, 0o777, "{file}: its directory {dir} is writable by group and others (mode 777), who could change which "
                   "program credd runs; run `chmod go-w {dir}`"),
])
def test_a_config_others_can_change_is_refused(tmp_path, file_mode, dir_mode, message):
    directory = tmp_path / "conf"
    directory.mkdir()
    path = directory / "config.yaml"
    path.write_text(GOOD_TEXT)
    path.chmod(file_mode)
    directory.chmod(dir_mode)
    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV, "linux", os.getuid())
    assert str(caught.value) == message.format(file=path, dir=directory)


def test_a_config_of_another_user_is_refused_and_root_owned_is_fine(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(GOOD_TEXT)
    path.chmod(0o644)
    if os.geteuid() == 0:  # root gives it away; else the reader plays a user who is neither the owner nor root
        os.chown(path, 4242, -1)
        reader = 0
    else:
        reader = path.stat().st_uid + 4242
    owner = path.stat().st_uid
    with pytest.raises(ConfigError) as caught:
        load_config(path, ENV, "linux", reader)
    assert str(caught.value) == (f"{path}: it belongs to uid {owner}, not to you (uid {reader}) or root; "
                                 f"whoever owns it decides what credd runs. Run `sudo chown {reader} {path}`")
    if os.geteuid() == 0:
        os.chown(path, 0, -1)
        assert load_config(path, ENV, "linux", 1000).sources  # root's config, read by uid 1000


def test_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "config.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match=r"config.yaml: is a named pipe \(FIFO\), not a config file"):
        load_config(fifo, ENV, "linux", os.getuid())
