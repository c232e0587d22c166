"""STS through botocore: the clients, the two calls credd makes, and what their errors mean.

Retries of throttling, 5xx and dropped, cut-short or timed-out connections
are botocore's `standard` mode (exponential backoff with jitter); credd adds
none of its own at this level, and 4xx replies other than throttling are
not retried. A malformed reply is not retried within the call either (for
GetSessionToken, AWS may have taken the MFA code already): the engine tries
again later, with backoff. Whatever comes back is checked as hostile input:
a reply with missing, mistyped or already-expired credentials is an error
with a message, never a traceback, and no value from it is ever shown.

Expiry is told in this machine's clock, whatever STS's clock says: a
credential lives `Expiration - Date` by STS's own clock (the reply's HTTP
`Date` header), counted from when credd sent the request and never longer
than it asked for. A clock far off STS's is measured on the way and reported.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Protocol

from credd import __version__
from credd.commandline import credd_command
from credd.errors import StsError, one_line
from credd.model import AccessKey, Credentials, Failure, FailureKind, Profile, Secret, Source, mask_key_id
from credd.sts_endpoint import endpoint_for, is_safe
from credd.timefmt import http_date, utc_text

if TYPE_CHECKING:  # botocore ships no types; mypy takes these as Any, readers as what they are
    from botocore.exceptions import ClientError

SAID = 300  # characters of what a server or library says that a message quotes (before masking)
# botocore's `total_max_attempts` counts the first try: 5 survives four throttled
# replies in a row (its client-config `max_attempts` counts retries only, 4 here).
TOTAL_ATTEMPTS = 5
# STS answers in well under a second. Against one that stalls, five attempts of at most
# 3 + 5 s (and botocore's 0.75 s of sleeps between them) end within 41 s: before the
# credential_process hook gives up waiting (45 s), so it can say why.
CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 5.0
# The longest any STS credential lives (GetSessionToken's 36 h) and some slack:
# an Expiration beyond it is a bogus reply that would stop credd from refreshing.
LONGEST_LIFE = timedelta(hours=37)
# A clock this far off STS's is reported (status, log): TOTP codes made on it may be refused,
# some AWS services refuse requests signed this far off, and STS refuses them from 15 minutes.
SKEW_REPORTED = timedelta(minutes=5)

KEY_ID = re.compile(r"[A-Z0-9]{16,128}")
# Values go into an INI file and HTTP headers: printable ASCII, no white space.
TOKEN = re.compile(r"[\x21-\x7e]{16,16384}")

MFA_REJECTED = "MultiFactorAuthentication failed"
KEY_REFUSED = {"InvalidClientTokenId", "SignatureDoesNotMatch", "UnrecognizedClientException",
               "InvalidAccessKeyId", "AuthFailure", "IncompleteSignature"}
TOKEN_EXPIRED = {"ExpiredToken", "ExpiredTokenException"}
CLOCK_SKEW = {"RequestExpired", "RequestTimeTooSkewed", "RequestInTheFuture"}
# SignatureDoesNotMatch with these is AWS refusing a request signed more than 15 minutes off its clock.
STALE_SIGNATURE = ("Signature expired", "Signature not yet current")
# What botocore's parser lets escape when a 200 reply is XML of the wrong shape or
# holds a bad timestamp; raised from the call, they can only come from the reply.
REPLY_SHAPE_ERRORS = (KeyError, IndexError, ValueError, TypeError, AttributeError)
THROTTLED = {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
             "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded", "SlowDown"}


@dataclass(frozen=True)
class Call:
    """One STS call, for messages: which operation, on whose behalf."""

    operation: str  # "GetSessionToken" or "AssumeRole"
    source: str
    profile: str | None = None
    endpoint: str | None = None  # where it went: named when STS cannot be reached there
    hint_config: str | None = None  # the daemon's --config, for the commands its messages name

    @property
    def who(self) -> str:
        return f"profile {self.profile!r}" if self.profile else f"source {self.source!r}"


class ClientMeta(Protocol):
    """What credd reads of a client's `meta`: where its calls go."""

    @property
    def endpoint_url(self) -> str: ...


class StsClient(Protocol):
    """What credd calls on an STS client (botocore's, made by `StsClients`): two operations, and where they go.

    Replies are `object`: credd checks them as hostile input (`parse_credentials`). A call raises botocore's
    exceptions, which `classify` reads.
    """

    @property
    def meta(self) -> ClientMeta: ...

    def get_session_token(self, **params: object) -> object: ...

    def assume_role(self, **params: object) -> object: ...


