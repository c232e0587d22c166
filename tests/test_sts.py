"""STS calls over HTTP (moto behind the strict front), retries, and what every error means."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pyotp
import pytest
from botocore import exceptions as bx
from botocore.awsrequest import AWSResponse
from botocore.parsers import ResponseParserError
from hypothesis import given
from hypothesis import strategies as st

from credd import sts
from credd.errors import StsError
from credd.model import AccessKey, Credentials, FailureKind, Profile, Secret
from credd.sts_endpoint import is_safe
from tests.conftest import TEST_KEY_ID, TEST_SECRET_KEY, TEST_TOTP_SEED
from tests.fixtures_sts import SERIAL, make_config, role_arn
from tests.sts_front import MFA_FAILED, error_body

KEY = AccessKey(TEST_KEY_ID, Secret(TEST_SECRET_KEY))
NOW = datetime(2030, 6, 1, 12, 0, 5, tzinfo=timezone.utc)
GST = sts.Call("GetSessionToken", "alice")
AR = sts.Call("AssumeRole", "alice", "prod")


def source_of(front, **options):
    return make_config(front.url, **options).sources["alice"]


def role_profile(n: int = 0, duration: int = 3600) -> Profile:
    return Profile(f"role-{n:02d}", "alice", role_arn(n), "credd-alice", None, duration, True)


def code_now(clock) -> Secret:
    return Secret(pyotp.TOTP(TEST_TOTP_SEED).at(clock.timestamp()))


def session(front, clients, clock) -> tuple[object, Credentials]:
    source = source_of(front)
    creds = sts.get_session_token(clients.for_key(source, KEY), source, code_now(clock), clock.now())
    return clients.for_session(source, creds), creds


# The client ------------------------------------------------------------------------------

def test_client_uses_standard_retries_bounded_timeouts_and_the_configured_endpoint(sts_front, sts_clients):
    client = sts_clients.for_key(source_of(sts_front), KEY)
    config = client.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert (config.connect_timeout, config.read_timeout) == (1.0, 3.0)
    assert client.meta.endpoint_url == sts_front.url and client.meta.region_name == "us-east-1"


ALICE_REGIONAL = "https://sts.us-east-1.amazonaws.com"


@pytest.mark.parametrize("where", ["AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL", "~/.aws/config"])
def test_an_endpoint_url_configured_for_other_tools_is_never_used(where, sts_front, home, clock, monkeypatch):
    # A LocalStack-style set-up points botocore at plain http on this machine: here the strict STS front, a real
    # listener that records every request. With no sts_endpoint, credd must call its region's https endpoint.
    if where.startswith("~"):
        (home.root / ".aws").mkdir()
        (home.root / ".aws" / "config").write_text(f"[default]\nendpoint_url = {sts_front.url}\n")
    else:
        monkeypatch.setenv(where, sts_front.url)
    source = replace(source_of(sts_front), sts_endpoint=None)
    client = sts.StsClients(connect_timeout=1.0, read_timeout=1.0).for_key(source, KEY)
    assert client.meta.endpoint_url == ALICE_REGIONAL
    sent_to = []

    def answer_here(request, **_):
        """Nothing leaves this machine: a request to anywhere but loopback is answered here, and its URL kept."""
        if request.url.startswith("http://127.0.0.1"):
            return None  # let it reach the listener: that is the bug this test is for
        sent_to.append(request.url)
        return AWSResponse(request.url, 403, {}, _Raw(error_body("AccessDenied", "no")))

    client.meta.events.register("before-send", answer_here)
    with pytest.raises(StsError):
        sts.get_session_token(client, source, code_now(clock), clock.now())
    assert sts_front.count("GetSessionToken") == 0
    assert sent_to == [ALICE_REGIONAL + "/"]


class _Raw:
    """The raw stream botocore reads a reply's body from."""

    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_):
        yield self._body


def test_an_effective_endpoint_neither_https_nor_loopback_is_refused(sts_clients):
    source = replace(make_config("http://127.0.0.1:9").sources["alice"], sts_endpoint="http://sts.example.com")
    with pytest.raises(StsError, match=r"refuses to call STS at http://sts.example.com: plain http is only allowed "
                                       r"to this machine; set sources.alice.sts_endpoint to an https:// URL"):
        sts_clients.for_key(source, KEY)


