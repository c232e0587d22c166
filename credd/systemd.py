"""sd_notify in the standard library: tell systemd that `credd serve` is ready, reloading or stopping.

The unit is `Type=notify`, so `systemctl --user start credd` (and
`credd service install`) return only once the daemon has sent `READY=1`,
that is once its socket serves: a `credd process` run right after never
finds it missing. The protocol is one datagram to the AF_UNIX socket named
by `$NOTIFY_SOCKET`; a leading `@` names Linux's abstract namespace. Outside
systemd (a terminal, launchd) the variable is unset and `notify` does
nothing, so the daemon calls it unconditionally. The unit file itself is
rendered by `credd.service`.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("credd.systemd")


def notify(message: str, env: Mapping[str, str] = os.environ) -> bool:
    """Send `message` (`READY=1`, `RELOADING=1`, `STOPPING=1`, ...) to systemd; True if it was sent.

    A failure to send is logged, not raised: the daemon serves either way, and
    systemd reports a missing READY=1 itself (it times the start out).
    """
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):  # e.g. systemd 253's vsock: addresses, which user managers never hand out
        log.warning("ignoring NOTIFY_SOCKET=%s: not a Unix socket address", address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as e:
        log.warning("could not tell systemd %r: %s", message, e.strerror or e)
        return False
    return True
