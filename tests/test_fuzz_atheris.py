"""The atheris harnesses in `fuzz/`, each for a bounded number of inputs: coverage-guided fuzzing
found two bugs the hypothesis properties had missed (see fuzz/common.py for longer runs).

Each run starts from the seeds in fuzz/seeds (which hold the inputs it found, so they are replayed
every time) and fails on any crash, that is any broken property. atheris is a test dependency: a
missing one skips here but fails in CI, as a missing tool does (`tests.conftest.require_tool`).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parent.parent
FUZZ = ROOT / "fuzz"
GOLDEN = ROOT / "tests" / "golden" / "credfile"


def require_atheris() -> None:
    if importlib.util.find_spec("atheris") is None:
        message = "atheris is not installed (pip install -e '.[test]')"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.mark.parametrize("harness, runs, seeds", [
    ("fuzz_config.py", 4000, [FUZZ / "seeds" / "config"]),
    ("fuzz_credfile.py", 4000, [FUZZ / "seeds" / "credfile", GOLDEN]),
    ("fuzz_protocol.py", 100_000, [FUZZ / "seeds" / "protocol"]),
])
def test_harness_finds_no_crash(harness: str, runs: int, seeds: list[Path], tmp_path: Path) -> None:
    require_atheris()
    corpus = tmp_path / "corpus"  # new inputs go here; the seed directories stay as they are
    corpus.mkdir()
    result = subprocess.run(
        [sys.executable, str(FUZZ / harness), f"-runs={runs}", "-timeout=10", "-max_len=8192",
         f"-artifact_prefix={tmp_path}/", str(corpus), *map(str, seeds)],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )
    crashes = sorted(path.name for path in tmp_path.glob("crash-*"))
    output = result.stdout + result.stderr  # atheris prints the exception on stdout
    assert result.returncode == 0 and not crashes, f"{harness}: {crashes}\n{output[-4000:]}"
    assert f"Done {runs} runs" in result.stderr, result.stderr[-2000:]


def test_a_broken_property_fails_the_run(tmp_path: Path) -> None:
    """The harness really checks: an input that breaks its property makes it exit non-zero (here, a
    config whose error would quote a 5000-character key, replayed against a stricter bound)."""
    require_atheris()
    crash = tmp_path / "input.yaml"
    crash.write_text("? " + "k" * 5000 + "\n: 1\n")
    script = ("import sys, runpy; sys.argv = ['fuzz_config.py', sys.argv[1]]; sys.path[:0] = ['fuzz', '.']; "
              "import tests.test_fuzz_config as t; t.MAX_MESSAGE = 10; "
              "runpy.run_path('fuzz/fuzz_config.py', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", script, str(crash)], capture_output=True, text=True,
                            timeout=60, cwd=ROOT, check=False)
    output = result.stdout + result.stderr  # atheris prints the exception on stdout
    assert result.returncode != 0 and "AssertionError: 260 characters" in output, output[-2000:]
