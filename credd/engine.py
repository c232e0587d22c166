"""The STS engine: valid credentials for every profile of a source, with as few MFA codes and calls as possible.

Per source: the session held in memory, else the one cached in the keyring,
else a new one from GetSessionToken with an MFA code (waiting for an unused
code window); then every due role profile assumed with that session,
concurrently, so one code serves them all. Failures become `Failure`s per
profile; credentials that are still valid keep being served meanwhile.

After a failure that may pass on its own (throttling, STS down, a malformed
reply) the source backs off (`refresh.backoff`): until then a refresh makes
no STS call and serves what is still valid, unless a credential someone
asks for has expired (`refresh.may_retry`), or the user forces it.

Everything with an effect is injected: the clock, `sleep`, the STS client
factory, the Store, the MFA drivers and the window ledger. A `stop` event
ends every wait at once: set (the daemon is stopping), a refresh that has
not reached STS yet is abandoned rather than spend an MFA code nobody will use.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from credd import mfa, refresh, session_cache, sts
from credd.commandline import credd_command
from credd.config import CHAINED_ROLE_MAX
from credd.errors import KeyringError, MfaError, RefreshError, StsError, UsageError
from credd.model import AccessKey, Config, Credentials, Failure, FailureKind, Profile, Secret, Source
from credd.session_cache import CachedSession
from credd.store import Store

LOG = logging.getLogger("credd.engine")

WORKERS = 8  # concurrent AssumeRole calls per source


def role_duration(profile: Profile) -> int:
    """AssumeRole's DurationSeconds: AWS caps a role assumed with session credentials at one hour."""
    return min(profile.duration, CHAINED_ROLE_MAX)


# Results -----------------------------------------------------------------------

@dataclass(frozen=True)
class ProfileResult:
    """One profile after a refresh: what to serve, and why it was not renewed if it was not."""

    name: str
    credentials: Credentials | None  # new, or earlier ones that have not expired; None when there are none
    failure: Failure | None  # why this refresh did not renew them
    renewed: bool  # fresh from STS in this refresh


@dataclass(frozen=True)
class SourceResult:
    source: str
    profiles: dict[str, ProfileResult]
    session_from: str | None  # "memory", "keyring", "sts"; None when no session was needed or had
    failure: Failure | None  # the session's failure, shared by every profile that needed it
    retry_after: float | None  # seconds until a retry, when some failure may pass on its own

    @property
    def ok(self) -> bool:
        return all(result.failure is None for result in self.profiles.values())


@dataclass(frozen=True)
class Trouble:
    """A source backing off after failures that may pass on their own: what `status` says about it."""

    failures_in_a_row: int
    retry_at: datetime  # no STS call before this, unless a credential asked for has expired, or forced
    failure: Failure  # the latest of them
    last_attempt: datetime


@dataclass(frozen=True)
class _Session:
    credentials: Credentials
    origin: str  # "memory", "keyring" or "sts"


# The engine --------------------------------------------------------------------

