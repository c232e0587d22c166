import re
import tempfile
from pathlib import Path

from credd.commands.demo import DEMO_KEY_ID
from credd.model import mask_key_id
from tests.conftest import Home, run_credd


def test_demo_runs_the_daemon_to_the_end_and_leaves_nothing(home: Home):
    result = run_credd(["demo"], home, timeout=120)  # run_credd also checks that no test secret was printed
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.findall(r"\(exit (-?\d+)\)", out) == ["0", "0", "0", "0", "0", "0", "0", "0", "1", "2", "0"]
    assert re.search(r"prod-admin\s+alice\s+fresh", out)
    assert '"SecretAccessKey": "…masked…"' in out and "aws_session_token = …masked…" in out
    assert "credd.serve: stopped" in out
    temp = re.search(r"a throw-away home in (\S+),", out).group(1)
    assert Path(temp).parent == Path(tempfile.gettempdir()) and not Path(temp).exists()
    assert list(home.root.iterdir()) == []  # the user's home is untouched


def test_demo_credentials_file_shows_session_ids_distinct_from_the_long_term_key(home: Home):
    """The file's ids are the sessions' own: one equal to the long-term key's would read as a leaked key."""
    result = run_credd(["demo"], home, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    keyring_ids = re.findall(r"^\s+alice: (\S+);", out, re.MULTILINE)  # `credd keys ls`, masked
    assert keyring_ids, out
    file_ids = re.findall(r"aws_access_key_id = (\w+)", out)
    assert file_ids, out
    assert DEMO_KEY_ID not in file_ids
    assert {mask_key_id(key_id) for key_id in file_ids}.isdisjoint(keyring_ids)