class StsClients:
    """Makes STS clients: one botocore session for all of them, standard retries, bounded timeouts.

    Clients are thread-safe once made, so one client serves every AssumeRole
    of a refresh; making them is serialised because botocore sessions are not.
    """

    def __init__(self, *, total_attempts: int = TOTAL_ATTEMPTS, connect_timeout: float = CONNECT_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT, pool_size: int = 10) -> None:
        if total_attempts < 4:
            raise ValueError("STS clients need at least 4 attempts to ride out three throttled replies")
        self.total_attempts = total_attempts
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.pool_size = pool_size
        self._session: Any = None  # botocore's Session, made with the first client
        self._lock = threading.Lock()
        quiet_botocore()

    def for_key(self, source: Source, key: AccessKey) -> StsClient:
        """A client signing with the source's long-term key (for GetSessionToken)."""
        return self._client(source, key.key_id, key.secret, None)

    def for_session(self, source: Source, session: Credentials) -> StsClient:
        """A client signing with the source's session (for AssumeRole)."""
        return self._client(source, session.access_key_id, session.secret_access_key, session.session_token)

    def _client(self, source: Source, key_id: str, secret: Secret, token: Secret | None) -> StsClient:
        from botocore.config import Config

        options: dict[str, object] = {}
        if "ignore_configured_endpoint_urls" in Config.OPTION_DEFAULTS:  # botocore >= 1.31: it reads them
            # AWS_ENDPOINT_URL(_STS) and endpoint_url in ~/.aws/config are for the user's own tools (LocalStack,
            # often plain http); the endpoint passed below wins over them anyway, and this says so twice.
            options["ignore_configured_endpoint_urls"] = True
        config = Config(
            region_name=source.region,
            retries={"mode": "standard", "total_max_attempts": self.total_attempts},
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            max_pool_connections=self.pool_size,
            user_agent_extra=f"credd/{__version__}",
            **options,
        )
        try:
            with self._lock:
                if self._session is None:
                    import botocore.session

                    self._session = botocore.session.Session()
                client: StsClient = self._session.create_client(
                    "sts", region_name=source.region, endpoint_url=endpoint_for(source), config=config,
                    aws_access_key_id=key_id, aws_secret_access_key=secret.reveal(),
                    aws_session_token=token.reveal() if token is not None else None,
                )
        except Exception as e:  # noqa: BLE001  ProfileNotFound from $AWS_PROFILE, an endpoint botocore refuses, ...
            problem = f"{type(e).__name__}: {masked(one_line(str(e), SAID, prose=True))}"
            raise StsError(Failure(FailureKind.OTHER, f"source {source.name!r}: cannot set up an STS client: {problem}",
                                   retryable=False)) from None
        # What the client will really call, checked after botocore had its say: the MFA code and the
        # reply's secret keys never travel in clear text beyond this machine.
        if not is_safe(client.meta.endpoint_url):
            url = one_line(client.meta.endpoint_url, SAID, prose=True)
            raise StsError(Failure(FailureKind.OTHER, f"source {source.name!r}: credd refuses to call STS at "
                                                      f"{url}: plain http is only "
                                                      f"allowed to this machine; set sources.{source.name}."
                                                      "sts_endpoint to an https:// URL", retryable=False))
        _refuse_short_replies(client)
        return client


class _WholeReplies:
    """botocore's HTTP session, with a reply shorter than its Content-Length made a dropped connection.

    botocore reads replies with urllib3's `enforce_content_length` off, so a
    connection closed mid-reply hands its parser half an XML document: a parse
    error, which it does not retry. As a ConnectionClosedError it is retried
    like any dropped connection.
    """

    def __init__(self, session: Any) -> None:  # botocore's URLLib3Session
        self._session = session

    def send(self, request: Any) -> Any:  # botocore's AWSPreparedRequest and AWSResponse
        response = self._session.send(request)
        expected = str(response.headers.get("Content-Length", ""))
        if (expected.isdigit() and not getattr(request, "stream_output", False)
                and len(response.content) < int(expected)):
            from botocore.exceptions import ConnectionClosedError

            raise ConnectionClosedError(endpoint_url=request.url, request=request, cut_short=True)
        return response

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def _refuse_short_replies(client: StsClient) -> None:
    """Wrap the client's HTTP session (`_endpoint.http_session`: not public API, present for a decade).

    Without it a cut-short reply stays a malformed one: still safe, retried later by the engine.
    """
    endpoint: Any = getattr(client, "_endpoint", None)
    session = getattr(endpoint, "http_session", None)
    if session is not None and not isinstance(session, _WholeReplies):
        endpoint.http_session = _WholeReplies(session)


