"""Role chaining: which profiles a refresh must renew together so that a chain stays whole.

Pure: profiles in, profiles out. A chained role (`source_profile:`) is assumed
with its parent's credentials, so a due role takes along each ancestor that is
not fresh itself (it is renewed first: `roles.by_parent`), and a renewed
role takes along every role below it, so a chain refreshes in order and all
its links are renewed before the shortest one ends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from credd.model import Profile


def chain_due(due: Sequence[Profile], profiles: Mapping[str, Profile],
              fresh: Callable[[Profile], bool]) -> list[Profile]:
    """`due`, plus the ancestors that are not `fresh` and the descendants of everything renewed; in config order."""
    names = {p.name for p in due}
    for profile in due:
        parent = profiles.get(profile.source_profile) if profile.source_profile else None
        while parent is not None and parent.is_role and not fresh(parent):
            names.add(parent.name)
            parent = profiles.get(parent.source_profile) if parent.source_profile else None
    grew = True
    while grew:
        below = {p.name for p in profiles.values() if p.source_profile in names and p.name not in names}
        names |= below
        grew = bool(below)
    return [p for p in profiles.values() if p.name in names]
