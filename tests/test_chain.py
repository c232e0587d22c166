"""Role chaining and AssumeRole's options against the strict local STS: order, the 1-h cap, one session."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta

import pytest

from credd.model import Profile
from tests.fixtures_daemon import ROLE_ARN
from tests.fixtures_sts import SOURCE, role_arn
from tests.test_serve import require_aws_v2


def chained(rig, depth: int = 3, **options) -> dict[str, Profile]:
    """`link-0` assumed with alice's session, `link-1` with link-0's credentials, ... (config order reversed,
    so that order in the config cannot be what puts parents first)."""
    links = {}
    for n in range(depth):
        parent = f"link-{n - 1}" if n else None
        links[f"link-{n}"] = Profile(f"link-{n}", SOURCE, role_arn(n), f"credd-{SOURCE}", None, 3600, True,
                                     "us-east-1", parent, **(options if n == depth - 1 else {}))
    rig.config = replace(rig.config, profiles=dict(reversed(links.items())))
    return links


def callers(front) -> list[tuple[str, str]]:
    """(role ARN, the key that signed) of every AssumeRole, in the order STS received them."""
    return [(r.params["RoleArn"], r.key_id) for r in front.of("AssumeRole")]


def test_a_three_deep_chain_refreshes_in_order_inside_the_hour_with_one_session(sts_rig, sts_front, clock):
    rig = sts_rig(session_profile=False)
    chained(rig)
    engine = rig.engine()
    for _ in range(3):
        result = engine.refresh(SOURCE)
        assert result.ok and {n for n, p in result.profiles.items() if p.renewed} == {"link-0", "link-1", "link-2"}
        creds = {name: result.profiles[name].credentials for name in ("link-0", "link-1", "link-2")}
        (session_key, _, _), = sts_front.issued
        # Each link signed with the credentials of the link above it, in order: session, link-0, link-1.
        assert callers(sts_front)[-3:] == [(role_arn(0), session_key),
                                           (role_arn(1), creds["link-0"].access_key_id),
                                           (role_arn(2), creds["link-1"].access_key_id)]
        for link in creds.values():
            assert link.expiration - clock.now() <= timedelta(hours=1)
        clock.advance(45 * 60)  # 15 minutes left on every link, under refresh_before: all due again
    assert sts_front.calls == {"GetSessionToken": 1, "AssumeRole": 9}
    assert {r.params["DurationSeconds"] for r in sts_front.of("AssumeRole")} == {"3600"}


def test_a_link_asked_for_alone_is_assumed_with_its_parents_valid_credentials(sts_rig, sts_front):
    rig = sts_rig(session_profile=False)
    chained(rig)
    engine = rig.engine()
    first = engine.refresh(SOURCE)
    result = engine.refresh(SOURCE, profiles=["link-2"], force=True)
    assert {n for n, p in result.profiles.items() if p.renewed} == {"link-2"}
    assert callers(sts_front)[-1] == (role_arn(2), first.profiles["link-1"].credentials.access_key_id)
    assert sts_front.calls == {"GetSessionToken": 1, "AssumeRole": 4}


def test_a_renewed_link_renews_every_link_below_it_and_a_due_one_its_due_parents(sts_rig, sts_front, clock):
    rig = sts_rig(session_profile=False)
    chained(rig)
    engine = rig.engine()
    engine.refresh(SOURCE)
    middle = engine.refresh(SOURCE, profiles=["link-1"], force=True)
    assert {n for n, p in middle.profiles.items() if p.renewed} == {"link-1", "link-2"}
    clock.advance(45 * 60)
    leaf = engine.refresh(SOURCE, profiles=["link-2"])  # its parents are due too: renewed first
    assert [arn for arn, _ in callers(sts_front)[-3:]] == [role_arn(0), role_arn(1), role_arn(2)]
    assert {n for n, p in leaf.profiles.items() if p.renewed} == {"link-0", "link-1", "link-2"}


def test_a_failed_link_fails_the_links_below_it_and_says_which(sts_rig, sts_front):
    rig = sts_rig(session_profile=False)
    chained(rig)
    sts_front.denied_roles.add(role_arn(1))
    result = rig.engine().refresh(SOURCE)
    assert result.profiles["link-0"].renewed
    assert result.profiles["link-1"].failure.kind.value == "access_denied"
    assert "profile 'link-1', whose credentials assume this role, failed" in result.profiles["link-2"].failure.message
    assert [arn for arn, _ in callers(sts_front)] == [role_arn(0), role_arn(1)]  # none sent for link-2


def many_chains(rig, chains: int, depth: int = 3) -> list[list[str]]:
    """`chains` chains `cN-0` -> `cN-1` -> ...; each chain's role ARNs, top link first."""
    arns, profiles = [], {}
    for c in range(chains):
        arns.append([role_arn(10 * c + n) for n in range(depth)])
        for n in range(depth):
            profiles[f"c{c}-{n}"] = Profile(f"c{c}-{n}", SOURCE, arns[c][n], f"credd-{SOURCE}", None, 3600, True,
                                            "us-east-1", f"c{c}-{n - 1}" if n else None)
    rig.config = replace(rig.config, profiles=profiles)
    return arns