def quiet_botocore() -> None:
    """Pin botocore's own log level at WARNING: its DEBUG lines hold request bodies (the TOTP code),
    the session token header and whole STS replies. Its own level, not the effective one, so that
    a root logger set to DEBUG later (`--debug`, pytest's caplog) does not let them through."""
    botocore_log = logging.getLogger("botocore")
    if botocore_log.level < logging.WARNING:  # NOTSET (0) included
        botocore_log.setLevel(logging.WARNING)


# The two calls -----------------------------------------------------------------

SkewWatcher = Callable[[timedelta], None]  # told how far this machine's clock is ahead of STS's (negative: behind)


def get_session_token(client: StsClient, source: Source, code: Secret | None, now: datetime, *,
                      skew: SkewWatcher | None = None, hint_config: str | None = None) -> Credentials:
    """The source's session; `code` is required exactly when the source has an MFA device.

    `now` is when the request goes out, by this machine's clock; the credentials' expiry is counted from it.
    `hint_config`: the `--config` the daemon runs with, for the commands its errors name.
    """
    params: dict[str, object] = {"DurationSeconds": source.duration}
    if source.mfa_serial is not None:
        if code is None:
            raise ValueError("a source with mfa_serial needs a code")
        params.update(SerialNumber=source.mfa_serial, TokenCode=code.reveal())
    call = Call("GetSessionToken", source.name, hint_config=hint_config)
    return parse_credentials(_send(client, call, params, now, skew), now, call, source.duration)


def assume_role(client: StsClient, profile: Profile, duration: int, now: datetime, *,
                skew: SkewWatcher | None = None, hint_config: str | None = None) -> Credentials:
    """The role of `profile`, assumed with the client's (session) credentials for `duration` seconds."""
    params: dict[str, object] = {
        "RoleArn": profile.role_arn,
        "RoleSessionName": profile.role_session_name,
        "DurationSeconds": duration,
    }
    if profile.external_id is not None:
        params["ExternalId"] = profile.external_id
    if profile.source_identity is not None:
        params["SourceIdentity"] = profile.source_identity
    if profile.tags:
        params["Tags"] = [{"Key": key, "Value": value} for key, value in profile.tags]
    if profile.transitive_tags:
        params["TransitiveTagKeys"] = list(profile.transitive_tags)
    if profile.policy_arns:
        params["PolicyArns"] = [{"arn": arn} for arn in profile.policy_arns]
    if profile.policy is not None:
        params["Policy"] = profile.policy
    call = Call("AssumeRole", profile.source, profile.name, hint_config=hint_config)
    return parse_credentials(_send(client, call, params, now, skew), now, call, duration)


def _send(client: StsClient, call: Call, params: dict[str, object], now: datetime,
          watcher: SkewWatcher | None) -> object:
    method = {"GetSessionToken": client.get_session_token, "AssumeRole": client.assume_role}[call.operation]
    call = replace(call, endpoint=_shown_url(getattr(getattr(client, "meta", None), "endpoint_url", None)))
    try:
        reply = method(**params)
    except Exception as e:  # noqa: BLE001  every way a call can fail becomes a Failure; the cause may quote the code
        skew = clock_skew(getattr(e, "response", None), now)  # an error reply has a Date too
        if skew is not None and watcher is not None:
            watcher(skew)
        raise StsError(classify(e, call, skew)) from None
    skew = clock_skew(reply, now)
    if skew is not None and watcher is not None:
        watcher(skew)
    return reply


# Replies: hostile input --------------------------------------------------------

