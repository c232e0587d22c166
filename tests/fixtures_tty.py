"""A real terminal for the tests: tmux runs a command, send-keys types, capture-pane reads."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

EXIT_MARK = "credd-test-exit="


class Terminal:
    """One tmux session on a private server, running one command."""

    def __init__(self, tmux: str, env: dict[str, str], socket_dir: str) -> None:
        self.tmux = tmux
        self.env = dict(env, TMUX_TMPDIR=socket_dir, TERM="xterm")
        self.env.pop("TMUX", None)

    def _call(self, *args: str) -> str:
        result = subprocess.run([self.tmux, "-L", "credd-test", "-f", "/dev/null", *args], env=self.env,
                                capture_output=True, text=True, timeout=10)
        if result.returncode != 0:
            raise AssertionError(f"tmux {args[0]} failed: {result.stderr.strip()}")
        return result.stdout

    def start(self, argv: list[str]) -> None:
        # The shell around the command prints its exit status and keeps the pane open to read it.
        line = f"{shlex.join(argv)}; echo {EXIT_MARK}$?; exec sleep 600"
        self._call("new-session", "-d", "-x", "160", "-y", "50", "-s", "t", line)

    def credd(self, *args: str) -> None:
        self.start([sys.executable, "-m", "credd", *args])

    def type(self, text: str, enter: bool = True) -> None:
        if text:
            self._call("send-keys", "-t", "t", "-l", text)
        if enter:
            self._call("send-keys", "-t", "t", "Enter")

    def press(self, *keys: str) -> None:
        """Keys by tmux's names (`Tab`, `C-c`), one after another."""
        for key in keys:
            self._call("send-keys", "-t", "t", key)

    def screen(self) -> str:
        return self._call("capture-pane", "-p", "-t", "t", "-S", "-200")

    def wait_for(self, text: str, timeout: float = 15.0) -> str:
        """The screen once `text` is on it (polling: tmux has no event to wait on)."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if text in screen:
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} did not appear within {timeout} s; the screen:\n{screen}")
            time.sleep(0.05)

    def exit_status(self, timeout: float = 30.0) -> int:
        screen = self.wait_for(EXIT_MARK, timeout)
        return int(screen.split(EXIT_MARK, 1)[1].split()[0])

    def credd_pid(self) -> int:
        """The pid of the credd process running under the pane (directly, or under a shell there)."""
        parents = {}
        for entry in Path("/proc").iterdir():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (ValueError, OSError):  # not a process, or one that just ended
                continue
        found = [int(self._call("display-message", "-p", "-t", "t", "#{pane_pid}"))]
        for pid in found:  # breadth first: `found` grows as children are found
            found += [child for child, parent in parents.items() if parent == pid]
        for pid in found:
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv[1:3] == [b"-m", b"credd"]:
                return pid
        raise AssertionError(f"no credd process under the pane; the screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([self.tmux, "-L", "credd-test", "kill-server"], env=self.env, capture_output=True)


@pytest.fixture
def terminal(home):
    """A tmux terminal whose environment is the test's home."""
    from tests.conftest import require_tool

    tmux = require_tool("tmux")
    socket_dir = tempfile.mkdtemp(prefix="credd-tmux-")
    term = Terminal(tmux, home.env, socket_dir)
    yield term
    term.close()
    shutil.rmtree(socket_dir, ignore_errors=True)
