import re
import tempfile
from pathlib import Path

from tests.conftest import Home, run_credd


def test_demo_runs_to_the_end_and_leaves_nothing(home: Home):
    result = run_credd(["demo"], home)
    assert result.returncode == 0, result.stderr
    assert "alice: AKIA…MPLE; TOTP seed" in result.stdout
    assert re.findall(r"\(exit (\d+)\)", result.stdout) == ["0", "0", "0", "0", "0", "2", "0"]
    temp = re.search(r"a throw-away home in (\S+);", result.stdout).group(1)
    assert Path(temp).parent == Path(tempfile.gettempdir()) and not Path(temp).exists()
    assert list(home.root.iterdir()) == []  # the user's home is untouched
