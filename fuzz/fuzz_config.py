"""libFuzzer on the config loader: any bytes give a Config or a one-line ConfigError naming file and line."""

from __future__ import annotations

from pathlib import Path

import atheris
from common import run

# credd is instrumented for coverage, so it is imported here first (the checks in tests import it too).
with atheris.instrument_imports(include=["credd", "yaml"]):
    from credd.config import parse_config
    from credd.errors import ConfigError
    from tests.test_fuzz_config import ENV, LABEL, assert_good_error

PATH = Path("/home/user/.config/credd/config.yaml")


def test_one_input(data: bytes) -> None:
    try:
        text = data.decode("utf-8")  # what load_config hands over; other bytes stop there with a fixed message
    except UnicodeDecodeError:
        return
    try:
        parse_config(text, LABEL, PATH, ENV, "linux", 1000)
    except ConfigError as e:
        assert_good_error(e, text)


if __name__ == "__main__":
    run(test_one_input)
