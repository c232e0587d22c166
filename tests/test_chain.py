"""Role chaining and AssumeRole's options against the strict local STS: order, the 1-h cap, one session."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta

from credd.model import Profile
from tests.fixtures_sts import SOURCE, role_arn


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
    for round_ in range(3):
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
