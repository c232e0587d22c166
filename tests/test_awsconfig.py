"""`~/.aws/config` rewired by `credd config import`: the pure edit, at any size (its behaviour per shape is
tests/test_config_import.py's)."""

from __future__ import annotations

import pytest

from credd import awsconfig, credfile

ADMIN = "arn:aws:iam::222222222222:role/Admin"


def test_rewire_reads_the_file_a_fixed_number_of_times_however_many_profiles(monkeypatch: pytest.MonkeyPatch) -> None:
    """One edit per profile re-read the whole file each time: 5.7 s for 500 profiles, 204 s for 2,000."""
    parses = []
    real_parse = credfile.parse
    monkeypatch.setattr(credfile, "parse", lambda *args: parses.append(1) or real_parse(*args))
    counts = {}
    for size in (4, 40):
        text = "[profile base]\nregion = eu-west-1\n" + "".join(
            f"[profile r{n}]\nsource_profile = base\nrole_arn = {ADMIN}\nregion = us-east-1\n" for n in range(size))
        parses.clear()
        rewired, outcomes = awsconfig.rewire_text(text, {f"r{n}": True for n in range(size)}, ["credd"], "config")
        counts[size] = len(parses)
        assert rewired.count(awsconfig.IMPORT_MARK) == 2 * size
        assert [item.moved for item in outcomes] == [("role_arn", "source_profile")] * size
    assert counts[4] == counts[40]