@pytest.mark.parametrize("url, safe", [
    ("https://sts.us-east-1.amazonaws.com", True), ("http://127.0.0.1:4566", True), ("http://localhost:1", True),
    ("http://[::1]:80/", True), ("http://127.9.9.9", True), ("http://sts.us-east-1.amazonaws.com", False),
    ("http://localhost.example.com", False), ("http://10.0.0.1", False), ("ftp://127.0.0.1", False),
    ("https://", False)])
def test_which_endpoints_are_safe(url, safe):
    assert is_safe(url) is safe


@pytest.mark.parametrize("said, shown", [
    ("Value '123456' at 'tokenCode' failed", "Value '…' at 'tokenCode' failed"),
    (f"key {TEST_KEY_ID} and ASIAABCDEFGHIJKLMNOP", "key AKIA…MPLE and ASIA…MNOP"),
    ("token FwoGZXIvYXdzEJr//////////wEaDNjOVcRdL1bZ+2zA/c= was refused", "token … was refused"),
    ("User: arn:aws:iam::111111111111:user/test is not authorized to perform: sts:AssumeRole on resource: "
     "arn:aws:iam::222222222222:role/OrganizationAccountAccessRole",
     "User: arn:aws:iam::111111111111:user/test is not authorized to perform: sts:AssumeRole on resource: "
     "arn:aws:iam::222222222222:role/OrganizationAccountAccessRole"),
    ("x" * 500, "x" * 200 + "…"),
])
def test_a_servers_message_is_shown_masked_and_bounded(said, shown):
    assert sts.masked(said) == shown


def test_fewer_than_four_attempts_are_refused():
    with pytest.raises(ValueError, match="at least 4"):
        sts.StsClients(total_attempts=3)


# The two calls ---------------------------------------------------------------------------

def test_session_with_mfa_then_a_role_with_the_session(sts_front, sts_clients, clock):
    role_client, creds = session(sts_front, sts_clients, clock)
    assert creds.access_key_id.startswith("ASIA")
    assert abs((creds.expiration - clock.now()) - timedelta(hours=12)) < timedelta(seconds=1)
    role = sts.assume_role(role_client, role_profile(), 3600, clock.now())
    assert abs((role.expiration - clock.now()) - timedelta(hours=1)) < timedelta(seconds=1)
    (request,) = sts_front.of("AssumeRole")
    assert request.key_id == creds.access_key_id
    assert request.params["RoleSessionName"] == "credd-alice" and request.params["DurationSeconds"] == "3600"
    (gst,) = sts_front.of("GetSessionToken")
    assert gst.key_id == TEST_KEY_ID and gst.params["SerialNumber"] == SERIAL


def test_external_id_is_sent(sts_front, sts_clients, clock):
    role_client, _ = session(sts_front, sts_clients, clock)
    profile = Profile("p", "alice", role_arn(1), "me", "ext-123", 900, True)
    sts.assume_role(role_client, profile, 900, clock.now())
    assert sts_front.of("AssumeRole")[0].params["ExternalId"] == "ext-123"


def test_a_reused_code_is_refused_as_aws_does_and_not_retried(sts_front, sts_clients, clock):
    source = source_of(sts_front)
    client = sts_clients.for_key(source, KEY)
    sts.get_session_token(client, source, code_now(clock), clock.now())
    with pytest.raises(StsError) as caught:
        sts.get_session_token(client, source, code_now(clock), clock.now())
    assert caught.value.failure.kind is FailureKind.MFA_INVALID
    assert MFA_FAILED.strip() in str(caught.value)
    assert sts_front.count("GetSessionToken") == 2


