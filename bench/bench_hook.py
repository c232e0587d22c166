"""Hook start-up: `credd process P` (daemon warm) against `python -c pass` and `python -I -S -c pass`.

    .venv/bin/python bench/bench_hook.py [--runs 200] [--importtime-runs 15] [--instruction-runs 3]
                                         [--no-user-install] [--no-pipx]

Three installs, each against its own interpreter's `python -c pass`:
  .venv: this checkout's development venv (an editable install, whose import
         hook makes every start of its interpreter import pathlib and re);
  user install: credd installed as a user installs it (`pip install .`, not
         editable) in bench/.peers/credd; there it also times what a faster
         hook would cost (`import re` and `import json` alone, and
         bench/hook_prototype.py, a client without json and re run by path);
  pipx: the wheel `python -m build` makes, installed with `pipx install` (pipx's
         home under bench/.peers/), its interpreter being the system Python's.
In each, `credd process P` as the plain script runs it from a user's environment
(no $CREDD_SOCKET: the config is read and the socket found in $XDG_RUNTIME_DIR), and the
credential_process line exactly as `credd init` writes it from that install
(`service.hook_command`: `VENV/bin/python -I -S VENV/bin/credd` for a venv or
pipx install of the package, the plain script for an editable one).
All commands run interleaved (A B C A B C ...) so the machine's noise hits
every command alike; prints median, min and max in milliseconds and the
ratios of the medians. Then, where valgrind is installed, the instructions
each command executes (callgrind; median of `--instruction-runs`): a figure
the machine's load does not change. Then each install's import list (`-X
importtime`) of the line credd writes: every module it imports beyond what
the same interpreter with the same flags imports for `-c pass`, with its
self time (median over `--importtime-runs`), grouped: `re` and what it
imports, `json`, credd, other standard library, and anything else (the goal:
nothing else).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import common
import installs
from common import markdown, running_daemon, time_commands, timing_table

from credd.commands.demo import demo_env, local_sts

PROFILE = "p"
PROTOTYPE = str(Path(__file__).resolve().parent / "hook_prototype.py")


def imports(argv: list[str], env: dict[str, str]) -> dict[str, float]:
    """Module -> self import time in microseconds, from one `python -X importtime` run."""
    result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, check=True, timeout=60)
    found = {}
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            self_us, _, name = line[len("import time:"):].split("|")
            if self_us.strip().isdigit():
                found[name.strip()] = float(self_us)
    return found


def kind(module: str) -> str:
    top = module.split(".", maxsplit=1)[0]
    if top == "credd":
        return "credd"
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return "standard library"
    return "OTHER"


def added(argv: list[str], bare: list[str], env: dict[str, str], runs: int) -> dict[str, list[float]]:
    """Module -> self import times (µs) over `runs` runs, of the modules `argv` imports and `bare` does not."""
    samples: dict[str, list[float]] = {}
    for _ in range(runs):
        baseline = imports(bare, env)
        for module, micros in imports(argv, env).items():
            if module not in baseline:
                samples.setdefault(module, []).append(micros)
    return samples


def written_line(bin_dir: Path) -> list[str]:
    """The words `credd init` run from this install writes before `process PROFILE` (`service.hook_command`)."""
    code = "import json; from credd.service import hook_command; print(json.dumps(hook_command({})))"
    result = subprocess.run([str(bin_dir / "python"), "-c", code], capture_output=True, text=True, check=True,
                            cwd=tempfile.gettempdir(), timeout=60)  # not the checkout, whose credd would come first
    return json.loads(result.stdout)


def instructions(argv: list[str], env: dict[str, str], runs: int) -> float:
    """Median instructions `argv` executes (valgrind's callgrind), the daemon's own not counted."""
    counts = []
    for _ in range(runs):
        result = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv], env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True, check=True, timeout=300)
        counts.append(int(result.stderr.split("Collected : ")[1].split()[0]))
    return statistics.median(counts)


def instruction_table(commands: dict[str, list[str]], env: dict[str, str], runs: int) -> str:
    counted = {name: instructions(argv, env, runs) for name, argv in commands.items()}
    base = counted["python -c pass"]
    return markdown(("command", "instructions (millions)", "ratio to `python -c pass`"),
                    [(f"`{name}`", f"{count / 1e6:.1f}", f"{count / base:.2f}") for name, count in counted.items()],
                    "l")


def import_table(bin_dir: Path, env: dict[str, str], runs: int) -> tuple[str, list[str]]:
    """The imports of the line credd writes beyond `python -c pass`'s (same flags), grouped, as a table; and the
    modules neither stdlib nor credd.

    The groups are measured, not listed by hand: `os` is what `python -c "import os"` adds (with the
    line's flags), `re` what `python -c "import re"` adds beyond that, `json` what `import json` adds beyond `re`.
    """
    python = str(bin_dir / "python")
    line = written_line(bin_dir)
    flags = line[1:-1] if line[0] == python else []  # `-I -S` when the line runs the script with them
    bare = [python, "-X", "importtime", *flags, "-c", "pass"]
    samples = added([python, "-X", "importtime", *flags, line[-1], "process", PROFILE], bare, env, runs)
    os_chain = set(added([python, "-X", "importtime", *flags, "-c", "import os"], bare, env, 1))  # -S: not loaded
    re_chain = set(added([python, "-X", "importtime", *flags, "-c", "import re"], bare, env, 1)) - os_chain
    json_chain = set(added([python, "-X", "importtime", *flags, "-c", "import json"], bare, env, 1)) - re_chain

    def group(module: str) -> str:
        if kind(module) == "OTHER":
            return "NOT the standard library"
        if kind(module) == "credd":
            return "credd"
        if module in os_chain:
            return "`os` and what it imports (`site` loads them; `-S` does not)"
        if module in re_chain:
            return "`re` and what it imports"
        return "`json`" if module in json_chain else "other standard library"

    groups: dict[str, list[tuple[str, float]]] = {}
    for module, values in samples.items():
        groups.setdefault(group(module), []).append((module, statistics.median(values)))
    rows = []
    for name, members in sorted(groups.items(), key=lambda item: -sum(micros for _, micros in item[1])):
        members.sort(key=lambda member: -member[1])
        rows.append((name, len(members), f"{sum(micros for _, micros in members):.0f}",
                     ", ".join(f"`{module}` {micros:.0f}" for module, micros in members)))
    total = sum(micros for members in groups.values() for _, micros in members)
    rows.append(("total", len(samples), f"{total:.0f}", ""))
    table = markdown(("imports the hook adds", "modules", "self µs (median)", "each module, µs"), rows, "lrrl")
    return table, sorted(module for module in samples if kind(module) == "OTHER")


LINE = "the line credd init writes"


def commands_of(bin_dir: Path, prototype: bool) -> dict[str, list[str]]:
    python = str(bin_dir / "python")
    commands = {
        "python -I -S -c pass": [python, "-I", "-S", "-c", "pass"],
        "python -c pass": [python, "-c", "pass"],
        f"credd process {PROFILE}": [str(bin_dir / "credd"), "process", PROFILE],
    }
    line = written_line(bin_dir)
    if line != [str(bin_dir / "credd")]:
        shown = " ".join(os.path.basename(word) if os.path.isabs(word) else word for word in line)
        commands[f"{shown} process {PROFILE} ({LINE})"] = [*line, "process", PROFILE]
    if prototype:
        commands[f"python bench/hook_prototype.py {PROFILE}"] = [python, PROTOTYPE, PROFILE]
    return commands


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--importtime-runs", type=int, default=15)
    parser.add_argument("--instruction-runs", type=int, default=3,
                        help="callgrind runs per command (0: none; needs valgrind)")
    parser.add_argument("--no-user-install", action="store_true",
                        help="no pip install into bench/.peers/credd")
    parser.add_argument("--no-pipx", action="store_true", help="no pipx install of the built wheel")
    args = parser.parse_args()
    venvs = {".venv (editable)": Path(sys.executable).parent}
    if not args.no_user_install:
        venvs["user install (pip install ., not editable)"] = installs.install_credd()
    if not args.no_pipx and shutil.which("pipx"):
        venvs["pipx install of the built wheel"] = installs.install_pipx_wheel()
    elif not args.no_pipx:
        print("(no pipx on PATH: the pipx install is left out; Debian: apt-get install pipx)", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="credd-bench-") as temp, local_sts() as endpoint:
        env = demo_env(Path(temp))
        # The hook as a user's shell runs it: no $CREDD_SOCKET, so it reads the config (no `socket:` line) and
        # finds the socket in $XDG_RUNTIME_DIR; the daemon is told the same path.
        env.update(XDG_RUNTIME_DIR=f"{temp}/run", CREDD_SOCKET=f"{temp}/run/credd/credd.sock")
        daemon_env, env = env, {name: value for name, value in env.items() if name != "CREDD_SOCKET"}
        with running_daemon(daemon_env, endpoint, {PROFILE: "arn:aws:iam::210987654321:role/Admin"}, write=False):
            commands = {f"{venv}\0{name}": argv for n, (venv, bin_dir) in enumerate(venvs.items())
                        for name, argv in commands_of(bin_dir, prototype=n > 0).items()}
            load_before = os.getloadavg()
            times = time_commands(commands, env, args.runs, expect_ok=list(commands))
            load_after = os.getloadavg()
            imported = {venv: import_table(bin_dir, env, args.importtime_runs) for venv, bin_dir in venvs.items()}
            counted = {}
            if args.instruction_runs and shutil.which("valgrind"):
                counted = {venv: instruction_table({name.split("\0")[1]: argv for name, argv in commands.items()
                                                    if name.startswith(venv + "\0")}, env, args.instruction_runs)
                           for venv in venvs}
            elif args.instruction_runs:
                print("(no valgrind on PATH: no instruction counts; Debian: apt-get install valgrind)", file=sys.stderr)
    print(f"### Hook start-up\n\n{args.runs} runs each, all interleaved, daemon warm; {common.machine()}; "
          f"load average {load_before[0]:.2f} before, {load_after[0]:.2f} after (1 min)")
    for venv in venvs:
        mine = {name.split("\0")[1]: values for name, values in times.items() if name.startswith(venv + "\0")}
        table, others = imported[venv]
        print(f"\n{venv}:\n\n{timing_table(mine, 'python -c pass')}")
        if venv in counted:
            print(f"\nInstructions ({venv}), median of {args.instruction_runs} callgrind runs:\n\n{counted[venv]}")
        print(f"\nImports of {LINE} beyond those of `python -c pass` with the same flags ({venv}), "
              f"median of {args.importtime_runs} runs of `-X importtime`:\n\n{table}")
        print("\nStandard library only: " + ("yes" if not others else "NO: " + ", ".join(others)))


if __name__ == "__main__":
    main()
