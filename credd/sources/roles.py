"""The role layer: AssumeRole for the due role profiles of a source, all with one session of it, concurrently.

One session (one MFA code) serves every role. AWS caps a role assumed with
session credentials at one hour, so a longer `duration` is asked for as one
hour (`Profile.role_duration`), and said once per profile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from credd import sts
from credd.errors import RefreshError, StsError
from credd.model import CHAINED_ROLE_MAX, Credentials, Failure, Profile, Source
from credd.sources.base import Effects, about, unless_stopping

WORKERS = 8  # concurrent AssumeRole calls per source


class Roles:
    """Assumes roles with a source's session; a failure of one role leaves the others going."""

    def __init__(self, effects: Effects, skew: Callable[[str], sts.SkewWatcher], workers: int = WORKERS) -> None:
        self.effects = effects
        self.skew = skew  # the watcher of a source's replies, by source name
        self.workers = workers
        self._clamp_logged: set[str] = set()

    def assume(self, source: Source, session: Credentials,
               roles: Sequence[Profile]) -> dict[str, Credentials | Failure]:
        """Each role profile's new credentials, or why it has none."""
        if not roles:
            return {}
        for profile in roles:
            self._log_clamp(profile)
        try:
            client = self.effects.clients.for_session(source, session)
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