def parse_credentials(reply: object, now: datetime, call: Call, duration: int | None = None) -> Credentials:
    """The credentials in a GetSessionToken/AssumeRole reply, or StsError naming what is wrong with it.

    Their expiration is in this machine's clock: `now` (when the request went out) plus what they live
    by STS's clock (`Expiration - Date`), at most the `duration` asked for. Counting from the request
    errs early by the round trip, never late; the Date header's whole seconds are within SERVE_MARGIN.
    """
    fields = reply.get("Credentials") if isinstance(reply, dict) else None
    if not isinstance(fields, dict):
        raise _bad_reply(call, "it holds no Credentials")
    key_id = _text(fields, "AccessKeyId", KEY_ID, call)
    secret = _text(fields, "SecretAccessKey", TOKEN, call)
    token = _text(fields, "SessionToken", TOKEN, call)
    expiration = fields.get("Expiration")
    if not isinstance(expiration, datetime):
        raise _bad_reply(call, "its Expiration is missing or not a time")
    if expiration.tzinfo is None or expiration.utcoffset() is None:
        raise _bad_reply(call, "its Expiration has no time zone")
    expiration = expiration.astimezone(timezone.utc)
    sent_at = server_date(reply)
    if sent_at is not None:
        lifetime = expiration - sent_at
        if lifetime <= timedelta(0):
            raise _bad_reply(call, f"its credentials had expired already by STS's own clock (Expiration "
                                   f"{utc_text(expiration)}, Date {utc_text(sent_at)}): "
                                   "an old reply replayed by a proxy?")
    else:  # no Date to tell STS's clock from ours: ours it is
        lifetime = expiration - now
        if lifetime <= timedelta(0):
            raise _bad_reply(call, f"its credentials expired already ({utc_text(expiration)}); "
                                   f"check this machine's clock (`{credd_command(call.hint_config, 'doctor')}`)")
    if lifetime > LONGEST_LIFE:
        raise _bad_reply(call, f"its Expiration ({utc_text(expiration)}) is further ahead than STS allows")
    asked = timedelta(seconds=duration) if duration else LONGEST_LIFE
    return Credentials(key_id, Secret(secret), Secret(token), now + min(lifetime, asked))


def server_date(reply: object) -> datetime | None:
    """When STS sent `reply` by its own clock (the HTTP Date header); None when missing or unreadable."""
    meta = reply.get("ResponseMetadata") if isinstance(reply, dict) else None
    headers = meta.get("HTTPHeaders") if isinstance(meta, dict) else None
    return http_date(headers.get("date") if isinstance(headers, dict) else None)


def clock_skew(reply: object, now: datetime) -> timedelta | None:
    """How far this machine's clock (`now`, when the request went out) is ahead of STS's; negative: behind."""
    date = server_date(reply)
    return now - date if date is not None else None


def describe_skew(skew: timedelta) -> str:
    """`this machine's clock is 12 min behind STS's`: for status, the log and error messages."""
    seconds = abs(skew.total_seconds())
    size = f"{round(seconds / 60)} min" if seconds >= 120 else f"{round(seconds)} s"
    return f"this machine's clock is {size} {'ahead of' if skew > timedelta(0) else 'behind'} STS's"


def _text(fields: dict, name: str, pattern: re.Pattern[str], call: Call) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _bad_reply(call, f"its {name} is missing or malformed")  # never the value: it may be a secret
    return value


def _bad_reply(call: Call, problem: str) -> StsError:
    return StsError(Failure(FailureKind.BAD_REPLY,
                            f"{call.who}: STS answered {call.operation} with a reply credd cannot use: {problem}; "
                            "credd tries again later",
                            retryable=True))


# Errors: what they mean and what to do -----------------------------------------

def classify(error: BaseException, call: Call, skew: timedelta | None = None) -> Failure:
    """What `error` from an STS call means for the user, and whether trying again later may help.

    `skew`, when the error reply said STS's time, lets a clock error say how far off the clock is.
    """
    from botocore import exceptions as bx
    from botocore.parsers import ResponseParserError

    if isinstance(error, bx.ClientError):
        return _client_error(error, call, skew)
    if isinstance(error, (bx.ReadTimeoutError, bx.ConnectTimeoutError)):
        return _network(call, f"STS did not answer in time ({type(error).__name__})")
    if isinstance(error, bx.SSLError):
        return _network(call, "the TLS connection to STS failed; a proxy or captive portal in the way? "
                              "($AWS_CA_BUNDLE names extra CA certificates)")
    if isinstance(error, bx.ConnectionClosedError) and error.kwargs.get("cut_short"):
        return _network(call, "the connection to STS closed in the middle of its reply")
    if isinstance(error, (bx.ConnectionError, bx.HTTPClientError)):
        return _network(call, f"cannot reach STS ({type(error).__name__})")
    if isinstance(error, (ResponseParserError, *REPLY_SHAPE_ERRORS)):
        return Failure(FailureKind.BAD_REPLY, f"{call.who}: STS answered {call.operation} with a reply that "
                                              f"does not parse ({type(error).__name__}); credd tries again later",
                       retryable=True)
    if isinstance(error, bx.ParamValidationError):  # its text may quote a parameter: the TOTP code
        return Failure(FailureKind.OTHER, f"{call.who}: credd built an invalid {call.operation} request "
                                          "(a bug in credd; please report it)", retryable=False)
    if isinstance(error, bx.BotoCoreError):
        said = masked(one_line(str(error), SAID, prose=True))
        return Failure(FailureKind.OTHER, f"{call.who}: {call.operation}: {said}",
                       retryable=False)
    return Failure(FailureKind.OTHER, f"{call.who}: {call.operation} failed: {type(error).__name__}",
                   retryable=False)


