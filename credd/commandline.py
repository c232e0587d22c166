"""How credd names its own commands in hints: `credd [--config PATH] ARGS`, one way everywhere.

A hint that leaves out the `--config` the user runs with sends them to
another config (or none): every message that names a command renders it here.
Standard library only, and `shlex` only when a hint is made: the hook uses
this on its error path.
"""

from __future__ import annotations


def credd_command(config: str | None, *words: str) -> str:
    """`credd [--config CONFIG] WORDS...`, shell-quoted; `config` None: the user gave no --config."""
    import shlex

    if config:  # a path of bytes that are not UTF-8 is shown with \xNN escapes: a message must print anywhere
        config = config.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return shlex.join(["credd", *(["--config", config] if config else []), *words])
