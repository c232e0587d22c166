"""credd's own command lines: how hints name them (`credd [--config PATH] ARGS`, one way everywhere), and how
the hook's, `credd [--config PATH] process PROFILE`, is read (by the console script and by whoever checks wiring).

A hint that leaves out the `--config` the user runs with sends them to
another config (or none): every message that names a command renders it here.
Standard library only, and `shlex` only when a hint is made: the hook uses
this on its error path.
"""


def credd_command(config: str | None, *words: str) -> str:
    """`credd [--config CONFIG] WORDS...`, shell-quoted; `config` None: the user gave no --config."""
    import shlex

    if config:  # a path of bytes that are not UTF-8 is shown with \xNN escapes: a message must print anywhere
        config = config.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return shlex.join(["credd", *(["--config", config] if config else []), *words])


def process_args(args: list[str]) -> tuple[str | None, str] | None:
    """`[--config PATH] process [--config PATH] PROFILE` -> (config, profile); None for anything else."""
    config = None
    rest = []
    items = iter(args)
    for item in items:
        if item == "--config":
            config = next(items, None)
            if config is None:
                return None
        elif item.startswith("--config="):
            config = item.split("=", 1)[1]
        else:
            rest.append(item)
    if len(rest) != 2 or rest[0] != "process" or rest[1].startswith("-"):
        return None
    return config, rest[1]
