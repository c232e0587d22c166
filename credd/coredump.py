"""No core dumps: a core file of a credd process would hold the secrets in its memory.

Standard library only: `credd process` (the hook) calls it too.

Two measures, of different cost:
  - `no_core_files`: the `RLIMIT_CORE` soft limit 0. One `resource` import and
    a setrlimit, about 0.3 ms; every credd command does it at start, the hook
    included. It stops the kernel writing a core file, and the core helpers a
    `core_pattern` pipe may name (systemd-coredump, apport) honour it too.
  - `undumpable`: `PR_SET_DUMPABLE` 0 (Linux). No core even for a helper that
    ignores the limit, and no ptrace or /proc/PID/mem by the user's other
    processes. It needs ctypes, which costs the hook about 3.5 ms of its 32
    (measured: median of 30 runs, 2-core machine), and buys it nothing: what
    the hook holds, a session of one profile, any process of the same user
    can ask the daemon for over the socket, and the hook hands it to its
    (dumpable) caller anyway. So every command but the hook does it.

`credd exec` gives the program it becomes the user's own limit back
(`restore_user_limit`); the dumpable flag needs nothing: execve resets it.
"""

import sys

PR_SET_DUMPABLE = 4
_user_limit: tuple[int, int] | None = None  # (soft, hard) RLIMIT_CORE credd started with; process-wide, like the limit


def no_core_files(hard: bool = False) -> None:
    """Soft `RLIMIT_CORE` 0 (and hard 0 with `hard`, for a daemon that never gives it back)."""
    global _user_limit  # noqa: PLW0603  process-wide state, as the limit it remembers is
    import resource

    soft, hard_limit = resource.getrlimit(resource.RLIMIT_CORE)
    if _user_limit is None:  # a second call in one process must not take 0 for the user's
        _user_limit = (soft, hard_limit)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0 if hard else hard_limit))


def restore_user_limit() -> None:
    """The soft core limit the user started credd with, for a program that takes credd's place."""
    if _user_limit is not None:  # the hard limit was kept, so raising the soft one back is allowed
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, _user_limit)


def undumpable() -> str | None:
    """Mark the process undumpable (Linux); what went wrong, or None. Elsewhere the core limit is all there is."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes
    import os  # here, not at the top: the hook's fast path imports this module without os

    try:
        failed = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0
        return os.strerror(ctypes.get_errno()) if failed else None  # prctl returns -1, it does not raise
    except (OSError, AttributeError) as e:
        return str(e)
