"""The ways credd serves credentials, each one module beside the others over the same daemon answers.

Today: `unix_socket` (`credd process`, `credd status`, ... over a Unix socket
of the user's own), `container` (the container credentials endpoint) and
`imds` (IMDSv2), the last two over `http` and all three within `limits`.
Each endpoint owns its transport: how it listens, who may ask (the socket
checks the peer's uid), its framing, its limits and deadlines, and how it
turns a reply into its own format. What the answers
are, it leaves to the daemon, through `Answers`: an endpoint never reaches
into the daemon's state, so two endpoints can never answer one question
differently.

To add an endpoint (say the container credentials endpoint, or IMDSv2):
  1. One module here, `credd/endpoints/<name>.py`: a listener that refuses
     what it must (the peer, a missing token) before it asks anything,
     bounded like the socket (a cap on clients, a deadline per request).
  2. Call `Answers`: `quick_reply` on the event loop first (it never
     blocks), and the others in a thread pool (they may wait on STS, the
     keyring or an MFA code). Take a callable that returns the current
     `Answers`, not the daemon itself: a reload replaces the daemon whole.
  3. Its settings in the config schema (`credd/config.py`), and its start
     and stop in `credd/commands/serve.py`, beside the socket's.
  4. Its tests in `tests/test_<name>.py`, against a real listener.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class Answers(Protocol):
    """What the daemon answers, whichever endpoint asks (`credd.daemon.Daemon` is the one there is).

    Requests and replies are dicts in the vocabulary of `credd.protocol`: a
    request as `protocol.decode_request` returns it (validated), a reply
    with `ok` and, when not ok, an `error` and a `message` that says what to
    do. None raises for a user-level failure; an endpoint reports any
    exception as an internal error without its message (it may hold a value).
    """

    def quick_reply(self, request: dict) -> dict | None:
        """The answer if it is at hand without waiting (a ping, fresh credentials); None for the rest.

        Runs on the endpoint's event loop: it must never block.
        """

    def account_id(self, profile: str) -> str | None:
        """The AWS account `profile` acts in, where the config says it (the endpoints' `AccountId`); never blocks."""

    def region(self, profile: str) -> str | None:
        """`profile`'s region (IMDS's placement answers); None for a profile not in the config. Never blocks."""

    def last_updated(self, profile: str, access_key_id: str) -> datetime | None:
        """When the daemon got `profile`'s credentials of `access_key_id` (IMDS's `LastUpdated`); None when it does
        not know (it holds other ones, or got these a moment ago). Never blocks."""

    def not_fresh(self, profile: str) -> str:
        """What an endpoint says of `profile` when `quick_reply` has no fresh credentials for it: the command that
        tells why, with the daemon's own `--config`. Never blocks."""

    def handle(self, request: dict) -> dict:
        """Any request, answered; may block (STS, the keyring, an MFA window)."""

    def ping(self) -> dict:
        """That the daemon is up: its version and pid."""

    def credentials(self, profile: str) -> dict:
        """A profile's credentials (`credentials`: the credential_process document), renewed first if due."""

    def status(self) -> dict:
        """Every profile's and source's state, as `credd status --json` shows it."""

    def refresh_now(self, profiles: list[str]) -> dict:
        """Refresh these profiles (all of them when empty) now, and say what came of each."""

    def hand_in_mfa(self, source: str, code: str) -> dict:
        """Start a new session of `source` with this MFA code."""