def test_the_links_of_many_chains_below_the_top_go_at_once_not_one_parent_after_another(sts_rig, sts_front):
    rig = sts_rig(session_profile=False)
    arns = many_chains(rig, 4)
    sts_front.latency = 0.2  # a round trip: calls overlap only when sent together
    result = rig.engine().refresh(SOURCE)
    assert result.ok and sum(p.renewed for p in result.profiles.values()) == 12
    below_top = {arn for chain in arns for arn in chain[1:]}
    # Each of these has its own parent; one parent after another, each would be alone in flight.
    assert sts_front.peak(lambda r: r.params.get("RoleArn") in below_top) >= 2
    for chain in arns:  # and still each link after the one it is assumed with
        sent = [r.params["RoleArn"] for r in sts_front.of("AssumeRole") if r.params["RoleArn"] in chain]
        assert sent == chain
    assert sts_front.calls == {"GetSessionToken": 1, "AssumeRole": 12}


def test_the_pool_bound_holds_across_parents(sts_rig, sts_front):
    rig = sts_rig(session_profile=False)
    many_chains(rig, 6, depth=2)
    sts_front.latency = 0.1
    assert rig.engine(workers=2).refresh(SOURCE).ok
    assert sts_front.peak(lambda r: r.action == "AssumeRole") == 2


def test_a_role_chained_to_the_session_profile_is_assumed_with_the_session(sts_rig, sts_front):
    rig = sts_rig()  # with alice-session, the source's session itself
    rig.config = replace(rig.config, profiles={**rig.config.profiles, "r": Profile(
        "r", SOURCE, role_arn(5), f"credd-{SOURCE}", None, 3600, True, "us-east-1", "alice-session")})
    result = rig.engine().refresh(SOURCE)
    assert result.ok and result.profiles["r"].renewed
    (session_key, _, _), = sts_front.issued
    assert callers(sts_front) == [(role_arn(5), session_key)]