def test_a_code_of_the_window_just_ended_is_taken_and_an_older_one_refused(sts_front, sts_clients, clock):
    """As AWS (and RFC 6238's one step back for delay): a code made just before its window ended still counts."""
    source = source_of(sts_front)
    client = sts_clients.for_key(source, KEY)

    def code_of(seconds_ago: int) -> Secret:
        return Secret(pyotp.TOTP(TEST_TOTP_SEED).at(clock.timestamp() - seconds_ago))

    sts.get_session_token(client, source, code_of(30), clock.now())
    with pytest.raises(StsError) as caught:
        sts.get_session_token(client, source, code_of(60), clock.now())
    assert caught.value.failure.kind is FailureKind.MFA_INVALID
    assert [window for _, window, _ in sts_front.accepted_codes] == [int(clock.timestamp() // 30) - 1]


def test_a_session_cannot_outlive_role_chaining_limit(sts_front, sts_clients, clock):
    role_client, _ = session(sts_front, sts_clients, clock)
    with pytest.raises(StsError) as caught:
        sts.assume_role(role_client, role_profile(duration=7200), 7200, clock.now())
    assert "1 hour session limit" in str(caught.value)  # why the engine clamps


# Retries ---------------------------------------------------------------------------------

def test_three_throttled_replies_in_a_row_are_survived_with_jittered_backoff(sts_front, sts_clients, clock,
                                                                             retry_sleeps):
    sts_front.inject("throttle", "GetSessionToken", times=3)
    session(sts_front, sts_clients, clock)
    assert sts_front.count("GetSessionToken") == 4
    assert len(retry_sleeps) == 3
    assert all(0 <= delay <= 2 ** n for n, delay in enumerate(retry_sleeps))  # rand * 2**n seconds


@pytest.mark.parametrize("fault, kind, calls", [
    ("throttle", FailureKind.THROTTLED, 5),
    ("server_error", FailureKind.SERVER, 5),
    ("drop", FailureKind.NETWORK, 5),
])
def test_a_fault_that_lasts_becomes_a_retryable_failure(sts_front, sts_clients, clock, fault, kind, calls):
    sts_front.inject(fault, times=float("inf"))
    with pytest.raises(StsError) as caught:
        session(sts_front, sts_clients, clock)
    assert caught.value.failure.kind is kind and caught.value.failure.retryable
    assert "tries again later" in str(caught.value)
    assert sts_front.count("GetSessionToken") == calls


@pytest.mark.parametrize("fault", ["server_error", "drop"])
def test_passing_faults_are_retried(sts_front, sts_clients, clock, fault):
    sts_front.inject(fault, "AssumeRole", times=2)
    role_client, _ = session(sts_front, sts_clients, clock)
    sts.assume_role(role_client, role_profile(), 3600, clock.now())
    assert sts_front.count("AssumeRole") == 3


def test_a_reply_that_does_not_come_in_time_is_retried(sts_front, clock):
    quick = sts.StsClients(connect_timeout=1, read_timeout=0.25)
    sts_front.inject("timeout", "AssumeRole", times=2)
    role_client, _ = session(sts_front, quick, clock)
    sts.assume_role(role_client, role_profile(), 3600, clock.now())
    assert sts_front.count("AssumeRole") == 3


def test_a_reply_lost_after_aws_took_the_code_makes_the_retry_a_reused_code(sts_front, sts_clients, clock):
    sts_front.inject("drop_after", "GetSessionToken")
    with pytest.raises(StsError) as caught:
        session(sts_front, sts_clients, clock)
    assert caught.value.failure.kind is FailureKind.MFA_INVALID  # the engine then waits for the next window
    assert sts_front.count("GetSessionToken") == 2


def test_nothing_listening_is_a_network_failure(retry_sleeps):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    source = make_config(f"http://127.0.0.1:{port}").sources["alice"]
    with pytest.raises(StsError) as caught:
        sts.get_session_token(sts.StsClients().for_key(source, KEY), source, Secret("123456"), NOW)
    assert caught.value.failure.kind is FailureKind.NETWORK
    assert "cannot reach STS" in str(caught.value)
    assert len(retry_sleeps) == 4


# 4xx: not retried --------------------------------------------------------------------------

@pytest.mark.parametrize("code", ["InvalidClientTokenId", "SignatureDoesNotMatch"])
def test_a_refused_long_term_key_says_to_store_a_new_one(sts_front, sts_clients, clock, code):
    sts_front.revoke(TEST_KEY_ID, code)
    with pytest.raises(StsError) as caught:
        session(sts_front, sts_clients, clock)
    failure = caught.value.failure
    assert failure.kind is FailureKind.KEY_INVALID and not failure.retryable and failure.aws_code == code
    assert "credd keys set alice" in failure.message
    assert sts_front.count("GetSessionToken") == 1


def test_access_denied_on_a_role_is_not_retried(sts_front, sts_clients, clock):
    sts_front.denied_roles.add(role_arn(0))
    role_client, _ = session(sts_front, sts_clients, clock)
    with pytest.raises(StsError) as caught:
        sts.assume_role(role_client, role_profile(), 3600, clock.now())
    assert caught.value.failure.kind is FailureKind.ACCESS_DENIED
    assert "profile 'role-00'" in str(caught.value) and "trust policy" in str(caught.value)
    assert sts_front.count("AssumeRole") == 1


def test_an_expired_session_is_told_apart_from_a_bad_key(sts_front, sts_clients, clock):
    role_client, _ = session(sts_front, sts_clients, clock)
    clock.advance(13 * 3600)
    with pytest.raises(StsError) as caught:
        sts.assume_role(role_client, role_profile(), 3600, clock.now())
    assert caught.value.failure.kind is FailureKind.EXPIRED_TOKEN and caught.value.failure.retryable


# Hostile replies -------------------------------------------------------------------------

@pytest.mark.parametrize("rewrite, problem", [
    (lambda body: b"<html>502 Bad Gateway</html>", "does not parse"),
    (lambda body: body.replace(b"<Expiration>", b"<X>").replace(b"</Expiration>", b"</X>"), "Expiration is missing"),
    (lambda body: b"<AssumeRoleResponse><Nothing/></AssumeRoleResponse>", "does not parse (KeyError)"),
    (lambda body: body.replace(b"<Expiration>2030", b"<Expiration>noon in 2030"), "does not parse"),
    (lambda body: body.replace(b"<SessionToken>", b"<SessionToken>a\nb"), "SessionToken is missing or malformed"),
    (lambda body: body.replace(b"<AccessKeyId>", b"<AccessKeyId>lower"), "AccessKeyId is missing or malformed"),
    (lambda body: body.replace(b"<Expiration>2030", b"<Expiration>2020"), "expired already"),
    (lambda body: body.replace(b"<Expiration>2030", b"<Expiration>2099"), "further ahead than STS allows"),
])
def test_a_hostile_reply_is_a_clear_error(sts_front, sts_clients, clock, rewrite, problem):
    sts_front.inject("rewrite", "AssumeRole", rewrite=rewrite)
    role_client, _ = session(sts_front, sts_clients, clock)
    with pytest.raises(StsError) as caught:
        sts.assume_role(role_client, role_profile(), 3600, clock.now())
    assert caught.value.failure.kind is FailureKind.BAD_REPLY
    assert problem in str(caught.value)


def reply(**fields):
    base = {"AccessKeyId": "ASIAEXAMPLEEXAMPLE12", "SecretAccessKey": "s" * 40, "SessionToken": "t" * 100,
            "Expiration": NOW + timedelta(hours=1)}
    base.update(fields)
    return {"Credentials": {k: v for k, v in base.items() if v is not None}}


def test_a_good_reply():
    creds = sts.parse_credentials(reply(), NOW, AR)
    assert creds.secret_access_key.reveal() == "s" * 40 and creds.expiration.tzinfo is timezone.utc


@pytest.mark.parametrize("bad, problem", [
    (reply(Expiration=datetime(2030, 6, 1, 13)), "no time zone"),
    (reply(Expiration="2030-06-01T13:00:00Z"), "not a time"),
    (reply(SecretAccessKey=None), "SecretAccessKey is missing"),
    (reply(SecretAccessKey=12345678901234567890), "SecretAccessKey is missing"),
    (reply(SessionToken="short"), "SessionToken is missing or malformed"),
    ({"Credentials": "x"}, "no Credentials"),
    (None, "no Credentials"),
])
def test_bad_replies_name_the_field_never_the_value(bad, problem):
    with pytest.raises(StsError) as caught:
        sts.parse_credentials(bad, NOW, AR)
    assert problem in str(caught.value)
    assert "s" * 40 not in str(caught.value)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text() | st.datetimes(),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner), max_leaves=10))
