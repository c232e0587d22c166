"""How credd writes and reads a moment: `2026-11-22T13:45:00Z` (UTC, whole seconds), and an HTTP `Date` header.

One format everywhere a time leaves credd (credential_process's `Expiration`,
the credentials file's expiration mark, the cached session, `status`,
messages), since the AWS CLI and the SDKs read it back. Standard library only.
"""

from __future__ import annotations

from datetime import datetime, timezone

UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def utc_text(moment: datetime) -> str:
    """`moment` (time-zone aware) as `2026-11-22T13:45:00Z`."""
    return moment.astimezone(timezone.utc).strftime(UTC_FORMAT)


def parse_utc(text: str) -> datetime:
    """A time written by `utc_text`, as an aware datetime in UTC; ValueError for anything else."""
    return datetime.strptime(text, UTC_FORMAT).replace(tzinfo=timezone.utc)


def http_date(text: object) -> datetime | None:
    """An HTTP `Date` header (`Sun, 22 Nov 2026 13:45:00 GMT`) in UTC; None when missing or unreadable.

    One without a zone is taken as UTC, which HTTP dates always are.
    """
    from email.utils import parsedate_to_datetime

    if not isinstance(text, str):
        return None
    try:
        date = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if date is None:
        return None
    return (date if date.tzinfo is not None else date.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
