"""Where credd sends STS calls, and which URLs it will send them to at all. Pure.

The request for a session carries the MFA code and the reply carries the
temporary secret keys, so the endpoint is chosen by credd alone: the source's
`sts_endpoint`, else the HTTPS endpoint of its region. botocore would also take
one from `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_STS` or `endpoint_url` in
`~/.aws/config` (a LocalStack set-up, often plain http); credd ignores those, and
`credd doctor` says so when one is set.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

from credd.model import Source

# What botocore reads an STS endpoint from when none is passed to it (and credd passes one).
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL")
# DNS suffixes of the partitions whose regions do not end in amazonaws.com.
PARTITION_SUFFIXES = (("cn-", "amazonaws.com.cn"), ("us-isob-", "sc2s.sgov.gov"), ("us-iso-", "c2s.ic.gov"))


def endpoint_for(source: Source) -> str:
    """The STS endpoint a source's calls go to: its `sts_endpoint`, else its region's."""
    if source.sts_endpoint:
        return source.sts_endpoint
    suffix = next((dns for prefix, dns in PARTITION_SUFFIXES if source.region.startswith(prefix)), "amazonaws.com")
    return f"https://sts.{source.region}.{suffix}"


def is_safe(url: str) -> bool:
    """HTTPS anywhere, or plain HTTP to this machine only (a local STS, a test)."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return bool(parts.hostname)
    return parts.scheme == "http" and is_loopback_host(parts.hostname or "")


def is_loopback_host(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (with or without the brackets of a URL)."""
    host = host.lower().removeprefix("[").removesuffix("]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def configured_elsewhere(env: Mapping[str, str], aws_profile: Mapping[str, object]) -> list[str]:
    """The endpoint URLs botocore would take for STS that credd ignores: `NAME=URL` for each one set.

    `aws_profile` is the `~/.aws/config` profile botocore would read (`$AWS_PROFILE`'s, else default).
    """
    found = [f"{name}={env[name]}" for name in ENDPOINT_VARIABLES if env.get(name)]
    url = aws_profile.get("endpoint_url")
    if isinstance(url, str) and url:
        found.append(f"endpoint_url = {url}")
    return found