def test_any_reply_is_credentials_or_a_clear_error(junk):
    for candidate in (junk, {"Credentials": junk}):
        try:
            sts.parse_credentials(candidate, NOW, AR)
        except StsError as e:
            assert e.failure.kind is FailureKind.BAD_REPLY


# Classification ----------------------------------------------------------------------------

def client_error(code: str, message: str = "", status: int = 400) -> bx.ClientError:
    return bx.ClientError({"Error": {"Code": code, "Message": message},
                           "ResponseMetadata": {"HTTPStatusCode": status}}, "GetSessionToken")


@pytest.mark.parametrize("error, call, kind, retryable", [
    (client_error("AccessDenied", MFA_FAILED, 403), GST, FailureKind.MFA_INVALID, False),
    (client_error("AccessDenied", "not authorized", 403), AR, FailureKind.ACCESS_DENIED, False),
    (client_error("InvalidClientTokenId", "", 403), GST, FailureKind.KEY_INVALID, False),
    (client_error("SignatureDoesNotMatch", "", 403), GST, FailureKind.KEY_INVALID, False),
    (client_error("InvalidClientTokenId", "", 403), AR, FailureKind.EXPIRED_TOKEN, True),
    (client_error("ExpiredToken", "", 400), AR, FailureKind.EXPIRED_TOKEN, True),
    (client_error("SignatureDoesNotMatch", "Signature expired: 20300601T000000Z is now earlier", 403), GST,
     FailureKind.CLOCK, True),
    (client_error("Throttling", "Rate exceeded"), AR, FailureKind.THROTTLED, True),
    (client_error("Whatever", "", 429), AR, FailureKind.THROTTLED, True),
    (client_error("InternalFailure", "", 500), AR, FailureKind.SERVER, True),
    (client_error("ServiceUnavailable", "", 503), AR, FailureKind.SERVER, True),
    (client_error("RegionDisabledException", "", 403), GST, FailureKind.OTHER, False),
    (client_error("ValidationError", "bad duration"), AR, FailureKind.OTHER, False),
    (bx.EndpointConnectionError(endpoint_url="https://sts"), GST, FailureKind.NETWORK, True),
    (bx.ConnectTimeoutError(endpoint_url="https://sts"), GST, FailureKind.NETWORK, True),
    (bx.ReadTimeoutError(endpoint_url="https://sts"), GST, FailureKind.NETWORK, True),
    (bx.ConnectionClosedError(endpoint_url="https://sts"), GST, FailureKind.NETWORK, True),
    (bx.SSLError(endpoint_url="https://sts", error="cert"), GST, FailureKind.NETWORK, True),
    (ResponseParserError("junk"), GST, FailureKind.BAD_REPLY, True),
    (bx.NoRegionError(), GST, FailureKind.OTHER, False),
    (KeyError("AssumeRoleResult"), AR, FailureKind.BAD_REPLY, True),
    (RuntimeError("boom"), GST, FailureKind.OTHER, False),
])
def test_classify(error, call, kind, retryable):
    failure = sts.classify(error, call)
    assert (failure.kind, failure.retryable) == (kind, retryable)
    assert (call.profile or call.source) in failure.message and "\n" not in failure.message


