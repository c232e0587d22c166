"""The reference in docs/ says what the code does: every config key documented, and nothing documented that is not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from credd import config

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LEVELS = {"Top level": config.TOP_KEYS, "sources.NAME": config.SOURCE_KEYS, "profiles.NAME": config.PROFILE_KEYS}
# Keys documented ahead of the schema, by level: none (a key added on one branch and documented on another
# would go here, named, until both merge).
AHEAD_OF_SCHEMA: dict[str, set[str]] = {}


def documented_keys() -> dict[str, set[str]]:
    """The first column of each level's table in docs/config.md, by the heading above it."""
    keys: dict[str, set[str]] = {}
    heading = None
    for line in (DOCS / "config.md").read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
        match = re.match(r"\| `([a-z_]+)` \|", line)
        if match and heading in LEVELS:
            keys.setdefault(heading, set()).add(match.group(1))
    return keys


@pytest.mark.parametrize("level", list(LEVELS))
def test_config_reference_matches_the_schema(level: str):
    documented = documented_keys().get(level, set())
    schema = set(LEVELS[level])
    assert schema - documented == set(), f"keys of {level} missing from docs/config.md"
    assert documented - schema <= AHEAD_OF_SCHEMA.get(level, set()), f"docs/config.md documents keys {level} lacks"


def test_readme_points_into_the_repository_only():
    readme = (ROOT / "README.md").read_text()
    assert "SPEC.md" not in readme and "../" not in readme
    for name in ("config.md", "socket-protocol.md", "credentials-file.md", "exit-codes.md"):
        assert f"(docs/{name})" in readme, f"README does not link docs/{name}"
        assert (DOCS / name).is_file()


def test_readme_config_example_shows_the_keys_users_need():
    readme = (ROOT / "README.md").read_text()
    example = readme.split("## Configuration", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    for key in ("sts_endpoint", "role_session_name", "external_id", "keyring_service", "mfa_command"):
        assert f"{key}:" in example, f"{key} is missing from the README's config example"
    parsed = config.parse_config(example, "README.md", Path("/h/config.yaml"), {"HOME": "/h"}, "linux", 1000)
    assert parsed.profiles  # the example is a valid config as written
