"""What a command runs with: the environment, the streams, the platform.

Commands take a `Context` instead of reaching for `os.environ`, `sys.stdin`
or `sys.platform`, so tests can run them in-process with fakes, and the
heavy modules (yaml, keyring) load only when a command needs them.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from credd import paths
from credd.errors import UsageError, one_line

if TYPE_CHECKING:
    from credd.model import Config
    from credd.store import Store


@dataclass
class Context:
    # Not in the repr: the environment may hold AWS_SECRET_ACCESS_KEY or AWS_SESSION_TOKEN.
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ), repr=False)
    stdin: IO[str] = field(default_factory=lambda: sys.stdin)
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    platform: str = sys.platform
    uid: int = field(default_factory=os.getuid)
    config_arg: str | None = None

    @property
    def config_path(self) -> Path:
        """`--config`, else `$CREDD_CONFIG`, else the default; a `$VAR` in them that is not set is a usage error."""
        try:
            return Path(paths.config_file(self.env, self.config_arg))
        except ValueError as e:
            given = f"--config {self.config_arg}" if self.config_arg else f"$CREDD_CONFIG ({self.env['CREDD_CONFIG']})"
            raise UsageError(f"{one_line(given, 300)}: {e}; set it, or give the path without it") from None

    @property
    def hint_config(self) -> str | None:
        """The `--config` hints carry: the one given, as an absolute path (a hint may be run elsewhere)."""
        if not self.config_arg:
            return None
        try:
            return os.path.abspath(self.config_path)
        except ValueError:  # `--config $UNSET/x`: the command fails on it anyway; quote it as given
            return self.config_arg

    def command(self, *words: str) -> str:
        """A credd command line to suggest, with the user's --config when one was given."""
        from credd.commandline import credd_command

        return credd_command(self.hint_config, *words)

    def load_config(self) -> Config:
        from credd.config import load_config

        return load_config(self.config_path, self.env, self.platform, self.uid, self.hint_config)

    def open_store(self, config: Config) -> Store:
        from credd.store import Store, select_backend

        return Store(select_backend(self.env).backend, config.keyring_service, self.hint_config)

    def say(self, text: str) -> None:
        print(text, file=self.stdout)

    def warn(self, text: str) -> None:
        print(f"credd: warning: {text}", file=self.stderr)