def _client_error(error: ClientError, call: Call, skew: timedelta | None) -> Failure:
    details = error.response.get("Error", {}) if isinstance(error.response, dict) else {}
    code = str(details.get("Code") or "")
    said = one_line(str(details.get("Message") or ""), SAID, prose=True)  # to classify by; never shown as it is
    shown = masked(said)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    what = (f"{call.who}: STS refused {call.operation} ({one_line(code, SAID, prose=True) or status}"
            f"{': ' + shown if shown else ''})")

    def failure(kind: FailureKind, advice: str, retryable: bool) -> Failure:
        return Failure(kind, f"{what}; {advice}", retryable, code or None)

    if code == "AccessDenied" and MFA_REJECTED in said:
        return failure(FailureKind.MFA_INVALID, "the MFA code was wrong, expired or used before", retryable=False)
    if code in CLOCK_SKEW or any(sign in said for sign in STALE_SIGNATURE):
        off = describe_skew(skew) if skew is not None else "this machine's clock is off"
        doctor = credd_command(call.hint_config, "doctor")
        return failure(FailureKind.CLOCK, f"{off}; set it right (timedatectl, NTP; `{doctor}`)", True)
    if code in KEY_REFUSED and call.operation == "GetSessionToken":
        return failure(FailureKind.KEY_INVALID, f"the access key is wrong, deactivated or deleted: store a "
                                                f"working one with "
                                                f"`{credd_command(call.hint_config, 'keys', 'set', call.source)}`",
                       retryable=False)
    if code in KEY_REFUSED or code in TOKEN_EXPIRED:
        return failure(FailureKind.EXPIRED_TOKEN, f"the session of source {call.source!r} is expired or revoked; "
                                                  "credd gets a new one", retryable=True)
    if code in THROTTLED or status == 429:
        return failure(FailureKind.THROTTLED, f"still throttled after {TOTAL_ATTEMPTS} attempts; "
                                              "credd tries again later", retryable=True)
    if status >= 500:
        return failure(FailureKind.SERVER, "STS failed on every attempt; credd tries again later", retryable=True)
    if code == "AccessDenied":
        advice = ("check the role's trust policy and that your user may assume it" if call.operation == "AssumeRole"
                  else "check your user's IAM policies")
        return failure(FailureKind.ACCESS_DENIED, advice, retryable=False)
    if code == "RegionDisabledException":
        return failure(FailureKind.OTHER, f"activate STS in this region, or set another sources.{call.source}.region",
                       retryable=False)
    return failure(FailureKind.OTHER, "see the AWS documentation of this error", retryable=False)


def _network(call: Call, problem: str) -> Failure:
    to = f" to {call.endpoint}" if call.endpoint else ""
    return Failure(FailureKind.NETWORK, f"{call.who}: {call.operation}{to}: {problem}; credd tries again later "
                                        "and serves credentials that are still valid meanwhile", retryable=True)


def _shown_url(url: object) -> str | None:
    """An endpoint URL fit for a message: scheme, host, port and path; never a user name or password in it."""
    if not isinstance(url, str) or not url:
        return None
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return None
    return one_line(f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}", SAID, prose=True)


# What a server's message may echo of a request: key ids, tokens and secrets (long runs of base64-ish
# characters with letters and digits in them), MFA codes (six to eight digits standing alone).
KEY_IDS = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA)[A-Z0-9]{12,}\b")
SECRET_RUNS = re.compile(r"[A-Za-z0-9+/=_-]{16,}")
DIGIT_CODES = re.compile(r"(?<!\d)\d{6,8}(?!\d)")
SHOWN_MESSAGE = 200  # characters of a server's message that errors, logs and `status` show at most


def masked(text: str, limit: int = SHOWN_MESSAGE) -> str:
    """A server's message as credd shows it: anything like a key, token, secret or MFA code masked; bounded.

    STS error messages may echo the request (its TokenCode, its session token); AWS's own are plain prose,
    account ids (12 digits) and ARNs, which stay.
    """
    text = KEY_IDS.sub(lambda m: mask_key_id(m.group()), text)
    text = SECRET_RUNS.sub(lambda m: "…" if _letters_and_digits(m.group()) else m.group(), text)
    text = DIGIT_CODES.sub("…", text)
    return text if len(text) <= limit else text[:limit] + "…"


def _letters_and_digits(run: str) -> bool:
    return any(c.isdigit() for c in run) and any(c.isalpha() for c in run)


