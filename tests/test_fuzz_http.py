"""The HTTP endpoints under fuzzing: the shared head parser, and the container endpoint's and IMDS's `answer`, fed
arbitrary bytes and well-formed requests with hostile parts (methods, paths, tokens right and wrong, TTLs, Host
names, bodies, proxies' headers).

After every input: no exception but the parser's ValueError; a response that is well-formed HTTP/1.1 with a
Content-Length that is its body's; a status from the endpoint's list; and credentials only to a request that carried
a valid token, named a loopback Host and asked for the profile the token (or the listener) serves.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from credd.endpoints import container, imds
from credd.endpoints.http import Request, Response, loopback_host, parse_head

SETTINGS = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 12, 7, 12, tzinfo=timezone.utc)
KEY = "ASIAFUZZFUZZFUZZ"
SECRET = "fuzz-secret-access-key"


class _Held:
    """The daemon's answers the endpoints read, with fixed fresh credentials: the HTTP is under test here."""

    def quick_reply(self, request: dict) -> dict:
        return {"ok": True, "credentials": {"AccessKeyId": KEY, "SecretAccessKey": SECRET, "SessionToken": "t",
                                            "Expiration": "2030-01-01T00:00:00Z"}}

    def not_fresh(self, profile: str) -> str:
        return f"no fresh credentials for profile {profile}"

    def account_id(self, profile: str) -> str:
        return "222222222222"

    def region(self, profile: str) -> str:
        return "us-east-1"

    def last_updated(self, profile: str, access_key_id: str) -> datetime:
        return NOW - timedelta(minutes=5)


def heads(methods: list[bytes], paths: list[bytes], headers: list[list[bytes]]) -> st.SearchStrategy[bytes]:
    """Raw bytes, or a request line and headers put together from likely parts, now and then an unlikely one."""
    printable = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.encode)
    part = st.integers(0, 2).flatmap(lambda pick: st.binary(max_size=40) if pick == 2 else printable)

    def mostly(likely: list[bytes]) -> st.SearchStrategy[bytes]:
        return st.integers(0, 5).flatmap(lambda pick: part if pick == 5 else st.sampled_from(likely))

    line = st.builds(lambda m, p, v: m + b" " + p + b" " + v, mostly(methods), mostly(paths),
                     mostly([b"HTTP/1.1", b"HTTP/1.0"]))

    def one_or_none(lines: list[bytes]) -> st.SearchStrategy[list[bytes]]:
        # A request without a Host is refused whatever else it says: it nearly always has one.
        none_once_in = 10 if lines[0].startswith(b"Host:") else 3
        return st.integers(1, none_once_in).flatmap(
            lambda pick: st.just([]) if pick == 1 else st.sampled_from(lines).map(lambda line: [line]))

    known = st.tuples(*(one_or_none(lines) for lines in headers)).map(lambda groups: [h for g in groups for h in g])
    odd = st.integers(0, 3).flatmap(lambda pick: st.lists(part, min_size=1, max_size=1) if pick == 3 else st.just([]))
    header_lines = st.builds(lambda ours, extra: ours + extra, known, odd)
    built = st.builds(lambda first, rest: b"\r\n".join([first, *rest]) + b"\r\n\r\n", line, header_lines)
    return st.integers(0, 3).flatmap(lambda pick: st.binary(max_size=300) if pick == 3 else built)


def well_formed(response: Response, statuses: set[int]) -> bytes:
    """The encoded response, checked: its status line, its length; returns the body."""
    encoded = response.encode()
    head, _, body = encoded.partition(b"\r\n\r\n")
    lines = head.decode("ascii").split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {response.status} ") and response.status in statuses
    assert f"Content-Length: {len(body)}" in lines
    return body


@SETTINGS
@given(st.binary(max_size=400))
def test_the_head_parser_returns_a_request_or_says_why_not(head):
    try:
        request = parse_head(head)
    except ValueError as e:
        assert str(e)
    else:
        assert isinstance(request, Request) and request.path.startswith("/")
        assert all(name == name.lower() for name in request.headers)


TOKENS = container.Tokens()
GRANT = TOKENS.issue(["prod-admin"], timedelta(hours=1), NOW)
REVOKED = TOKENS.issue(["prod-admin"], timedelta(hours=1), NOW)
TOKENS.revoke(REVOKED.id)
CONTAINER_PATHS = [b"/v1/credentials/prod-admin", b"/v1/credentials/alice-session", b"/v1/credentials/",
                   b"/v1/credentials/prod-admin?x=1", b"/"]
