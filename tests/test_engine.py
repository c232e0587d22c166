"""The engine against a local STS: one MFA code for many roles, restarts, code windows, every error class."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import replace
from datetime import timedelta

import pytest

from credd.model import AccessKey, FailureKind, Profile, Secret
from credd.store import Store, select_backend
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED
from tests.fixtures_sts import SERIAL, SOURCE, role_arn

OTHER_SEED = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


def renewed(result) -> set[str]:
    return {name for name, profile in result.profiles.items() if profile.renewed}


def failures(result) -> dict[str, FailureKind]:
    return {name: p.failure.kind for name, p in result.profiles.items() if p.failure is not None}


# One code, many roles --------------------------------------------------------------------

def test_one_source_and_twenty_roles_take_one_session(sts_rig, sts_front, clock):
    rig = sts_rig(roles=20)
    result = rig.engine().refresh(SOURCE)
    assert result.ok and result.session_from == "sts" and result.retry_after is None
    assert renewed(result) == set(rig.config.profiles)
    assert sts_front.calls == {"GetSessionToken": 1, "AssumeRole": 20}
    (session_key, _, _), = sts_front.issued
    assert {r.key_id for r in sts_front.of("AssumeRole")} == {session_key}  # roles from the session, not the key
    assert {r.params["RoleArn"] for r in sts_front.of("AssumeRole")} == {role_arn(n) for n in range(20)}
    assert result.profiles["alice-session"].credentials.access_key_id == session_key
    role = result.profiles["role-07"].credentials
    assert abs(role.expiration - clock.now() - timedelta(hours=1)) < timedelta(seconds=1)
    assert clock.sleeps == []  # the first code of a window needs no wait


def test_fresh_profiles_cost_nothing_and_due_roles_reuse_the_session(sts_rig, sts_front, clock):
    rig = sts_rig(roles=3)
    engine = rig.engine()
    engine.refresh(SOURCE)
    again = engine.refresh(SOURCE)
    assert renewed(again) == set() and again.ok
    assert sts_front.calls == {"GetSessionToken": 1, "AssumeRole": 3}
    clock.advance(45 * 60)  # the roles have 15 minutes left, under refresh_before (20m); the session has hours
    later = engine.refresh(SOURCE)
    assert renewed(later) == {"role-00", "role-01", "role-02"} and later.session_from == "memory"
    assert sts_front.calls == {"GetSessionToken": 1, "AssumeRole": 6}


def test_force_renews_every_profile_with_the_same_session(sts_rig, sts_front):
    engine = sts_rig(roles=2).engine()
    engine.refresh(SOURCE)
    result = engine.refresh(SOURCE, force=True)
    assert renewed(result) == {"alice-session", "role-00", "role-01"}
    assert sts_front.calls == {"GetSessionToken": 1, "AssumeRole": 4}


def test_only_the_named_profiles(sts_rig, sts_front):
    result = sts_rig(roles=3).engine().refresh(SOURCE, profiles=["role-01"])
    assert set(result.profiles) == {"role-01"} and sts_front.calls == {"GetSessionToken": 1, "AssumeRole": 1}


def test_long_role_durations_are_capped_at_an_hour_and_said_once(sts_rig, sts_front, caplog):
    caplog.set_level(logging.INFO, "credd")
    engine = sts_rig(roles=2, role_duration=4 * 3600).engine()
    assert engine.refresh(SOURCE).ok
    engine.refresh(SOURCE, force=True)
    assert {r.params["DurationSeconds"] for r in sts_front.of("AssumeRole")} == {"3600"}
    capped = [r for r in caplog.records if "capped at 3600 s" in r.getMessage()]
    assert sorted(r.getMessage().split()[1].rstrip(":") for r in capped) == ["role-00", "role-01"]


def test_a_source_without_mfa(sts_rig, sts_front):
    result = sts_rig(roles=1, mfa=None).engine().refresh(SOURCE)
    assert result.ok and "SerialNumber" not in sts_front.of("GetSessionToken")[0].params


# Restarts and the session cache ------------------------------------------------------------

def test_a_restart_within_the_session_needs_no_code_and_no_get_session_token(sts_rig, sts_front, clock,
                                                                              plaintext_keyring):
    rig = sts_rig(backend=select_backend(plaintext_keyring.env).backend, roles=5)
    rig.engine().refresh(SOURCE)
    clock.advance(3 * 3600)
    result = rig.engine().refresh(SOURCE)  # a new engine: credd restarted
    assert result.ok and result.session_from == "keyring"
    assert sts_front.calls == {"GetSessionToken": 1, "AssumeRole": 10}
    assert clock.sleeps == []


def test_a_restart_after_the_session_expired_takes_a_new_one(sts_rig, sts_front, clock):
    rig = sts_rig(roles=1)
    rig.engine().refresh(SOURCE)
    clock.advance(12 * 3600 - 10 * 60)  # ten minutes left: under refresh_before
    result = rig.engine().refresh(SOURCE)
    assert result.ok and result.session_from == "sts" and sts_front.count("GetSessionToken") == 2


def test_the_cached_session_holds_what_a_restart_needs(sts_rig, clock):
    rig = sts_rig()
    rig.engine().refresh(SOURCE)
    cached = json.loads(rig.store.get_session(SOURCE).reveal())
    assert cached["SourceKeyId"] == TEST_KEY_ID and cached["MfaSerial"] == SERIAL
    assert cached["AccessKeyId"].startswith("ASIA") and cached["Expiration"].endswith("Z")


def test_a_session_made_with_another_key_is_not_reused(sts_rig, sts_front):
    rig = sts_rig()
    rig.engine().refresh(SOURCE)
    rig.store.set_access_key(SOURCE, AccessKey("AKIAOTHERKEYEXAMPLE1", Secret(TEST_SECRET_KEY)))
    result = rig.engine().refresh(SOURCE)
    assert result.ok and result.session_from == "sts" and sts_front.count("GetSessionToken") == 2


def test_a_damaged_cached_session_is_ignored(sts_rig, sts_front, caplog):
    rig = sts_rig()
    rig.store.set_session(SOURCE, Secret('{"version": 1, "AccessKeyId": 5}'))
    assert rig.engine().refresh(SOURCE).ok
    assert "damaged session" in caplog.text and sts_front.count("GetSessionToken") == 1


def test_a_revoked_cached_session_is_replaced(sts_rig, sts_front, clock):
    rig = sts_rig(roles=3)
    rig.engine().refresh(SOURCE)
    sts_front.revoke(sts_front.issued[0][0])  # e.g. "Revoke active sessions" in the IAM console
    result = rig.engine().refresh(SOURCE)
    assert result.ok and result.session_from == "sts"
    assert sts_front.count("GetSessionToken") == 2 and sts_front.count("AssumeRole") == 3 + 3 + 3


# A reload ----------------------------------------------------------------------------------

def reloaded(rig, **changes):
    """An engine for the config `rig.config` would be with `changes`, as a reload builds it."""
    rig.config = replace(rig.config, **changes)
    return rig.engine()


def test_a_reload_takes_over_what_is_valid_for_unchanged_profiles(sts_rig, sts_front, clock):
    rig = sts_rig(roles=3)
    old = rig.engine()
    first = old.refresh(SOURCE)
    profiles = dict(rig.config.profiles)
    profiles["role-01"] = replace(profiles["role-01"], role_arn=role_arn(7))  # another role: other credentials
    profiles["role-02"] = replace(profiles["role-02"], external_id="changed")
    new = reloaded(rig, profiles=profiles)
    assert new.take_over(old) == {"alice-session", "role-00"}
    for name in ("alice-session", "role-00"):
        assert new.credentials(name) == first.profiles[name].credentials
    assert new.credentials("role-01") is None and new.credentials("role-02") is None
    result = new.refresh(SOURCE)  # only the changed roles, with the session taken over: no code, no keyring
    assert result.ok and result.session_from == "memory" and renewed(result) == {"role-01", "role-02"}
    assert sts_front.calls == {"GetSessionToken": 1, "AssumeRole": 5}
    assert {r.params["RoleArn"] for r in sts_front.of("AssumeRole")[3:]} == {role_arn(7), role_arn(2)}


def test_a_reload_takes_over_nothing_expired_nor_removed(sts_rig, clock):
    rig = sts_rig(roles=2)
    old = rig.engine()
    old.refresh(SOURCE)
    clock.advance(3600 - 30)  # the roles have 30 s left: no longer servable; the session has hours
    profiles = {name: p for name, p in rig.config.profiles.items() if name != "alice-session"}
    new = reloaded(rig, profiles=profiles)
    assert new.take_over(old) == set()
    assert new.credentials("role-00") is None and new.credentials("alice-session") is None
    assert new.refresh(SOURCE).session_from == "memory"  # the session itself still carries over


@pytest.mark.parametrize("change", ["duration", "mfa_serial", "region", "keyring_service"])
def test_a_reload_takes_over_nothing_from_a_changed_source(sts_rig, sts_front, change):
    rig = sts_rig(roles=1)
    old = rig.engine()
    old.refresh(SOURCE)
    source = rig.config.sources[SOURCE]
    if change == "keyring_service":
        new = reloaded(rig, keyring_service="another-service")
    else:
        value = {"duration": 6 * 3600, "mfa_serial": SERIAL + "-2", "region": "eu-west-1"}[change]
        new = reloaded(rig, sources={SOURCE: replace(source, **{change: value})})
    assert new.take_over(old) == set()
    assert new.credentials("role-00") is None and new.credentials("alice-session") is None
    assert new.refresh(SOURCE).session_from != "memory"  # the keyring's, STS's, or none


def test_a_reload_that_changes_only_how_codes_are_had_keeps_the_session(sts_rig, sts_front, device_command):
    rig = sts_rig(roles=1)
    old = rig.engine()
    old.refresh(SOURCE)
    source = replace(rig.config.sources[SOURCE], mfa="command", mfa_command=device_command)
    new = reloaded(rig, sources={SOURCE: source})
    assert new.take_over(old) == {"alice-session", "role-00"}
    assert new.refresh(SOURCE, force=True).session_from == "memory"
    assert sts_front.count("GetSessionToken") == 1


# Never reuse a TOTP code ------------------------------------------------------------------

def test_two_sessions_in_one_window_wait_for_the_next_code(sts_rig, sts_front, clock):
    engine = sts_rig().engine()
    engine.refresh(SOURCE)
    result = engine.refresh(SOURCE, new_session=True)
    assert result.ok
    assert clock.sleeps == [25.0]  # from 5 s into the window to the start of the next
    windows = [window for _, window, _ in sts_front.accepted_codes]
    assert windows[1] == windows[0] + 1 and sts_front.count("GetSessionToken") == 2  # nothing refused


def test_the_window_used_survives_a_restart(sts_rig, sts_front, clock):
    rig = sts_rig()
    rig.engine().refresh(SOURCE)
    assert rig.engine().refresh(SOURCE, new_session=True).ok
    assert clock.sleeps == [25.0] and sts_front.count("GetSessionToken") == 2


def test_a_code_someone_else_used_is_retried_once_in_the_next_window(sts_rig, sts_front, clock, caplog):
    sts_front.burn(SERIAL, clock.timestamp())  # the AWS CLI sent this window's code a moment ago
    result = sts_rig(roles=1).engine().refresh(SOURCE)
    assert result.ok and clock.sleeps == [25.0]
    assert sts_front.count("GetSessionToken") == 2
    assert "AWS rejected the MFA code; trying once more" in caplog.text


def test_a_reply_lost_after_aws_took_the_code_costs_one_window(sts_rig, sts_front, clock):
    sts_front.inject("drop_after", "GetSessionToken")  # botocore's retry resends the code: refused as reused
    result = sts_rig().engine().refresh(SOURCE)
    assert result.ok and clock.sleeps == [25.0]
    assert sts_front.count("GetSessionToken") == 3


def test_a_wrong_seed_fails_after_two_codes_and_says_what_to_fix(sts_rig, sts_front, clock):
    rig = sts_rig(roles=2)
    rig.store.set_totp_seed(SOURCE, Secret(OTHER_SEED))
    result = rig.engine().refresh(SOURCE)
    assert failures(result) == dict.fromkeys(rig.config.profiles, FailureKind.MFA_INVALID)
    assert "credd totp set alice" in result.failure.message and not result.failure.retryable
    assert result.retry_after is None  # retrying alone would not help
    assert sts_front.count("GetSessionToken") == 2 and sts_front.count("AssumeRole") == 0
    assert all(p.credentials is None for p in result.profiles.values())


def test_mfa_command_codes(sts_rig, sts_front, clock, device_command):
    engine = sts_rig(roles=1, mfa="command", mfa_command=device_command).engine()
    assert engine.refresh(SOURCE).ok
    assert engine.refresh(SOURCE, new_session=True).ok
    assert clock.sleeps == [25.0] and sts_front.count("GetSessionToken") == 2


def test_mfa_command_codes_aws_rejects(sts_rig, sts_front, clock):
    import sys

    wrong = (sys.executable, "-c", "print('000000')")
    result = sts_rig(mfa="command", mfa_command=wrong).engine().refresh(SOURCE)
    assert result.failure.kind is FailureKind.MFA_INVALID and "printed by mfa_command" in result.failure.message
    assert sts_front.count("GetSessionToken") == 2 and clock.sleeps == [25.0]


def test_prompt_waits_for_a_code_and_asks_again_after_a_rejection(sts_rig, sts_front, clock):
    import pyotp

    rig = sts_rig(roles=1, mfa="prompt")
    engine = rig.engine()
    waiting = engine.refresh(SOURCE)
    assert waiting.failure.kind is FailureKind.MFA_NEEDED and "credd mfa alice" in waiting.failure.message
    assert sts_front.calls == {} and waiting.retry_after is None

    rig.inbox.put(SOURCE, pyotp.TOTP(OTHER_SEED).at(clock.timestamp()))
    rejected = engine.refresh(SOURCE)
    assert rejected.failure.kind is FailureKind.MFA_INVALID and "credd mfa alice" in rejected.failure.message
    assert sts_front.count("GetSessionToken") == 1  # no code of its own to retry with

    rig.inbox.put(SOURCE, pyotp.TOTP(TEST_TOTP_SEED).at(clock.timestamp()))
    assert engine.refresh(SOURCE).ok and clock.sleeps == []


# The other errors ----------------------------------------------------------------------------

def test_a_refused_key_stops_and_says_keys_set(sts_rig, sts_front):
    sts_front.revoke(TEST_KEY_ID)
    result = sts_rig(roles=2).engine().refresh(SOURCE)
    assert result.failure.kind is FailureKind.KEY_INVALID and "credd keys set alice" in result.failure.message
    assert set(failures(result).values()) == {FailureKind.KEY_INVALID}
    assert result.retry_after is None and sts_front.calls == {"GetSessionToken": 1}


def test_a_missing_key_says_keys_set_and_calls_nothing(sts_rig, sts_front):
    rig = sts_rig()
    rig.store.delete(SOURCE, "access-key")
    result = rig.engine().refresh(SOURCE)
    assert result.failure.kind is FailureKind.KEY_MISSING and "credd keys set alice" in result.failure.message
    assert sts_front.calls == {}


HINT_CONFIG = "/home/you/my config.yaml"  # the daemon runs as `credd --config '/home/you/my config.yaml' serve`
WITH_CONFIG = "credd --config '/home/you/my config.yaml'"


def test_the_commands_a_refresh_names_carry_the_daemons_config(sts_rig, sts_front):
    rig = sts_rig(roles=1)
    rig.store.delete(SOURCE, "access-key")
    missing = rig.engine(hint_config=HINT_CONFIG).refresh(SOURCE).failure.message
    assert missing.endswith(f"store it with `{WITH_CONFIG} keys set alice`")
    rig.store.set_access_key(SOURCE, AccessKey(TEST_KEY_ID, Secret(TEST_SECRET_KEY)))
    sts_front.revoke(TEST_KEY_ID)  # refused by STS: the sts call carries the config too
    refused = rig.engine(hint_config=HINT_CONFIG).refresh(SOURCE).failure
    assert refused.kind is FailureKind.KEY_INVALID and f"`{WITH_CONFIG} keys set alice`" in refused.message


def test_a_clock_warning_names_doctor_with_the_daemons_config(sts_rig, sts_front):
    sts_front.clock_offset = 10 * 60
    engine = sts_rig(roles=1).engine(hint_config=HINT_CONFIG)
    assert engine.refresh(SOURCE).ok
    assert engine.clock_warning(SOURCE) == ("this machine's clock is 10 min behind STS's; "
                                            f"check timedatectl/NTP (`{WITH_CONFIG} doctor`)")


def test_a_locked_keyring_is_a_retryable_failure(sts_rig, sts_front):
    class Locked:
        def get_password(self, service, user):
            raise RuntimeError("the collection is locked")

    rig = sts_rig()
    result = rig.engine(store=Store(Locked(), "credd-test")).refresh(SOURCE)
    assert result.failure.kind is FailureKind.KEYRING
    assert result.failure.retryable and "locked" in result.failure.message and result.retry_after is not None


def test_access_denied_fails_one_role_and_the_others_go_on(sts_rig, sts_front):
    sts_front.denied_roles.add(role_arn(3))
    result = sts_rig(roles=5).engine().refresh(SOURCE)
    assert failures(result) == {"role-03": FailureKind.ACCESS_DENIED}
    assert renewed(result) == set(result.profiles) - {"role-03"}
    assert "trust policy" in result.profiles["role-03"].failure.message
    assert sts_front.count("AssumeRole") == 5  # not retried


def test_three_throttled_replies_in_a_row_within_one_refresh(sts_rig, sts_front, retry_sleeps):
    sts_front.inject("throttle", "GetSessionToken", times=3)
    sts_front.inject("throttle", "AssumeRole", times=3)
    result = sts_rig(roles=1).engine().refresh(SOURCE)
    assert result.ok and len(retry_sleeps) == 6
    assert sts_front.calls == {"GetSessionToken": 4, "AssumeRole": 4}


def test_network_down_keeps_serving_what_is_valid_and_backs_off(sts_rig, sts_front, clock):
    engine = sts_rig(roles=2).engine(jitter=lambda: 1.0)
    first = engine.refresh(SOURCE)
    clock.advance(45 * 60)
    sts_front.inject("drop", times=float("inf"))

    down = engine.refresh(SOURCE)
    assert set(failures(down).values()) == {FailureKind.NETWORK}
    assert set(failures(down)) == {"role-00", "role-01"}  # the session profile is still fresh
    for name in ("role-00", "role-01"):
        assert down.profiles[name].credentials == first.profiles[name].credentials  # 15 minutes left: served
    assert down.retry_after == 15.0
    calls = sts_front.count("AssumeRole")
    held = engine.refresh(SOURCE)  # backing off: what is valid is served, STS is left alone
    assert held.retry_after == 15.0 and sts_front.count("AssumeRole") == calls
    assert held.profiles["role-00"].credentials == first.profiles["role-00"].credentials
    clock.advance(15)
    assert engine.refresh(SOURCE).retry_after == 30.0  # backoff grows
    assert engine.trouble(SOURCE).failures_in_a_row == 2

    clock.advance(15 * 60)  # the roles expire
    gone = engine.refresh(SOURCE)
    assert gone.profiles["role-00"].credentials is None and engine.credentials("role-00") is None
    assert engine.credentials("alice-session") is not None

    sts_front.clear_faults()
    clock.advance(60)
    back = engine.refresh(SOURCE)
    assert back.ok and back.retry_after is None and engine.trouble(SOURCE) is None
    sts_front.inject("drop", times=float("inf"))
    clock.advance(45 * 60)
    assert engine.refresh(SOURCE).retry_after == 15.0  # the count started over


def test_a_hostile_reply_fails_that_profile_only(sts_rig, sts_front):
    sts_front.inject("rewrite", "AssumeRole", rewrite=lambda body: body.replace(b"<SessionToken>", b"<Nope>"))
    result = sts_rig(roles=1).engine().refresh(SOURCE)
    assert failures(result) == {"role-00": FailureKind.BAD_REPLY}
    assert result.profiles["alice-session"].renewed and result.retry_after is not None


def test_unknown_source_is_a_usage_error(sts_rig):
    from credd.errors import UsageError

    with pytest.raises(UsageError, match="no source named 'bob'"):
        sts_rig().engine().refresh("bob")


# Secrets ------------------------------------------------------------------------------------

def test_no_secret_code_or_reply_in_the_log(sts_rig, sts_front, clock, caplog):
    caplog.set_level(logging.DEBUG)
    engine = sts_rig(roles=3).engine()
    sts_front.burn(SERIAL, clock.timestamp())  # a rejected code and a retry: the most logging
    results = [engine.refresh(SOURCE), engine.refresh(SOURCE, force=True)]
    assert all(r.ok for r in results)
    secrets = {TEST_SECRET_KEY, TEST_TOTP_SEED}
    secrets |= {code for _, _, code in sts_front.accepted_codes}
    secrets |= {value for _, secret, token in sts_front.issued for value in (secret, token)}
    for result in results:
        for profile in result.profiles.values():
            secrets |= {profile.credentials.secret_access_key.reveal(), profile.credentials.session_token.reveal()}
    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    assert not [s for s in secrets if s in text]
    assert "new session ASIA" not in text and "Credentials(ASIA…" in text  # key ids masked


def test_role_duration_is_pure():
    profile = Profile("p", SOURCE, role_arn(0), "n", None, 7200, True)
    assert profile.role_duration == 3600


def test_a_stop_abandons_a_refresh_before_it_reaches_sts(sts_rig, sts_front):

    stop = threading.Event()
    engine = sts_rig(roles=2).engine(stop=stop)
    stop.set()  # SIGTERM, or the scheduler shutting down, before the job ran
    result = engine.refresh(SOURCE)
    assert {r.failure.kind for r in result.profiles.values()} == {FailureKind.STOPPED}
    assert sts_front.calls == {}  # no code spent, no role assumed


def test_log_lines_name_the_profile_once_and_the_sts_url_that_could_not_be_reached(sts_rig, sts_front, caplog):
    caplog.set_level(logging.INFO, logger="credd.engine")
    engine = sts_rig(roles=1).engine()
    sts_front.inject("drop", "GetSessionToken", times=float("inf"))
    engine.refresh(SOURCE)
    sts_front.clear_faults()
    engine.refresh(SOURCE, force=True)  # the source backs off; forced, it gets a session
    sts_front.inject("drop", "AssumeRole", times=float("inf"))
    engine.refresh(SOURCE, force=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    session = next(line for line in warnings if "GetSessionToken" in line)
    role = next(line for line in warnings if "role-00" in line)
    assert session.count("alice") == 1 and f"GetSessionToken to {sts_front.url}: cannot reach STS" in session
    assert role.count("role-00") == 1 and f"AssumeRole to {sts_front.url}: cannot reach STS" in role