def test_every_assume_role_option_reaches_sts(sts_rig, sts_front):
    rig = sts_rig(session_profile=False)
    policy = json.dumps({"Version": "2012-10-17",
                         "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]},
                        separators=(",", ":"))
    chained(rig, depth=2, source_identity="alice", tags=(("team", "platform"), ("cost", "42")),
            transitive_tags=("team",), policy_arns=("arn:aws:iam::aws:policy/ReadOnlyAccess",), policy=policy)
    assert rig.engine().refresh(SOURCE).ok
    plain, full = sts_front.of("AssumeRole")
    assert not any(k.startswith(("Tags", "TransitiveTagKeys", "PolicyArns", "Policy", "SourceIdentity"))
                   for k in plain.params)
    assert {k: v for k, v in full.params.items() if k not in ("Action", "Version", "RoleArn", "RoleSessionName",
                                                               "DurationSeconds")} == {
        "SourceIdentity": "alice",
        "Tags.member.1.Key": "team", "Tags.member.1.Value": "platform",
        "Tags.member.2.Key": "cost", "Tags.member.2.Value": "42",
        "TransitiveTagKeys.member.1": "team",
        "PolicyArns.member.1.arn": "arn:aws:iam::aws:policy/ReadOnlyAccess",
        "Policy": policy,
    }


# The config: chains resolved, options read, every mistake at its line ---------------------------------------

def parse(text: str):
    from pathlib import Path

    from credd.config import parse_config
    env = {"HOME": "/home/u", "XDG_RUNTIME_DIR": "/run/user/1000"}
    return parse_config(text, "config.yaml", Path("/home/u/config.yaml"), env, "linux", 1000)


HEAD = "sources:\n  alice: {region: eu-west-1}\nprofiles:\n  admin:\n    source: alice\n    role_arn: " \
       "arn:aws:iam::222222222222:role/Admin\n"


def role(name: str, parent: str, extra: str = "") -> str:
    return f"  {name}:\n    source_profile: {parent}\n    role_arn: arn:aws:iam::333333333333:role/{name}\n{extra}"


def test_a_chain_takes_its_roots_source_and_region():
    config = parse(HEAD + role("ops", "admin") + role("audit", "ops", "    region: us-west-2\n"))
    ops, audit = config.profiles["ops"], config.profiles["audit"]
    assert (ops.source, ops.source_profile, ops.region) == ("alice", "admin", "eu-west-1")
    assert (audit.source, audit.source_profile, audit.region) == ("alice", "ops", "us-west-2")
    assert audit.role_session_name == "credd-audit"
    assert not any("no profile uses" in w for w in config.warnings)


def test_every_option_is_read_and_the_policy_sent_packed():
    config = parse(HEAD + role("audit", "admin", (
        "    source_identity: alice\n    tags: {team: platform, cost: 42}\n    transitive_tags: [team]\n"
        "    policy_arns: [arn:aws:iam::aws:policy/ReadOnlyAccess]\n"
        "    policy:\n      Version: '2012-10-17'\n      Statement:\n        - {Effect: Allow, Action: 's3:Get*', "
        "Resource: '*'}\n")))
    audit = config.profiles["audit"]
    assert audit.source_identity == "alice" and audit.tags == (("team", "platform"), ("cost", "42"))
    assert audit.transitive_tags == ("team",) and audit.policy_arns == ("arn:aws:iam::aws:policy/ReadOnlyAccess",)
    assert audit.policy == ('{"Version":"2012-10-17",'
                            '"Statement":[{"Effect":"Allow","Action":"s3:Get*","Resource":"*"}]}')
    as_text = parse(HEAD + "    policy: '{\"Version\": \"2012-10-17\", \"Statement\": []}'\n").profiles["admin"]
    assert as_text.policy == '{"Version":"2012-10-17","Statement":[]}'


STATEMENT = '{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}'
BIG_POLICY = '{"Statement": [' + ", ".join([STATEMENT] * 40) + "]}"

BAD = [
    ("missing link", HEAD + role("audit", "amdin"), 8,
     "profiles.audit.source_profile: no profile named 'amdin' (did you mean 'admin'?); a chained role is assumed "
     "with the credentials of a profile under `profiles:`"),
    ("cycle", HEAD + role("a", "b") + role("b", "c") + role("c", "a"), 14,  # at the line that closes it
     "profiles.c.source_profile: the chain goes round in a circle (a -> b -> c -> a); one of these profiles must "
     "take `source: SOURCE` instead of `source_profile:`"),
    ("itself", HEAD + role("a", "a"), 8,
     "profiles.a.source_profile: the chain goes round in a circle (a -> a); one of these profiles must take "
     "`source: SOURCE` instead of `source_profile:`"),
    ("both", HEAD + "    source_profile: admin\n", 7,
     "profiles.admin.source_profile: a profile takes either `source:` (a source's session) or `source_profile:` "
     "(another profile's credentials), not both; remove one"),
    ("no role", HEAD + "  s:\n    source_profile: admin\n", 8,
     "profiles.s.source_profile: role chaining needs role_arn: the role assumed with that profile's credentials"),
    ("option without a role", "sources: {a: {}}\nprofiles:\n  p:\n    source: a\n    tags: {t: v}\n", 5,
     "profiles.p.tags: only applies to a role (set role_arn); a session profile lasts as long as the session "
     "(sources.a.duration)"),
    ("source identity", HEAD + "    source_identity: a b\n", 7,
     "profiles.admin.source_identity: expected 2 to 64 of letters, digits and _+=,.@-, got 'a b'"),
    ("transitive not a tag", HEAD + "    tags: {team: x}\n    transitive_tags: [team, cost]\n", 8,
     "profiles.admin.transitive_tags: 'cost' is not a key of this profile's `tags`; add it there "
     "(tags: {cost: VALUE}) or remove it here"),
    ("tag keys differing in case", HEAD + "    tags: {team: x, Team: y}\n", 7,
     "profiles.admin.tags.Team: the same tag key as 'team' (AWS ignores case in tag keys); keep one"),
    ("tag value", HEAD + "    tags: {team: [x]}\n", 7, "profiles.admin.tags.team: expected a single value, got a list"),
    ("policy arn", HEAD + "    policy_arns: [arn:aws:iam::aws:role/X]\n", 7,
     "profiles.admin.policy_arns: expected a policy ARN like arn:aws:iam::aws:policy/ReadOnlyAccess, got "
     "'arn:aws:iam::aws:role/X'"),
    ("policy not json", HEAD + "    policy: '{\"Version\": }'\n", 7,
     "profiles.admin.policy: is not valid JSON: Expecting value: line 1 column 13 (char 12)"),
    ("policy a list", HEAD + "    policy: '[]'\n", 7,
     "profiles.admin.policy: expected a policy document: a JSON object like "
     '{"Version": "2012-10-17", "Statement": [...]}'),
    ("policy too big", HEAD + f"    policy: '{BIG_POLICY}'\n", 7,
     "profiles.admin.policy: is 2335 characters as packed JSON (no whitespace); AWS takes an inline session "
     "policy of at most 2048: shorten it, or move statements into a managed policy listed in policy_arns"),
]


from credd.errors import ConfigError  # noqa: E402


@pytest.mark.parametrize(("name", "text", "line", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_chain_or_option(name, text, line, message):
    with pytest.raises(ConfigError) as caught:
        parse(text)
    assert str(caught.value) == f"config.yaml:{line}: {message}"


# The real daemon: status and credential_process for a chained profile --------------------------------------

AUDIT_ARN = "arn:aws:iam::333333333333:role/Audit"


def test_the_daemon_serves_a_chained_profile_to_the_aws_cli(daemon, live_sts):
    aws = require_aws_v2()
    daemon.home.write_config(daemon.home.config.read_text() + (
        f"  audit:\n    source_profile: prod-admin\n    role_arn: {AUDIT_ARN}\n    write: false\n"
        "    tags: {team: platform}\n"))
    daemon.start()
    row = daemon.wait_state("audit", "fresh")
    status = daemon.credd("status")
    assert status.returncode == 0 and "audit" in status.stdout, status.stderr
    (daemon.home.root / ".aws").mkdir(exist_ok=True)
    (daemon.home.root / ".aws" / "config").write_text(
        f"[profile audit]\ncredential_process = {sys.executable} -m credd process audit\nregion = us-east-1\n")
    env = dict(daemon.env, AWS_EC2_METADATA_DISABLED="true", AWS_PAGER="")
    result = subprocess.run([aws, "sts", "get-caller-identity", "--profile", "audit", "--endpoint-url",
                             live_sts.url, "--output", "json"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert ":assumed-role/Audit/" in json.loads(result.stdout)["Arn"], row
    (session_key, _, _), = live_sts.issued
    admin, audit = (next(r for r in live_sts.of("AssumeRole") if r.params["RoleArn"] == arn)
                    for arn in (ROLE_ARN, AUDIT_ARN))
    assert admin.key_id == session_key and audit.key_id not in (session_key, None)  # signed with Admin's key
    assert live_sts.requests.index(admin) < live_sts.requests.index(audit)
    assert live_sts.calls["GetSessionToken"] == 1
