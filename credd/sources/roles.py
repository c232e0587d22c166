"""The role layer: AssumeRole for the due role profiles of a source, all with one session of it, concurrently.

One session (one MFA code) serves every role. A chained role (`source_profile:`)
is assumed with its parent profile's credentials: it starts as soon as they are
in (new in this refresh, else the parent's still valid ones), whatever else is
still in flight, so the links of many chains go side by side, each chain in
order, all in one pool of `workers` threads. AWS caps a role assumed with
session credentials at one hour, so a longer `duration` is asked for as one
hour (`Profile.role_duration`), and said once per profile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait

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
        for profile in roles:
            self._log_clamp(profile)
        roots, below = by_parent(roles)
        outcomes: dict[str, Credentials | Failure] = {}
        if not roles:
            return outcomes
        with ThreadPoolExecutor(max_workers=min(self.workers, len(roles)), thread_name_prefix="credd-sts") as pool:
            flying: dict[Future[Credentials | Failure], Profile] = {}

            def start(parent: str | None, credentials: Credentials | Failure | None, kids: Sequence[Profile]) -> None:
                """`kids` on their way with `credentials`; failed, and all below them, when there are none."""
                client = self._client(source, credentials, parent, kids)
                for kid in kids:
                    if isinstance(client, Failure):
                        settle(kid, client)
                    else:
                        flying[pool.submit(self._assume, client, kid)] = kid

            def settle(profile: Profile, outcome: Credentials | Failure) -> None:
                """A link is in: the links assumed with it go at once."""
                outcomes[profile.name] = outcome
                if profile.name in below:
                    start(profile.name, outcome, below[profile.name])

            for parent, kids in roots.items():
                start(parent, session if parent is None else (parents or {}).get(parent), kids)
            while flying:
                done, _ = wait(flying, return_when=FIRST_COMPLETED)
                for future in done:
                    settle(flying.pop(future), future.result())
        return outcomes

    def _client(self, source: Source, credentials: Credentials | Failure | None, parent: str | None,
                roles: Sequence[Profile]) -> sts.StsClient | Failure:
        """A client for `roles` signing with `credentials` (the session's, or the parent profile's), or why
        there is none."""
        if not isinstance(credentials, Credentials):
            why = credentials.message if isinstance(credentials, Failure) else "it has no valid credentials"
            failure = Failure(credentials.kind if isinstance(credentials, Failure) else FailureKind.OTHER,
                              f"profile {parent!r}, whose credentials assume this role, failed: {why}",
                              retryable=credentials.retryable if isinstance(credentials, Failure) else True)
            for profile in roles:
                self.effects.log.warning("%s", about("profile", profile.name, failure.message))
            return failure
        try:
            return self.effects.clients.for_session(source, credentials)
        except StsError as e:
            self.effects.log.warning("%s", about("source", source.name, e.failure.message))
            return e.failure

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


def by_parent(roles: Sequence[Profile]) -> tuple[dict[str | None, list[Profile]], dict[str, list[Profile]]]:
    """(the roles that can start at once, by the profile they are assumed with: None for the session;
    the roles assumed with a role of `roles`, by that role's name), each list in the order of `roles`.

    A role waits for its parent only when the parent is renewed in this refresh too;
    the config refuses cycles, so every role is reached from a root.
    """
    names = {p.name for p in roles}
    roots: dict[str | None, list[Profile]] = {}
    below: dict[str, list[Profile]] = {}
    for profile in roles:
        parent = profile.source_profile
        if parent is not None and parent in names:
            below.setdefault(parent, []).append(profile)
        else:
            roots.setdefault(parent, []).append(profile)
    return roots, below
