"""The daemon's logic: refresh on schedule, keep the credentials file in step, answer socket requests.

`Daemon` owns no threads, sockets or signals (`commands/serve.py` wires those
up); it takes an engine, a scheduler-like `plan` callable, a file writer and a
clock, so tests drive it directly. Every request handler returns a reply dict
for `protocol`; none raises for a user-level failure.
"""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from credd import __version__, credfile, protocol, refresh
from credd.atomicfile import update_file
from credd.engine import Engine, SourceResult
from credd.errors import CreddError
from credd.mfa import CodeInbox
from credd.model import Config, Credentials, Failure, FailureKind

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
        "Expiration": _utc(credentials.expiration),
    }


@dataclass
class ProfileStatus:
    last_refresh: datetime | None = None
    last_error: Failure | None = None


class CredentialsWriter:
    """Writes the owned profiles into the shared credentials file, one atomic update per refresh."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()  # shutdown waits on this: a write in flight always finishes

    def __call__(self, write: dict[str, Credentials], remove: Iterable[str]) -> None:
        remove = [name for name in remove if name not in write]
        if not write and not remove:
            return
        with self.lock:
            update_file(self.path, lambda text: credfile.update(text, write, remove, path=str(self.path)))


class Daemon:
    def __init__(self, config: Config, engine: Engine, inbox: CodeInbox, *,
                 plan: Callable[[str, datetime], None], write: Callable[[dict, Iterable[str]], None],
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 jitter: Callable[[], float] = random.random) -> None:
        self.config = config
        self.engine = engine
        self.inbox = inbox
        self.plan = plan
        self.write = write
        self.clock = clock
        self.jitter = jitter
        self.status_of = {name: ProfileStatus() for name in config.profiles}
        self._in_file: set[str] = set()  # owned profiles credd has written and not yet removed

    # Refreshing -------------------------------------------------------------------

    def refresh_source(self, source: str, *, profiles: Iterable[str] | None = None, force: bool = False,
                       new_session: bool = False) -> SourceResult:
        """Refresh what is due, write the file, record the outcome, plan the next run."""
        result = self.engine.refresh(source, profiles=profiles, force=force, new_session=new_session)
        now = self.clock()
        for name, outcome in result.profiles.items():
            status = self.status_of.setdefault(name, ProfileStatus())
            if outcome.renewed:
                status.last_refresh, status.last_error = now, None
            elif outcome.failure is not None:
                status.last_error = outcome.failure
        self._write_file(result)
        self.plan(source, self.next_run(result, now))
        return result

    def refresh_all(self, sources: Iterable[str] | None = None) -> None:
        for source in sources if sources is not None else list(self.config.sources):
            try:
                self.refresh_source(source)
            except Exception as e:  # one source's bug must not stop the others, nor leak a value
                log.error("source %s: refresh failed: %s", source, type(e).__name__)

    def next_run(self, result: SourceResult, now: datetime) -> datetime:
        """The earliest of: each credential's refresh time, each expiry (to drop it), a retry after failure."""
        refresh_before = timedelta(seconds=self.config.refresh_before)
        times = []
        for outcome in result.profiles.values():
            if outcome.credentials is not None:
                expiration = outcome.credentials.expiration
                times.append(refresh.refresh_at(expiration, refresh_before, now, self.jitter))
                times.append(expiration - refresh.SERVE_MARGIN)
        if result.retry_after is not None:
            times.append(now + timedelta(seconds=result.retry_after))
        elif not result.ok and not _waits_for_user(result):
            times.append(now + STUCK_RETRY)
        return max(now, min(times)) if times else now + STUCK_RETRY

    def _write_file(self, result: SourceResult) -> None:
        owned = {p.name for p in self.config.profiles.values() if p.write and p.source == result.source}
        write = {name: o.credentials for name, o in result.profiles.items()
                 if name in owned and o.renewed and o.credentials is not None}
        # Credentials that expired unrenewed leave the file: the user's next `aws` call then fails
        # with "could not be found" (or runs the credential_process hook, whose message says why),
        # not with an ExpiredToken that points nowhere.
        gone = {name for name, o in result.profiles.items() if name in owned and o.credentials is None}
        remove = gone & self._in_file
        try:
            self.write(write, remove)
        except CreddError as e:
            log.error("%s", e)
            failure = Failure(FailureKind.OTHER, str(e), retryable=True)
            for name in write:
                self.status_of[name].last_error = failure
            return
        self._in_file = (self._in_file | set(write)) - remove

    def remove_profiles(self, names: Iterable[str]) -> None:
        """Drop credd's sections of profiles it no longer writes (after a reload)."""
        names = set(names)
        if names:
            self.write({}, names)
            self._in_file -= names

    # Requests ---------------------------------------------------------------------

    def handle(self, request: dict) -> dict:
        op = request["op"]
        if op == "ping":
            return {"ok": True, "version": __version__, "pid": os.getpid()}
        if op == "credentials":
            return self.credentials(request["profile"])
        if op == "mfa":
            return self.hand_in_mfa(request["source"], request["code"])
        if op == "refresh":
            return self.refresh_now(request["profiles"])
        return self.status()

    def credentials(self, name: str) -> dict:
        profile = self.config.profiles.get(name)
        if profile is None:
            return self._unknown_profile(name)
        creds = self.engine.credentials(name)
        refresh_before = timedelta(seconds=self.config.refresh_before)
        if creds is None or not refresh.is_fresh(creds.expiration, self.clock(), refresh_before):
            # Concurrent requests queue on the engine's per-source lock; the later ones
            # find the credentials fresh and make no STS call of their own.
            self.refresh_source(profile.source, profiles=[name])
            creds = self.engine.credentials(name)
        if creds is not None:
            return {"ok": True, "credentials": process_json(creds)}
        failure = self.status_of[name].last_error
        if failure is not None and failure.kind is FailureKind.MFA_NEEDED:
            return {"ok": False, "error": "mfa-required", "source": profile.source, "message": failure.message}
        message = failure.message if failure else f"profile {name} has no credentials yet; see `credd status`"
        return protocol.error_reply("failed", message)

    def hand_in_mfa(self, source: str, code: str) -> dict:
        if source not in self.config.sources:
            names = ", ".join(sorted(self.config.sources)) or "none"
            return protocol.error_reply("unknown-source", f"no source named {source!r} (sources: {names})")
        if self.config.sources[source].mfa_serial is None:
            return protocol.error_reply("failed", f"source {source} has no mfa_serial, so it needs no MFA code")
        self.inbox.put(source, code)
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
                outcome[name] = {"ok": one.renewed, "message": one.failure.message if one.failure else None}
        return {"ok": all(item["ok"] for item in outcome.values()), "profiles": outcome}

    def status(self) -> dict:
        now = self.clock()
        refresh_before = timedelta(seconds=self.config.refresh_before)
        rows = []
        for profile in self.config.profiles.values():
            creds = self.engine.credentials(profile.name)
            status = self.status_of[profile.name]
            if creds is None:
                state = "needs-mfa" if status.last_error and status.last_error.kind is FailureKind.MFA_NEEDED \
                    else "no-credentials"
            else:
                state = "fresh" if refresh.is_fresh(creds.expiration, now, refresh_before) else "expiring"
            rows.append({
                "profile": profile.name,
                "source": profile.source,
                "role_arn": profile.role_arn,
                "write": profile.write,
                "state": state,
                "expiration": _utc(creds.expiration) if creds else None,
                "seconds_left": int((creds.expiration - now).total_seconds()) if creds else None,
                "last_refresh": _utc(status.last_refresh) if status.last_refresh else None,
                "last_error": status.last_error.message if status.last_error else None,
            })
        return {"ok": True, "version": __version__, "pid": os.getpid(), "config": str(self.config.path),
                "now": _utc(now), "profiles": rows}

    def _unknown_profile(self, name: str) -> dict:
        return protocol.error_reply("unknown-profile", f"profile {name!r} is not in {self.config.path}; add it "
                                    "under `profiles:` and reload (`systemctl --user reload credd` or SIGHUP)")


def _waits_for_user(result: SourceResult) -> bool:
    """Only the user can help: a `prompt` source waiting for a code."""
    failures = [o.failure for o in result.profiles.values() if o.failure is not None]
    return bool(failures) and all(f.kind is FailureKind.MFA_NEEDED for f in failures)


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
