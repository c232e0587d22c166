"""How many faults the suite injected, by kind: printed at the end of every run (SECURITY.md quotes it).

The STS front counts the replies it faulted; the local-fault fixtures count the faults they made.
"""

from __future__ import annotations

import threading
from collections import Counter

_lock = threading.Lock()
_counts: Counter[str] = Counter()


def count(kind: str, n: int = 1) -> None:
    with _lock:
        _counts[kind] += n


def summary(prefix: str) -> str:
    """`prefix`'s kinds as `total (kind n, ...)`, most frequent first."""
    with _lock:
        mine = {kind[len(prefix):]: n for kind, n in _counts.items() if kind.startswith(prefix)}
    total = sum(mine.values())
    parts = ", ".join(f"{kind} {n}" for kind, n in sorted(mine.items(), key=lambda item: (-item[1], item[0])))
    return f"{total} ({parts})" if total else "0"
