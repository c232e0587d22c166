"""`credd process PROFILE`: the credential_process hook, spawned for every AWS CLI call.

`run`: the profile (and `--config`, read by `commandline.process_args`) in, the
credential_process JSON out, or one line on stderr that names the cause and
the fix (exit status 1). Asking the daemon, bounding
the wait (the AWS CLI puts no timeout on the hook) and the MFA prompt on the
terminal are `client`'s. Standard library only (json, os, socket, sys; `re`
only for a custom socket path), and no pathlib: start-up time is the hook's
whole cost.
"""

from __future__ import annotations

import json
import os
import sys

from credd import client, protocol
from credd.errors import CreddError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see paths.py)
if TYPE_CHECKING:
    from collections.abc import Mapping


def run(config: str | None, profile: str, env: Mapping[str, str] = os.environ, first_reply: dict | None = None) -> int:
    """`first_reply`: the daemon's reply to this profile's credentials request, when the fast path has it already."""
    try:
        path = client.socket_path(env, config)
        credentials = client.credentials(path, profile, protocol.client_timeout(env), config, first_reply)
    except CreddError as e:
        sys.stderr.write(f"credd: {e}\n")
        return 1
    sys.stdout.write(json.dumps(credentials) + "\n")
    return 0
