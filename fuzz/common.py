"""What the atheris harnesses share: running one under libFuzzer with credd's modules instrumented.

Each harness checks the same properties as its hypothesis test in `tests/` (it imports the checks
from there, so there is one definition of each), but lets libFuzzer's coverage feedback choose the
inputs. Run one from the repository root (`pip install atheris`), with a directory of its own first
(where it keeps the inputs that reached new code) and the seeds after it:

    mkdir -p /tmp/corpus-credfile
    .venv/bin/python fuzz/fuzz_credfile.py -max_total_time=300 /tmp/corpus-credfile fuzz/seeds/credfile

A failing input is written to `crash-<sha1>`; run the harness with that file as its argument to
replay it, and add it to fuzz/seeds once fixed. `tests/test_fuzz_atheris.py` runs each harness for a
bounded number of inputs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # `credd` and the checks in `tests`


def run(test_one_input: Callable[[bytes], None]) -> None:
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