def test_a_parameter_error_never_quotes_the_parameter():
    error = bx.ParamValidationError(report="Invalid type for parameter TokenCode, value: 123456")
    assert "123456" not in sts.classify(error, GST).message


def test_a_server_message_is_one_bounded_line():
    failure = sts.classify(client_error("AccessDenied", "line one\nline two\x1b[31m" + "x" * 1000, 403), AR)
    assert "\n" not in failure.message and "\x1b" not in failure.message and len(failure.message) < 600


# Hints: the commands a failure names carry the daemon's --config ----------------------------

HINT_CONFIG = "/home/you/my config.yaml"
WITH_CONFIG = "credd --config '/home/you/my config.yaml'"


def test_a_refused_key_names_keys_set_with_the_daemons_config(sts_front, sts_clients, clock):
    sts_front.revoke(TEST_KEY_ID, "InvalidClientTokenId")
    source = source_of(sts_front)
    with pytest.raises(StsError) as caught:
        sts.get_session_token(sts_clients.for_key(source, KEY), source, code_now(clock), clock.now(),
                              hint_config=HINT_CONFIG)
    assert f"store a working one with `{WITH_CONFIG} keys set alice`" in caught.value.failure.message


def test_a_clock_failure_names_doctor_with_the_daemons_config():
    call = replace(GST, hint_config=HINT_CONFIG)
    skewed = sts.classify(client_error("RequestExpired", "", 400), call)
    assert skewed.kind is FailureKind.CLOCK and f"`{WITH_CONFIG} doctor`" in skewed.message
    reply = {"Credentials": {"AccessKeyId": "ASIAEXAMPLEEXAMPLE01", "SecretAccessKey": "s" * 40,
                             "SessionToken": "t" * 40, "Expiration": NOW - timedelta(minutes=1)}}
    with pytest.raises(StsError) as caught:
        sts.parse_credentials(reply, NOW, call)
    assert f"check this machine's clock (`{WITH_CONFIG} doctor`)" in caught.value.failure.message


def test_without_a_config_option_sts_failures_name_plain_commands():
    failure = sts.classify(client_error("InvalidClientTokenId", "", 403), GST)
    assert "`credd keys set alice`" in failure.message and "--config" not in failure.message
