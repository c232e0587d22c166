"""The cached-session layer around a source kind other than long-term keys: what a new kind gets for free.

`tests/test_engine.py` drives the layers as composed for the one kind there
is (`sources.keys`) against the local STS; here a stand-in kind, which makes
sessions without STS, shows that the cache layer relies on the provider
contract only (`base.SessionProvider`), with a real Store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest

from credd.errors import RefreshError
from credd.model import Credentials, Failure, FailureKind, Secret
from credd.sources.base import Session
from credd.sources.cache import CachedSessions
from credd.store import Store
from tests.fixtures_sts import MemoryKeyring

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
MARGIN = timedelta(minutes=20)
LOG = logging.getLogger("credd.engine")


@dataclass(frozen=True)
class TokenBasis:
    key_id: str
    mfa_serial: str | None = None


class TokenSessions:
    """A stand-in source kind: twelve-hour sessions made from a named token, counted."""

    def __init__(self, token: str, missing: bool = False) -> None:
        self.token = token
        self.missing = missing
        self.made = 0

    def basis(self) -> TokenBasis:
        if self.missing:
            raise RefreshError(Failure(FailureKind.KEY_MISSING, "source 'alice' has no token", retryable=False))
        return TokenBasis(self.token)

    def session(self, basis: TokenBasis) -> Credentials:
        self.made += 1
        return Credentials(f"ASIATOKENSESSION{self.made:04d}", Secret(f"secret-{self.made}-of-{basis.key_id}"),
                           Secret(f"token-{self.made}"), NOW + timedelta(hours=12))


def cached(provider: TokenSessions, store: Store) -> CachedSessions:
    return CachedSessions("alice", provider, store, margin=MARGIN, log=LOG)


def test_memory_then_the_keyring_then_the_provider():
    store = Store(MemoryKeyring(), "credd-test")
    provider = TokenSessions("sso:alice")
    sessions = cached(provider, store)
    first = sessions.session(NOW)
    assert first.origin == "sts" and provider.made == 1
    assert sessions.session(NOW + timedelta(hours=1)) == Session(first.credentials, "memory")

    restarted = TokenSessions("sso:alice")  # a restart: only the keyring remains
    again = cached(restarted, store).session(NOW + timedelta(hours=2))
    assert again.origin == "keyring" and again.credentials == first.credentials and restarted.made == 0

    assert cached(restarted, store).session(NOW + timedelta(hours=2), new=True).origin == "sts"
    assert restarted.made == 1


def test_a_session_is_reused_only_when_made_from_the_same_basis_and_fresh():
    store = Store(MemoryKeyring(), "credd-test")
    cached(TokenSessions("sso:alice"), store).session(NOW)
    other = TokenSessions("sso:bob")
    assert cached(other, store).session(NOW).origin == "sts" and other.made == 1

    late = TokenSessions("sso:bob")  # 15 minutes left: under the margin, so not reused
    assert cached(late, store).session(NOW + timedelta(hours=11, minutes=45)).origin == "sts" and late.made == 1


def test_the_basis_is_read_before_the_keyring_so_a_missing_key_fails_even_with_a_session_cached():
    store = Store(MemoryKeyring(), "credd-test")
    cached(TokenSessions("sso:alice"), store).session(NOW)
    with pytest.raises(RefreshError) as caught:
        cached(TokenSessions("sso:alice", missing=True), store).session(NOW)
    assert caught.value.failure.kind is FailureKind.KEY_MISSING
