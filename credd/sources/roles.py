"""The role layer: AssumeRole for the due role profiles of a source, all with one session of it, concurrently.

One session (one MFA code) serves every role. A chained role (`source_profile:`)
is assumed with its parent profile's credentials, so roles go level by level:
first those assumed with the session, then those assumed with a role of the
level before (new in this refresh, else the parent's still valid ones). AWS caps a role assumed with
session credentials at one hour, so a longer `duration` is asked for as one
hour (`Profile.role_duration`), and said once per profile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor

from credd import sts
from credd.errors import RefreshError, StsError
from credd.model import CHAINED_ROLE_MAX, Credentials, Failure, FailureKind, Profile, Source
from credd.sources.base import Effects, about, unless_stopping

WORKERS = 8  # concurrent AssumeRole calls per source


class Roles:
    """Assumes roles with a source's session; a failure of one role leaves the others going."""

    def __init__(self, effects: Effects, skew: Callable[[str], sts.SkewWatcher], workers: int = WORKERS) -> None:
        self.effects = effects
        self.skew = skew  # the watcher of a source's replies, by source name
        self.workers = workers
        self._clamp_logged: set[str] = set()

    def assume(self, source: Source, session: Credentials, roles: Sequence[Profile],
               parents: Mapping[str, Credentials] | None = None) -> dict[str, Credentials | Failure]:
        """Each role profile's new credentials, or why it has none.

        `parents`: the still valid credentials of profiles a chained role may be
        assumed with when they are not renewed in this refresh.
        """
        held: dict[str, Credentials | Failure] = dict(parents or {})
        outcomes: dict[str, Credentials | Failure] = {}
        for level in chain_levels(roles):
            for profile in level:
                self._log_clamp(profile)
            by_parent: dict[str | None, list[Profile]] = {}
            for profile in level:
                by_parent.setdefault(profile.source_profile, []).append(profile)
            for parent, children in by_parent.items():
                done = self._assume_with(source, session if parent is None else held.get(parent), parent, children)
                outcomes.update(done)
                held.update(done)
        return outcomes

    def _assume_with(self, source: Source, credentials: Credentials | Failure | None, parent: str | None,
                     roles: Sequence[Profile]) -> dict[str, Credentials | Failure]:
        """`roles` assumed concurrently with `credentials` (the session's, or the parent profile's)."""
        if not isinstance(credentials, Credentials):
            why = credentials.message if isinstance(credentials, Failure) else "it has no valid credentials"
            failure = Failure(credentials.kind if isinstance(credentials, Failure) else FailureKind.OTHER,
                              f"profile {parent!r}, whose credentials assume this role, failed: {why}",
                              retryable=credentials.retryable if isinstance(credentials, Failure) else True)
            for profile in roles:
                self.effects.log.warning("%s", about("profile", profile.name, failure.message))
            return {p.name: failure for p in roles}
        try:
            client = self.effects.clients.for_session(source, credentials)
        except StsError as e:
            self.effects.log.warning("%s", about("source", source.name, e.failure.message))
            return {p.name: e.failure for p in roles}
        with ThreadPoolExecutor(max_workers=min(self.workers, len(roles)), thread_name_prefix="credd-sts") as pool:
            futures = {p.name: pool.submit(self._assume, client, p) for p in roles}
        return {name: future.result() for name, future in futures.items()}

    def _assume(self, client: sts.StsClient, profile: Profile) -> Credentials | Failure:
        log = self.effects.log
        try:
            unless_stopping(self.effects.stop, f"profile {profile.name!r}")
            creds = sts.assume_role(client, profile, profile.role_duration, self.effects.clock(),
                                    skew=self.skew(profile.source), hint_config=self.effects.hint_config)
        except RefreshError as e:
            log.warning("%s", about("profile", profile.name, e.failure.message))
            return e.failure
        log.info("profile %s: assumed %s as %r", profile.name, profile.role_arn, creds)
        return creds

    def _log_clamp(self, profile: Profile) -> None:
        if profile.duration > CHAINED_ROLE_MAX and profile.name not in self._clamp_logged:
            self._clamp_logged.add(profile.name)
            self.effects.log.warning("profile %s: duration %d s capped at %d s: AWS limits a role assumed with "
                                     "session credentials to one hour", profile.name, profile.duration,
                                     CHAINED_ROLE_MAX)


def chain_levels(roles: Sequence[Profile]) -> list[list[Profile]]:
    """`roles` in levels: a role comes after the role it is assumed with, when that one is in `roles` too.

    The config refuses cycles, so every role finds its level.
    """
    names = {p.name for p in roles}
    depth: dict[str, int] = {}
    by_name = {p.name: p for p in roles}

    def level_of(profile: Profile) -> int:
        if profile.name not in depth:
            parent = profile.source_profile
            depth[profile.name] = 0 if parent is None or parent not in names else level_of(by_name[parent]) + 1
        return depth[profile.name]

    levels: list[list[Profile]] = []
    for profile in roles:
        level = level_of(profile)
        while len(levels) <= level:
            levels.append([])
        levels[level].append(profile)
    return levels
