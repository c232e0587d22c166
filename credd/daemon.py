"""The daemon's logic: refresh on schedule, keep the credentials file in step, answer requests.

`Daemon` owns no threads, sockets or signals (`commands/serve.py` wires those
up); it takes an engine, a scheduler-like `plan` callable, a file writer and a
clock, so tests drive it directly. It is the `Answers` every endpoint calls
(`credd.endpoints`): each returns a reply dict for `protocol`; none raises
for a user-level failure. The credentials file's side is its `FileSync`.
"""

from __future__ import annotations

import logging
import math
import os
import random
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from credd import __version__, credfile, protocol, refresh, shadow
from credd.commandline import credd_command
from credd.durations import format_duration
from credd.engine import Engine, ProfileResult, SourceResult
from credd.errors import CreddError, MfaCodeUsedError
from credd.filesync import FileSync, Writer
from credd.mfa import CodeInbox
from credd.model import Config, Credentials, Failure, FailureKind
from credd.timefmt import utc_text

log = logging.getLogger("credd.daemon")

# A failure nobody can fix by waiting (a bad key, a missing seed) is still retried this often,
# so that `credd keys set` or a config fix takes effect without a restart.
STUCK_RETRY = timedelta(minutes=15)


def process_json(credentials: Credentials) -> dict:
    """The credential_process contract: Version 1 and an Expiration with its time zone."""
    return {
        "Version": 1,
        "AccessKeyId": credentials.access_key_id,
        "SecretAccessKey": credentials.secret_access_key.reveal(),
        "SessionToken": credentials.session_token.reveal(),
        "Expiration": utc_text(credentials.expiration),
    }


@dataclass(frozen=True)
class Obtained:
    """When credd got the credentials whose access key id is `key_id` (IMDS's `LastUpdated`)."""

    key_id: str
    at: datetime


@dataclass
class ProfileStatus:
    last_refresh: datetime | None = None
    # Replaced whole, never changed in place: an endpoint reads it on its event loop, without a lock.
    obtained: Obtained | None = None
    last_error: Failure | None = None
    last_error_at: datetime | None = None  # when last_error last happened (a backing-off refresh repeats it)