CONTAINER_HEADERS = [  # each list: one header's values, of which a request carries one or none
    [b"Host: 127.0.0.1:9911", b"Host: localhost", b"Host: [::1]:80", b"Host: evil.example"],
    [f"Authorization: {GRANT.value}".encode(), f"Authorization: {REVOKED.value}".encode(), b"Authorization: guess"],
    [b"Content-Length: 3", b"Content-Length: 0"], [b"Transfer-Encoding: chunked"]]


@SETTINGS
@given(heads([b"GET", b"PUT", b"HEAD"], CONTAINER_PATHS, CONTAINER_HEADERS))
def test_the_container_endpoint_answers_anything_and_credentials_only_to_its_token(head):
    response, said = container.answer(head, TOKENS, _Held(), NOW)
    body = well_formed(response, {200, 400, 401, 403, 404, 405})
    assert KEY not in said and GRANT.value not in said
    if KEY.encode() in body:
        request = parse_head(head)
        assert request.headers["authorization"] == GRANT.value and request.path == "/v1/credentials/prod-admin"
        assert loopback_host(request)


SESSIONS = imds.Sessions(limit=10**6)  # every example's PUT keeps its token: none pushes SESSION out
SESSION = SESSIONS.issue(60, NOW - timedelta(seconds=30))
EXPIRED = SESSIONS.issue(10, NOW - timedelta(seconds=30))
IMDS_PATHS = [b"/latest/api/token", b"/latest/meta-data/iam/security-credentials/",
              b"/latest/meta-data/iam/security-credentials/prod-admin",
              b"/latest/meta-data/iam/security-credentials-extended/prod-admin",
              b"/latest/meta-data/iam/security-credentials/alice-session", b"/latest/meta-data/placement/region",
              b"/latest/meta-data/placement/availability-zone/"]
IMDS_HEADERS = [
    [b"Host: 127.0.0.1:9912", b"Host: localhost", b"Host: evil.example"],
    [f"X-aws-ec2-metadata-token: {SESSION}".encode(), f"X-aws-ec2-metadata-token: {EXPIRED}".encode(),
     b"X-aws-ec2-metadata-token: guess"],
    [b"X-aws-ec2-metadata-token-ttl-seconds: 21600", b"X-aws-ec2-metadata-token-ttl-seconds: 0",
     b"X-aws-ec2-metadata-token-ttl-seconds: 99999", b"X-aws-ec2-metadata-token-ttl-seconds: 6h"],
    [b"X-Forwarded-For: 10.0.0.1"], [b"Content-Length: 0", b"Content-Length: 9"]]


@SETTINGS
@given(heads([b"GET", b"PUT", b"POST"], IMDS_PATHS, IMDS_HEADERS))
def test_imds_answers_anything_and_credentials_only_with_a_session_token(head):
    response, said = imds.answer(head, "prod-admin", SESSIONS, _Held(), NOW)
    body = well_formed(response, {200, 400, 401, 403, 404, 405})
    assert KEY not in said and SESSION not in said
    request = parse_head(head) if response.status == 200 else None
    if KEY.encode() in body:
        assert request is not None and request.method == "GET"
        assert request.headers[imds.TOKEN_HEADER] == SESSION
        assert request.path.endswith("/prod-admin") and loopback_host(request)
    if request is not None and request.method == "PUT":  # a new session token: asked for properly, not via a proxy
        assert imds.TTL_HEADER in request.headers and "x-forwarded-for" not in request.headers
        assert SESSIONS.valid(body.decode(), NOW)


def test_the_parts_the_fuzzers_use_make_requests_that_are_served():
    """The likely parts above are right: put together properly, they get credentials (so the fuzzers reach them)."""
    response, _ = container.answer(b"GET /v1/credentials/prod-admin HTTP/1.1\r\n" + CONTAINER_HEADERS[0][1] + b"\r\n"
                                   + CONTAINER_HEADERS[1][0] + b"\r\n\r\n", TOKENS, _Held(), NOW)
    assert response.status == 200 and KEY.encode() in response.body
    response, _ = imds.answer(b"GET " + IMDS_PATHS[2] + b" HTTP/1.1\r\n" + IMDS_HEADERS[0][0] + b"\r\n"
                              + IMDS_HEADERS[1][0] + b"\r\n\r\n", "prod-admin", SESSIONS, _Held(), NOW)
    assert response.status == 200 and KEY.encode() in response.body
