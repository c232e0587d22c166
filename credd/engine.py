"""The STS engine: valid credentials for every profile of a source, with as few MFA codes and calls as possible.

It orchestrates the layers of `credd.sources` for each source: its session
(`sources.cache` around the source kind's provider, `sources.keys`: memory,
else the keyring, else a new one from STS), then every due role profile
assumed with it (`sources.roles`), concurrently, so one code serves them all.
Failures become `Failure`s per profile; credentials that are still valid keep
being served meanwhile. What it keeps itself: what each profile was served,
each profile's latest failure, and each source's `refresh.Backoff`.

After a failure that may pass on its own (throttling, STS down, a malformed
reply) the source backs off: until then a refresh makes no STS call and
serves what is still valid, unless a credential someone asks for has
expired (`refresh.may_retry`), or the user forces it.

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
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

from credd import mfa, refresh, sts
from credd.errors import RefreshError, UsageError
from credd.model import Config, Credentials, Failure, FailureKind, Profile, Source
from credd.refresh import Backoff, Trouble
from credd.sources.base import Effects, Session, about
from credd.sources.cache import CachedSessions
from credd.sources.chain import chain_due
from credd.sources.keys import KeySessions
from credd.sources.roles import WORKERS, Roles
from credd.sources.skew import ClockSkews
from credd.store import Store

LOG = logging.getLogger("credd.engine")


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
        effects = Effects(store, clients, drivers, windows, self.clock, self.sleep, self.stop, log, hint_config)
        self._skews = ClockSkews(log, hint_config)
        self._roles = Roles(effects, self._skews.watcher, workers)
        self._sessions = {name: CachedSessions(name, self._session_provider(source, effects), store,
                                               margin=config.refresh_margin, log=log)
                          for name, source in config.sources.items()}
        self._backoffs = {name: Backoff(jitter) for name in config.sources}
        self._locks = {name: threading.Lock() for name in config.sources}
        self._served: dict[str, Credentials] = {}
        self._failed: dict[str, Failure] = {}  # each profile's latest failure, until it is renewed

    def _session_provider(self, source: Source, effects: Effects) -> KeySessions:
        """The provider of new sessions for the source's kind: today every source is a long-term key."""
        return KeySessions(source, effects, self._skews.watcher(source.name))

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
        served = dict(old._served)  # a one-step copy: `old` may still be refreshing
        same = {name for name, source in self.config.sources.items()
                if _source_identity(old.config, old.config.sources.get(name)) == _source_identity(self.config, source)}
        for name in same:
            held = old._sessions[name].held
            if held is not None:
                self._sessions[name].held = held
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
        backoff = self._backoffs.get(source)
        return backoff.trouble if backoff is not None else None

    def clock_skew(self, source: str) -> timedelta | None:
        """How far this machine's clock was ahead of STS's (negative: behind) at the source's last reply."""
        return self._skews.skew(source)

    def clock_warning(self, source: str) -> str | None:
        """What to say about this machine's clock, when STS's last reply showed it too far off."""
        return self._skews.warning(source)

    # Backing off ----------------------------------------------------------------

    def _held_back(self, source: str, targets: list[Profile]) -> SourceResult | None:
        """While backing off: what is still valid, and the last failure for what is due; None to go ahead."""
        backoff = self._backoffs[source]
        trouble = backoff.trouble
        now = self.clock()
        due = {p.name for p in targets if not self._fresh(self._served.get(p.name), now)}
        urgent = any(self._valid(name, now) is None for name in due)
        if trouble is None or not due or not backoff.holds(now, urgent):
            return None
        profiles = {p.name: ProfileResult(p.name, self._valid(p.name, now),
                                          self._failed.get(p.name, trouble.failure) if p.name in due else None,
                                          renewed=False)
                    for p in targets}
        return SourceResult(source, profiles, None, None, retry_after=(trouble.retry_at - now).total_seconds())

    def _with_backoff(self, result: SourceResult) -> SourceResult:
        """Count failures that may pass on their own, and say when to try again."""
        failures = [r.failure for r in result.profiles.values() if r.failure is not None]
        if result.failure is not None:
            failures.insert(0, result.failure)
        if not failures and not any(r.renewed for r in result.profiles.values()):
            return result  # nothing was due: no call made, nothing learnt
        wait = self._backoffs[result.source].record(failures, self.clock())
        return result if wait is None else replace(result, retry_after=wait.total_seconds())

    # One refresh ----------------------------------------------------------------

    def _refresh(self, source: Source, targets: list[Profile], force: bool, new_session: bool) -> SourceResult:
        now = self.clock()
        due = [p for p in targets if force or new_session or not self._fresh(self._served.get(p.name), now)]
        due = chain_due(due, self.config.profiles, lambda p: self._fresh(self._served.get(p.name), now))
        targets = [*targets, *(p for p in due if p not in targets)]
        if not due:
            return self._result(source.name, targets, {}, None, None)
        try:
            session = self._session(source, new=new_session)
        except RefreshError as e:
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
                outcomes.update({p.name: e.failure for p in refused})
        return self._result(source.name, targets, outcomes, session.origin, None)

    def _session(self, source: Source, *, new: bool) -> Session:
        try:
            return self._sessions[source.name].session(self.clock(), new=new)
        except RefreshError as e:
            self.log.warning("no session: %s", about("source", source.name, e.failure.message))
            raise

    def _profiles(self, source: Source, session: Credentials, due: list[Profile]) -> dict[str, Credentials | Failure]:
        """A session profile is served the session itself; a role profile what AssumeRole gives with it."""
        outcomes: dict[str, Credentials | Failure] = {p.name: session for p in due if not p.is_role}
        now = self.clock()
        # What a chained role not renewed with its parent is assumed with: the parent's valid credentials.
        parents: dict[str, Credentials] = {}
        for profile in self.config.profiles.values():
            if profile.source == source.name:
                valid = session if not profile.is_role else self._valid(profile.name, now)
                if valid is not None:
                    parents[profile.name] = valid
        outcomes.update(self._roles.assume(source, session, [p for p in due if p.is_role], parents))
        return outcomes

    def _fresh(self, credentials: Credentials | None, now: datetime) -> bool:
        """More than `refresh_before` left: no need to renew them yet."""
        return credentials is not None and refresh.is_fresh(credentials.expiration, now, self.config.refresh_margin)

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
