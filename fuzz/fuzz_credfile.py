"""libFuzzer on the credentials-file editor: credd's keys change, or a refusal that quotes nothing."""

from __future__ import annotations

import atheris
from common import run

# credd is instrumented for coverage, so it is imported here first (the checks in tests import it too).
with atheris.instrument_imports(include=["credd"]):
    from credd import credfile  # noqa: F401  (instrumented before check_update calls it)
    from tests.test_fuzz_credfile import TARGETS, check_update


def test_one_input(data: bytes) -> None:
    # Which profiles to write comes from the length, so every byte is the file's (seeds are plain files).
    chosen = [name for bit, name in enumerate(TARGETS) if (len(data) % 7 + 1) >> bit & 1]
    check_update(data, chosen)


if __name__ == "__main__":
    run(test_one_input)