class Engine:
    """Refreshes sources; thread-safe, one refresh at a time per source."""

    def __init__(self, config: Config, *, store: Store, clients: sts.StsClients,
                 drivers: Mapping[str, mfa.MfaDriver], windows: mfa.UsedWindows,
                 clock: Callable[[], datetime] | None = None, sleep: Callable[[float], object] | None = None,
                 jitter: Callable[[], float] = random.random, workers: int = WORKERS,
                 log: logging.Logger = LOG, stop: threading.Event | None = None,
                 hint_config: str | None = None) -> None:
        self.config = config
        self.hint_config = hint_config  # the `--config` the daemon runs with, for the commands messages name
        self.store = store
        self.clients = clients
        self.drivers = drivers
        self.windows = windows
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.stop = stop or threading.Event()
        self.sleep = sleep or self.stop.wait  # a wait the stop event ends at once
        self.jitter = jitter  # uniform in [0, 1): spreads retries (refresh.backoff)
        self.workers = workers
        self.log = log
        self._locks = {name: threading.Lock() for name in config.sources}
        self._sessions: dict[str, Credentials] = {}
        self._served: dict[str, Credentials] = {}
        self._failures_in_a_row: dict[str, int] = {}
        self._trouble: dict[str, Trouble] = {}
        self._failed: dict[str, Failure] = {}  # each profile's latest failure, until it is renewed
        self._skews: dict[str, timedelta] = {}
        self._skew_logged: set[str] = set()
        self._skew_lock = threading.Lock()
        self._clamp_logged: set[str] = set()

    # Public ---------------------------------------------------------------------

    def refresh(self, source: str, *, profiles: Collection[str] | None = None, force: bool = False,
                new_session: bool = False) -> SourceResult:
        """Renew the profiles of `source` that are due: under `refresh_before` left, or all with `force`.

        `force` reuses a fresh session; `new_session` also makes a new one, which
        costs an MFA code (and, with `mfa: prompt`, the user's attention).
        """
        if source not in self.config.sources:
            raise UsageError(f"no source named {source!r} in {self.config.path}")
        targets = [p for p in self.config.profiles.values()
                   if p.source == source and (profiles is None or p.name in profiles)]
        with self._locks[source]:
            if not (force or new_session):
                held = self._held_back(source, targets)
                if held is not None:
                    return held
            return self._with_backoff(self._refresh(self.config.sources[source], targets, force, new_session))

    def take_over(self, old: Engine) -> set[str]:
        """Start from what `old` (the engine of the config before a reload) holds in memory; return the
        profiles whose credentials it took.

        A reload must not stop serving while STS or the keyring is out of reach,
        nor cost an MFA code. Sessions of sources defined as before carry over,
        and still valid credentials of profiles defined as before whose source
        is too: a changed definition (another key, MFA device, role, endpoint)
        may no longer give those credentials, so it starts from nothing. The
        backoff is not carried: a reload is a way to try again at once.
        """
        now = self.clock()
        sessions, served = dict(old._sessions), dict(old._served)  # one-step copies: `old` may still be refreshing
        same = {name for name, source in self.config.sources.items()
                if _source_identity(old.config, old.config.sources.get(name)) == _source_identity(self.config, source)}
        for name in same & set(sessions):
            self._sessions[name] = sessions[name]
        taken = set()
        for name, profile in self.config.profiles.items():
            creds = served.get(name)
            if (profile.source in same and old.config.profiles.get(name) == profile and creds is not None
                    and refresh.is_servable(creds.expiration, now)):
                self._served[name] = creds
                taken.add(name)
        return taken

    def credentials(self, profile: str) -> Credentials | None:
        """The newest credentials of `profile` still good for a call made now (never expired ones)."""
        return self._valid(profile, self.clock())

    def trouble(self, source: str) -> Trouble | None:
        """Why and until when `source` backs off; None when its last refresh did not fail that way."""
        return self._trouble.get(source)

    def clock_skew(self, source: str) -> timedelta | None:
        """How far this machine's clock was ahead of STS's (negative: behind) at the source's last reply."""
        return self._skews.get(source)

    def clock_warning(self, source: str) -> str | None:
        """What to say about this machine's clock, when STS's last reply showed it too far off."""
        skew = self._skews.get(source)
        if skew is None or abs(skew) < sts.SKEW_REPORTED:
            return None
        return f"{sts.describe_skew(skew)}; check timedatectl/NTP (`{credd_command(self.hint_config, 'doctor')}`)"

    # Backing off ----------------------------------------------------------------

    def _held_back(self, source: str, targets: list[Profile]) -> SourceResult | None:
        """While backing off: what is still valid, and the last failure for what is due; None to go ahead."""
        trouble = self._trouble.get(source)
        now = self.clock()
        due = {p.name for p in targets if not self._fresh(self._served.get(p.name), now)}
        urgent = any(self._valid(name, now) is None for name in due)
        if trouble is None or not due or refresh.may_retry(now, trouble.retry_at, trouble.last_attempt,
                                                           urgent):
            return None
        profiles = {p.name: ProfileResult(p.name, self._valid(p.name, now),
                                          self._failed.get(p.name, trouble.failure) if p.name in due else None,
                                          renewed=False)
                    for p in targets}
        return SourceResult(source, profiles, None, None, retry_after=(trouble.retry_at - now).total_seconds())

    def _watch_skew(self, source: str) -> sts.SkewWatcher:
        def watch(skew: timedelta) -> None:
            with self._skew_lock:
                self._skews[source] = skew
                if abs(skew) < sts.SKEW_REPORTED:
                    self._skew_logged.discard(source)
                elif source not in self._skew_logged:  # once, until it comes back within bounds
                    self._skew_logged.add(source)
                    self.log.warning("source %s: %s", source, self.clock_warning(source))

        return watch

    # One refresh ----------------------------------------------------------------

    def _refresh(self, source: Source, targets: list[Profile], force: bool, new_session: bool) -> SourceResult:
        now = self.clock()
        due = [p for p in targets if force or new_session or not self._fresh(self._served.get(p.name), now)]
        if not due:
            return self._result(source.name, targets, {}, None, None)
        try:
            session = self._session(source, new=new_session)
        except RefreshError as e:
            self.log.warning("no session: %s", _about("source", source.name, e.failure.message))
            return self._result(source.name, targets, {p.name: e.failure for p in due}, None, e.failure)
        outcomes = self._profiles(source, session.credentials, due)
        refused = [p for p in due if _session_refused(outcomes[p.name])]
        if refused and session.origin != "sts":
            # A cached session AWS no longer takes (revoked, or the clock was wrong): make one and go again.
            self.log.warning("source %s: STS refused the %s session; getting a new one", source.name, session.origin)
            try:
                session = self._session(source, new=True)
                outcomes.update(self._profiles(source, session.credentials, refused))
            except RefreshError as e:
                self.log.warning("no session: %s", _about("source", source.name, e.failure.message))
                outcomes.update({p.name: e.failure for p in refused})
        return self._result(source.name, targets, outcomes, session.origin, None)

    def _fresh(self, credentials: Credentials | None, now: datetime) -> bool:
        """More than `refresh_before` left: no need to renew them yet."""
        refresh_before = timedelta(seconds=self.config.refresh_before)
        return credentials is not None and refresh.is_fresh(credentials.expiration, now, refresh_before)

    # The session ----------------------------------------------------------------

    def _session(self, source: Source, *, new: bool) -> _Session:
        now = self.clock()
        if not new and self._fresh(self._sessions.get(source.name), now):
            return _Session(self._sessions[source.name], "memory")
        key = self._access_key(source)
        if not new:
            cached = self._cached_session(source, key, now)
            if cached is not None:
                self._sessions[source.name] = cached
                return _Session(cached, "keyring")
        creds = self._new_session(source, key)
        self._sessions[source.name] = creds
        self._cache_session(source, CachedSession(creds, key.key_id, source.mfa_serial))
        return _Session(creds, "sts")

    def _access_key(self, source: Source) -> AccessKey:
        try:
            key = self.store.get_access_key(source.name)
        except KeyringError as e:
            raise RefreshError(Failure(FailureKind.KEYRING, str(e), retryable=True)) from None
        if key is None:
            raise RefreshError(Failure(FailureKind.KEY_MISSING,
                                       f"source {source.name!r} has no access key in the keyring; store it with "
                                       f"`{credd_command(self.hint_config, 'keys', 'set', source.name)}`",
                                       retryable=False))
        return key

    def _cached_session(self, source: Source, key: AccessKey, now: datetime) -> Credentials | None:
        try:
            raw = self.store.get_session(source.name)
        except KeyringError as e:
            self.log.warning("source %s: cannot read the cached session: %s", source.name, e)
            return None
        cached = session_cache.load(raw, source.name, self.log) if raw is not None else None
        if cached is None or not cached.matches(key.key_id, source.mfa_serial):
            return None
        if not self._fresh(cached.credentials, now):
            return None
        self.log.info("source %s: reusing the session cached in the keyring (expires %s)", source.name,
                      _when(cached.credentials))
        return cached.credentials

    def _cache_session(self, source: Source, session: CachedSession) -> None:
        try:
            self.store.set_session(source.name, session_cache.dump(session))
        except KeyringError as e:
            # The credentials are good; only a restart will cost an extra MFA code.
            self.log.error("source %s: the new session could not be cached in the keyring: %s", source.name, e)

    def _new_session(self, source: Source, key: AccessKey) -> Credentials:
        client = self.clients.for_key(source, key)
        if source.mfa_serial is None:
            self._unless_stopping(f"source {source.name!r}")
            return self._logged_session(source, sts.get_session_token(client, source, None, self.clock(),
                                                                      skew=self._watch_skew(source.name),
                                                                      hint_config=self.hint_config))
        driver = self._driver(source)
        # A rejected code may just have been used elsewhere: a driver that makes its own
        # codes tries once more in the next window; a handed-in code needs the user again.
        attempts = 2 if driver.regenerates else 1
        for attempt in range(1, attempts + 1):
            code = self._mfa_code(source, driver)
            self._unless_stopping(f"source {source.name!r}")
            try:
                creds = sts.get_session_token(client, source, code, self.clock(), skew=self._watch_skew(source.name),
                                              hint_config=self.hint_config)
                return self._logged_session(source, creds)
            except StsError as e:
                if e.failure.kind is not FailureKind.MFA_INVALID:
                    raise
            if attempt < attempts:
                self.log.warning("source %s: AWS rejected the MFA code; trying once more with the next one",
                                 source.name)
        raise MfaError(driver.rejected(source))

    def _unless_stopping(self, who: str) -> None:
        """Abandon the refresh here when the daemon is stopping: the last point before an STS call."""
        if self.stop.is_set():
            raise RefreshError(Failure(FailureKind.STOPPED, f"{who}: credd is stopping; the refresh was abandoned "
                                                            "before it reached STS", retryable=True))

    def _logged_session(self, source: Source, creds: Credentials) -> Credentials:
        self.log.info("source %s: new session %r", source.name, creds)
        return creds

    def _driver(self, source: Source) -> mfa.MfaDriver:
        driver = self.drivers.get(source.mfa or "prompt")
        if driver is None:
            raise MfaError(Failure(FailureKind.MFA_UNAVAILABLE,
                                   f"source {source.name!r}: no MFA driver named {source.mfa!r}", retryable=False))
        return driver

    def _mfa_code(self, source: Source, driver: mfa.MfaDriver) -> Secret:
        """A code nobody has sent yet: wait for an unused window where the driver can make its own code."""
        serial = source.mfa_serial
        assert serial is not None
        now = self.clock().timestamp()
        if driver.regenerates:
            window = self.windows.claim(serial, now)
            wait = mfa.seconds_until(now, window)
            if wait > 0:
                self.log.info("source %s: waiting %.0f s for a fresh MFA code (AWS accepts each code once)",
                              source.name, wait)
                self.sleep(wait)
                self._unless_stopping(f"source {source.name!r}")  # not a code (or a key touch) for nothing
        else:
            window = mfa.window_at(now)
        code = driver.code(source, window)
        # A slow command (a key waiting for a touch) may have read a later window's code.
        self.windows.record(serial, max(window, mfa.window_at(self.clock().timestamp())))
        return code

    # The profiles -----------------------------------------------------------------

    def _profiles(self, source: Source, session: Credentials, due: list[Profile]) -> dict[str, Credentials | Failure]:
        outcomes: dict[str, Credentials | Failure] = {p.name: session for p in due if not p.is_role}
        roles = [p for p in due if p.is_role]
        if not roles:
            return outcomes
        for profile in roles:
            self._log_clamp(profile)
        try:
            client = self.clients.for_session(source, session)
        except StsError as e:
            self.log.warning("%s", _about("source", source.name, e.failure.message))
            return {**outcomes, **{p.name: e.failure for p in roles}}
        with ThreadPoolExecutor(max_workers=min(self.workers, len(roles)), thread_name_prefix="credd-sts") as pool:
            futures = {p.name: pool.submit(self._assume, client, p) for p in roles}
        return {**outcomes, **{name: future.result() for name, future in futures.items()}}

    def _assume(self, client, profile: Profile) -> Credentials | Failure:
        try:
            self._unless_stopping(f"profile {profile.name!r}")
            creds = sts.assume_role(client, profile, role_duration(profile), self.clock(),
                                    skew=self._watch_skew(profile.source), hint_config=self.hint_config)
        except RefreshError as e:
            self.log.warning("%s", _about("profile", profile.name, e.failure.message))
            return e.failure
        self.log.info("profile %s: assumed %s as %r", profile.name, profile.role_arn, creds)
        return creds

    def _log_clamp(self, profile: Profile) -> None:
        if profile.duration > CHAINED_ROLE_MAX and profile.name not in self._clamp_logged:
            self._clamp_logged.add(profile.name)
            self.log.warning("profile %s: duration %d s capped at %d s: AWS limits a role assumed with session "
                             "credentials to one hour", profile.name, profile.duration, CHAINED_ROLE_MAX)

    # Results ----------------------------------------------------------------------

    def _result(self, source: str, targets: list[Profile], outcomes: Mapping[str, Credentials | Failure],
                session_from: str | None, session_failure: Failure | None) -> SourceResult:
        now = self.clock()
        profiles = {}
        for profile in targets:
            outcome = outcomes.get(profile.name)
            if isinstance(outcome, Credentials):
                self._served[profile.name] = outcome
                self._failed.pop(profile.name, None)
            failure = outcome if isinstance(outcome, Failure) else None
            if failure is not None:
                self._failed[profile.name] = failure
            profiles[profile.name] = ProfileResult(profile.name, self._valid(profile.name, now), failure,
                                                   renewed=isinstance(outcome, Credentials))
        return SourceResult(source, profiles, session_from, session_failure, retry_after=None)

    def _with_backoff(self, result: SourceResult) -> SourceResult:
        """Count failures that may pass on their own, and say when to try again."""
        failures = [r.failure for r in result.profiles.values() if r.failure is not None]
        if result.failure is not None:
            failures.insert(0, result.failure)
        if not failures and not any(r.renewed for r in result.profiles.values()):
            return result  # nothing was due: no call made, nothing learnt
        retryable = [f for f in failures if f.retryable]
        if not retryable:
            if not failures:
                self._failures_in_a_row.pop(result.source, None)
            self._trouble.pop(result.source, None)
            return result
        now = self.clock()
        count = self._failures_in_a_row[result.source] = self._failures_in_a_row.get(result.source, 0) + 1
        wait = refresh.backoff(count, self.jitter)
        self._trouble[result.source] = Trouble(count, now + wait, retryable[0], last_attempt=now)
        return replace(result, retry_after=wait.total_seconds())

    def _valid(self, profile: str, now: datetime) -> Credentials | None:
        creds = self._served.get(profile)
        return creds if creds is not None and refresh.is_servable(creds.expiration, now) else None


def _source_identity(config: Config, source: Source | None) -> tuple[str, Source] | None:
    """What a source's sessions depend on: its key (keyring_service), MFA device, duration and STS.

    How MFA codes are had (`mfa`, `mfa_command`) is left out: another way to
    the same device gives the same sessions.
    """
    if source is None:
        return None
    return config.keyring_service, replace(source, mfa=None, mfa_command=None)


def _session_refused(outcome: Credentials | Failure) -> bool:
    return isinstance(outcome, Failure) and outcome.kind is FailureKind.EXPIRED_TOKEN


def _about(kind: str, name: str, message: str) -> str:
    """`message` as a log line about `kind` `name`: named once, by the message itself when it does already."""
    return message if message.startswith(f"{kind} {name!r}") else f"{kind} {name}: {message}"


def _when(creds: Credentials) -> str:
    return creds.expiration.strftime("%Y-%m-%dT%H:%M:%SZ")