class Daemon:
    def __init__(self, config: Config, engine: Engine, inbox: CodeInbox, *,
                 plan: Callable[[str, datetime], None], write: Writer,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 jitter: Callable[[], float] = random.random) -> None:
        self.config = config
        self.engine = engine
        self.inbox = inbox
        self.plan = plan
        self.files = FileSync(config.credentials_file, write, (p.name for p in config.profiles.values() if p.write))
        self.clock = clock
        self.jitter = jitter
        self.status_of = {name: ProfileStatus() for name in config.profiles}
        self._refreshing: dict[str, int] = {}  # refreshes in flight per source, for `status`
        self.loaded_at = clock()  # when this config was loaded
        self.reload_error: tuple[datetime, str] | None = None  # a later reload refused: when, and why
        self._busy_lock = threading.Lock()

    # Refreshing -------------------------------------------------------------------

    def refresh_source(self, source: str, *, profiles: Collection[str] | None = None, force: bool = False,
                       new_session: bool = False) -> SourceResult:
        """Refresh what is due, write the file, record the outcome, plan the next run."""
        with self._busy_lock:
            self._refreshing[source] = self._refreshing.get(source, 0) + 1
        try:
            result = self.engine.refresh(source, profiles=profiles, force=force, new_session=new_session)
        finally:
            with self._busy_lock:
                self._refreshing[source] -= 1
        now = self.clock()
        for name, outcome in result.profiles.items():
            status = self.status_of.setdefault(name, ProfileStatus())
            if outcome.renewed:
                status.last_refresh, status.last_error, status.last_error_at = now, None, None
                got = outcome.credentials
                # A session profile "renewed" with the session already held keeps the time credd got that session.
                if got is not None and (status.obtained is None or status.obtained.key_id != got.access_key_id):
                    status.obtained = Obtained(got.access_key_id, now)
            elif outcome.failure is not None and outcome.failure is not status.last_error:
                status.last_error, status.last_error_at = outcome.failure, now
        self._write_file(result)
        self.plan(source, self.next_run(result, now))
        return result

    def refresh_all(self, sources: Iterable[str] | None = None) -> None:
        for source in sources if sources is not None else list(self.config.sources):
            try:
                self.refresh_source(source)
            except Exception as e:  # noqa: BLE001  one source's bug must not stop the others, nor leak a value
                log.error("source %s: refresh failed: %s; trying again in %d min", source, type(e).__name__,
                          STUCK_RETRY.total_seconds() // 60)
                self.plan(source, self.clock() + STUCK_RETRY)  # nor stop this source for good

    def next_run(self, result: SourceResult, now: datetime) -> datetime:
        """The earliest of: each credential's refresh time, each expiry (to drop it), a retry after failure,
        and a new try at the credentials file while it holds credentials back.

        Every profile of the source counts, not only those of this refresh: the
        plan replaces the source's previous one. A refresh time that a failure
        made due at once waits for the retry (the backoff, or STUCK_RETRY when
        waiting cannot help), so a failing source never runs in a loop.
        """
        refresh_before = self.config.refresh_margin
        trouble = self.engine.trouble(result.source)
        retry: datetime | None
        if result.retry_after is not None:
            retry = now + timedelta(seconds=result.retry_after)
        elif trouble is not None:
            retry = refresh.next_attempt(trouble.retry_at, now)  # not hours ahead after the clock went back
        else:
            retry = None if result.ok else now + STUCK_RETRY  # waiting cannot help: a look now and then
        times = [retry] if retry is not None else []
        file_retry = self.files.retry_at(_profiles_of(self.config, result.source), now)
        if file_retry is not None:  # such a run calls STS only for what is due
            times.append(file_retry)
        for name in _profiles_of(self.config, result.source):
            outcome = result.profiles.get(name)
            creds = outcome.credentials if outcome is not None else self.engine.credentials(name)
            if creds is None:
                continue
            issued = now if outcome is not None and outcome.renewed else None
            due = refresh.refresh_at(creds.expiration, refresh_before, now, self.jitter, issued=issued)
            times.append(max(due, retry) if retry is not None else due)
            times.append(creds.expiration - refresh.SERVE_MARGIN)  # to drop it from the file when it expires
        return max(now, min(times)) if times else now + STUCK_RETRY

    def _write_file(self, result: SourceResult) -> None:
        owned = {p.name for p in self.config.profiles.values() if p.write and p.source == result.source}
        write = {name: o.credentials for name, o in result.profiles.items()
                 if name in owned and o.renewed and o.credentials is not None}
        # Credentials that expired unrenewed leave the file: the user's next `aws` call then fails
        # with "could not be found" (or runs the credential_process hook, whose message says why),
        # not with an ExpiredToken that points nowhere.
        gone = {name for name, o in result.profiles.items() if name in owned and o.credentials is None}
        synced = self.files.update(result.source, write, gone, owned, held=self.engine.credentials,
                                   shadowed=self._shadowed)
        for name, failure in synced.failed.items():
            self.status_of[name].last_error = failure
        for name, failure in synced.caught_up.items():
            if self.status_of[name].last_error is failure:
                self.status_of[name].last_error = None  # the write that failed has now been made

    def _shadowed(self, name: str, section: credfile.LongTermSection) -> Failure:
        """Why `name` is not in the file: a long-term key in its section; the fix depends on whose key it is."""
        source = self.config.profiles[name].source
        try:
            key = self.engine.store.get_access_key(source)
        except CreddError:
            key = None  # the keyring is out of reach: the advice that does not need it
        message = shadow.message(shadow.advice(name, source, f"{self.config.credentials_file}:{section.line}",
                                               section.key_id, key.key_id if key is not None else None,
                                               str(self.config.path), self.engine.hint_config))
        return Failure(FailureKind.SHADOWED, message, retryable=True)

    # Requests ---------------------------------------------------------------------

    def handle(self, request: dict) -> dict:
        op = request["op"]
        if op == "ping":
            return self.ping()
        if op == "credentials":
            return self.credentials(request["profile"])
        if op == "mfa":
            return self.hand_in_mfa(request["source"], request["code"])
        if op == "refresh":
            return self.refresh_now(request["profiles"])
        return self.status()

    def quick_reply(self, request: dict) -> dict | None:
        """What can be answered from memory without waiting (a ping, fresh credentials); None for the rest.

        An endpoint calls this on its event loop, before it hands a request to `handle` in a thread.
        """
        if request["op"] == "ping":
            return self.ping()
        if request["op"] == "credentials" and request["profile"] in self.config.profiles:
            creds = self._fresh(request["profile"])
            if creds is not None:
                return {"ok": True, "credentials": process_json(creds)}
        return None

    def ping(self) -> dict:
        return {"ok": True, "version": __version__, "pid": os.getpid()}

    def account_id(self, profile: str) -> str | None:
        return self.config.account_of(profile) if profile in self.config.profiles else None

    def region(self, profile: str) -> str | None:
        return self.config.region_of(profile) if profile in self.config.profiles else None

    def last_updated(self, profile: str, access_key_id: str) -> datetime | None:
        """When credd got `profile`'s credentials of `access_key_id` (from STS, or the keyring's cached session at
        start-up); None for credentials it does not hold, or holds since a moment and has not noted yet."""
        status = self.status_of.get(profile)
        obtained = status.obtained if status is not None else None
        return obtained.at if obtained is not None and obtained.key_id == access_key_id else None

    def not_fresh(self, profile: str) -> str:
        return (f"credd holds no fresh credentials for profile {profile} right now; run `{self._command('status')}` "
                "to see why (it renews them on its own schedule)")

    def _fresh(self, name: str) -> Credentials | None:
        creds = self.engine.credentials(name)
        refresh_before = self.config.refresh_margin
        return creds if creds is not None and refresh.is_fresh(creds.expiration, self.clock(), refresh_before) else None

    def credentials(self, name: str) -> dict:
        profile = self.config.profiles.get(name)
        if profile is None:
            return self._unknown_profile(name)
        creds = self._fresh(name)
        if creds is None:
            # Concurrent requests queue on the engine's per-source lock; the later ones
            # find the credentials fresh and make no STS call of their own.
            self.refresh_source(profile.source, profiles=[name])
            creds = self.engine.credentials(name)
        if creds is not None:
            return {"ok": True, "credentials": process_json(creds)}
        failure = self.status_of[name].last_error
        if failure is not None and failure.kind is FailureKind.MFA_NEEDED:
            return {"ok": False, "error": "mfa-required", "source": profile.source, "message": failure.message}
        message = (failure.message if failure
                   else f"profile {name} has no credentials yet; see `{self._command('status')}`")
        trouble = self.engine.trouble(profile.source)
        if trouble is not None:  # backing off: say when it tries again, and how not to wait
            now = self.clock()
            when = refresh.next_attempt(trouble.retry_at, now)
            wait = format_duration(max(0, math.ceil((when - now).total_seconds())))
            message = (f"{message.rstrip('.')}; next attempt at {utc_text(when)} (in {wait}), "
                       f"or run `{self._command('refresh', name)}` to try now")
        return protocol.error_reply("failed", message)

    def hand_in_mfa(self, source: str, code: str) -> dict:
        if source not in self.config.sources:
            names = ", ".join(sorted(self.config.sources)) or "none"
            return protocol.error_reply("unknown-source", f"no source named {source!r} (sources: {names})")
        if self.config.sources[source].mfa_serial is None:
            return protocol.error_reply("failed", f"source {source} has no mfa_serial, so it needs no MFA code")
        try:
            self.inbox.put(source, code, serial=self.config.sources[source].mfa_serial)
        except MfaCodeUsedError as e:  # its own kind: the hook then asks for the next code
            return protocol.error_reply("mfa-code-used", str(e))
        result = self.refresh_source(source, new_session=True)
        failures = [o.failure for o in result.profiles.values() if o.failure is not None]
        if result.failure is not None or failures:
            return protocol.error_reply("failed", (result.failure or failures[0]).message)
        return {"ok": True, "message": f"source {source}: new session, {len(result.profiles)} profile(s) refreshed"}

    def refresh_now(self, names: list[str]) -> dict:
        unknown = [name for name in names if name not in self.config.profiles]
        if unknown:
            return self._unknown_profile(unknown[0])
        wanted = set(names) or set(self.config.profiles)
        sources = sorted({self.config.profiles[name].source for name in wanted})
        outcome = {}
        for source in sources:
            targets = [name for name in wanted if self.config.profiles[name].source == source]
            result = self.refresh_source(source, profiles=targets, force=True)
            for name, one in result.profiles.items():
                outcome[name] = self._refresh_outcome(name, one, result.session_from)
        return {"ok": all(item["ok"] for item in outcome.values()), "profiles": outcome}

    def _refresh_outcome(self, name: str, one: ProfileResult, session_from: str | None) -> dict:
        """What a forced refresh did for one profile, as `credd refresh` reports it.

        `outcome`: "renewed" (new from STS, and in the file where it is written
        there), "valid" (not renewed; earlier credentials still served),
        "not-written" (served over the socket, but the file does not have them),
        "failed" (nothing to serve). `ok`: served fresh, with nothing gone wrong.
        `ok` and `message` are the fields older clients read.
        """
        profile = self.config.profiles[name]
        creds = one.credentials
        # A session profile "renewed" with the session in memory or the keyring got nothing new: a new
        # session costs an MFA code, so a forced refresh reuses a fresh one.
        reused = one.renewed and not profile.is_role and session_from in ("memory", "keyring")
        unwritten = self.files.left_out(name) if profile.write else None
        if creds is None:
            outcome = "failed"
            reason = one.failure.message if one.failure else f"profile {name} has no credentials"
        elif unwritten is not None:
            outcome, reason = "not-written", unwritten.message
        elif one.renewed and not reused:
            outcome, reason = "renewed", None
        else:
            outcome = "valid"
            kept = "in memory" if session_from == "memory" else "cached in the keyring"
            reason = one.failure.message if one.failure else (
                f"the session of source {profile.source} ({kept}) is still fresh, and a new one costs an MFA code")
        fresh = creds is not None and refresh.is_fresh(creds.expiration, self.clock(),
                                                      self.config.refresh_margin)
        return {
            "ok": outcome in ("renewed", "valid") and one.failure is None and fresh,
            "outcome": outcome,
            "expiration": utc_text(creds.expiration) if creds else None,
            "renewed": one.renewed and not reused,
            "written": (self.files.in_file(name) and unwritten is None) if profile.write else None,
            "reason": reason,
            "message": one.failure.message if one.failure else (reason if outcome in ("failed", "not-written")
                                                                 else None),
        }

    def status(self) -> dict:
        """Every profile's state and last error; for a source in trouble, how often it failed and when it
        tries again; a clock far off STS's. Fields are only ever added, for scripts that read `--json`."""
        now = self.clock()
        refresh_before = self.config.refresh_margin
        sources = {name: _source_status(self.engine, name, now) for name in self.config.sources}
        rows = []
        for profile in self.config.profiles.values():
            creds = self.engine.credentials(profile.name)
            status = self.status_of[profile.name]
            if creds is None and self._refreshing.get(profile.source):
                state = "refreshing"  # none yet, and on the way
            elif creds is None and status.last_refresh is None and status.last_error is None:
                state = "starting"  # not tried yet: the daemon has just started (or reloaded)
            elif creds is None:
                state = "needs-mfa" if status.last_error and status.last_error.kind is FailureKind.MFA_NEEDED \
                    else "no-credentials"
            elif profile.write and (left_out := self.files.left_out(profile.name)) is not None:
                # `aws` reads the file, not what credd holds
                state = "shadowed" if left_out.kind is FailureKind.SHADOWED else "not-written"
            else:
                state = "fresh" if refresh.is_fresh(creds.expiration, now, refresh_before) else "expiring"
            error = status.last_error
            rows.append({
                "profile": profile.name,
                "source": profile.source,
                "role_arn": profile.role_arn,
                "write": profile.write,
                "state": state,
                "expiration": utc_text(creds.expiration) if creds else None,
                "seconds_left": int((creds.expiration - now).total_seconds()) if creds else None,
                "last_refresh": utc_text(status.last_refresh) if status.last_refresh else None,
                "last_error": error.message if error else None,
                "last_error_kind": error.kind.value if error else None,
                "last_error_at": utc_text(status.last_error_at) if error and status.last_error_at else None,
                "failures_in_a_row": sources[profile.source]["failures_in_a_row"] if error else 0,
                "next_attempt": sources[profile.source]["next_attempt"] if error else None,
            })
        failed = self.reload_error
        return {"ok": True, "version": __version__, "pid": os.getpid(), "config": str(self.config.path),
                "now": utc_text(now), "profiles": rows, "sources": sources,
                "config_loaded_at": utc_text(self.loaded_at),
                "reload_error": {"at": utc_text(failed[0]), "message": failed[1]} if failed else None}

    def _command(self, *words: str) -> str:
        """A credd command line for a hint, with the `--config` the daemon runs with (the engine's)."""
        return credd_command(self.engine.hint_config, *words)

    def _unknown_profile(self, name: str) -> dict:
        return protocol.error_reply("unknown-profile", f"profile {name!r} is not in {self.config.path}; add it "
                                    "under `profiles:` and reload (`systemctl --user reload credd` or SIGHUP)")


def _profiles_of(config: Config, source: str) -> list[str]:
    return [p.name for p in config.profiles.values() if p.source == source]


def _source_status(engine: Engine, source: str, now: datetime) -> dict:
    """A source's backoff and clock, as `status` shows them."""
    trouble = engine.trouble(source)
    skew = engine.clock_skew(source)
    return {
        "failures_in_a_row": trouble.failures_in_a_row if trouble else 0,
        "next_attempt": utc_text(refresh.next_attempt(trouble.retry_at, now)) if trouble else None,
        "last_error_kind": trouble.failure.kind.value if trouble else None,
        "clock_skew_seconds": round(skew.total_seconds()) if skew is not None else None,  # + ahead of STS
        "clock_warning": engine.clock_warning(source),
    }
