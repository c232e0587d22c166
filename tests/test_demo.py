import re
import tempfile
from pathlib import Path

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
