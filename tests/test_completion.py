"""Shell completion: the candidates (read off the real argument parser and a config's names), `credd __complete`
as the scripts run it (standard library only), and the scripts themselves in real bash, zsh and fish through tmux."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pytest

from credd import cli, completion
from tests.conftest import Home, require_tool, run_credd
from tests.fixtures_tty import Terminal

CONFIG = """\
version: 1
# a comment at the top
sources:
  alice:   # me
    mfa_serial: arn:aws:iam::111111111111:mfa/alice
    mfa: totp
  "bob":
    mfa: prompt
profiles:
  alice-session:
    source: alice

  prod-admin:
    source: alice
    role_arn: arn:aws:iam::222222222222:role/Admin
    write: false
"""
OTHER_CONFIG = "version: 1\nsources:\n  carol: {}\nprofiles:\n  staging-ro:\n    source: carol\n"


def offered(*words: str, current: str = "", config: str = CONFIG) -> list[str]:
    seen: list[str | None] = []

    def names(section: str, given: str | None) -> list[str]:
        seen.append(given)
        return completion.config_names(OTHER_CONFIG if given == "other.yaml" else config, section)

    return [word for word, _ in completion.candidates(cli.build_parser(), list(words), current, names)]


def test_commands_and_subcommands_come_from_the_parser():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    listed = [action.dest for action in commands._choices_actions]  # what `credd --help` lists
    assert offered() == listed
    assert "completion" in listed and completion.HIDDEN not in listed
    assert offered(current="re") == ["refresh"]
    assert offered("keys") == ["set", "import", "rm", "ls"]
    assert offered("service", current="st") == ["status"]


def test_a_flag_hidden_from_help_is_not_offered():
    parser = argparse.ArgumentParser(prog="credd")
    parser.add_argument("--shown", help="a flag")
    parser.add_argument("--hidden", help=argparse.SUPPRESS)
    offered = completion.candidates(parser, [], "--", lambda section, config: [])
    assert [name for name, _ in offered] == ["--help", "--shown"]


def test_flags_and_their_choices():
    assert offered("status", current="--") == ["--help", "--config", "--json"]
    assert offered("status") == ["--help", "--config", "--json"]  # no argument left: the flags
    assert offered("env", "p", "--format", current="e") == ["env", "env-no-export"]
    assert offered("completion") == ["bash", "zsh", "fish"]
    assert "--sts-endpoint" in offered("init", current="--")  # shown in --help, offered here
    assert offered(current="--v") == ["--version"]


def test_profile_and_source_names_from_the_config_given():
    assert offered("exec") == ["alice-session", "prod-admin"]
    assert offered("exec", current="p") == ["prod-admin"]
    assert offered("refresh", "alice-session") == ["alice-session", "prod-admin"]  # PROFILE ...
    assert offered("keys", "set") == ["alice", "bob"]
    assert offered("mfa") == ["alice", "bob"]
    assert offered("--config", "other.yaml", "exec") == ["staging-ro"]
    assert offered("exec", "--config", "other.yaml") == ["staging-ro"]
    assert offered("--config=other.yaml", "env") == ["staging-ro"]


def test_nothing_where_the_shell_should_complete_files_or_the_command():
    assert offered("--config") == []  # PATH: the shell's file names
    assert offered("exec", "prod-admin") == []  # `-- CMD`
    assert offered("exec", "prod-admin", "--", "ls") == []
    assert offered("nosuchcommand") == []
    assert offered("env", "prod-admin") == ["--help", "--config", "--format"]


def test_config_names_is_a_scan_of_the_two_sections():
    assert completion.config_names(CONFIG, "profiles") == ["alice-session", "prod-admin"]
    assert completion.config_names(CONFIG, "sources") == ["alice", "bob"]
    assert completion.config_names("profiles: {a: {source: x}}\n", "profiles") == []  # flow style: none, no error
    assert completion.config_names("profiles:\n    deep:\n      source: x\n  '*odd name*':\n", "profiles") == ["deep"]
    assert completion.config_names("", "sources") == []


def test_complete_command_is_fast_and_loads_no_heavy_module(home: Home):
    home.write_config(CONFIG)
    result = run_credd(["__complete", "fish", "", "exec"], home)
    assert (result.returncode, result.stdout, result.stderr) == (0, "alice-session\tprofile\nprod-admin\tprofile\n", "")
    importtime = subprocess.run([sys.executable, "-X", "importtime", "-m", "credd", "__complete", "bash", "", "exec"],
                                env=home.env, capture_output=True, text=True, timeout=60)
    loaded = {line.split("|")[-1].strip().split(".")[0] for line in importtime.stderr.splitlines()
              if line.startswith("import time:")}
    assert "credd" in loaded and not loaded & {"yaml", "keyring", "boto3", "botocore", "pyotp", "apscheduler"}
    script = str(Path(sys.executable).parent / "credd")
    for argv in ([script, "__complete", "bash", "", "exec"], [sys.executable, "-c", "pass"]):
        times = []
        for _ in range(7):
            started = time.perf_counter()
            subprocess.run(argv, env=home.env, capture_output=True, check=True, timeout=60)
            times.append((time.perf_counter() - started) * 1000)
        print(f"{' '.join(argv[-4:])}: median {sorted(times)[3]:.1f} ms")  # reported, not asserted (shared machine)


def test_bad_calls_and_unreadable_configs_print_nothing(home: Home):
    for args in (["__complete"], ["__complete", "tcsh", ""], ["__complete", "bash", "", "--config", "/nonexistent",
                                                                 "exec"]):
        result = run_credd(args, home)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_completion_prints_each_script_and_refuses_another_shell(home: Home):
    for shell in completion.SHELLS:
        result = run_credd(["completion", shell], home)
        assert (result.returncode, result.stdout) == (0, completion.SCRIPTS[shell])
    refused = run_credd(["completion", "tcsh"], home)
    assert refused.returncode == 2 and "invalid choice: 'tcsh'" in refused.stderr


# Real shells ------------------------------------------------------------------------------------------------

SHELL_STARTS = {
    # (the rc file's name, its text, the command that starts the shell with it)
    "bash": (".bashrc", 'PS1="shell> "\neval "$(credd completion bash)"\n', ["bash", "--rcfile", "{rc}", "-i"]),
    "zsh": (".zshrc", 'PS1="shell> "\nautoload -Uz compinit && compinit -u\nsource <(credd completion zsh)\n',
            ["zsh", "-i"]),
    "fish": ("config.fish", "function fish_greeting; end\nfunction fish_prompt; echo -n 'shell> '; end\n"
                            "credd completion fish | source\n", ["fish", "-i"]),
}


@pytest.mark.tty
@pytest.mark.parametrize("shell", list(SHELL_STARTS))
def test_completion_in_a_real_shell(shell: str, home: Home, terminal: Terminal, tmp_path: Path):
    binary = require_tool(shell)
    home.write_config(CONFIG)
    other = tmp_path / "other.yaml"
    other.write_text(OTHER_CONFIG)
    name, text, argv = SHELL_STARTS[shell]
    rc = {"bash": home.root / name, "zsh": home.root / name,
          "fish": home.root / ".config" / "fish" / name}[shell]
    rc.parent.mkdir(parents=True, exist_ok=True)
    rc.write_text(text)
    terminal.env.update(PATH=f"{Path(sys.executable).parent}:{terminal.env['PATH']}", ZDOTDIR=str(home.root),
                        CREDD_CONFIG=str(home.config))
    terminal.start([binary, *argv[1:]] if "{rc}" not in argv else [binary, argv[1], str(rc), *argv[3:]])
    terminal.wait_for("shell>")

    terminal.type("credd re", enter=False)
    terminal.press("Tab")
    terminal.wait_for("credd refresh")
    terminal.press("C-u")

    terminal.type("credd status --", enter=False)
    terminal.press("Tab", "Tab")
    terminal.wait_for("--json")
    terminal.press("C-u")

    terminal.type("credd exec ", enter=False)  # from $CREDD_CONFIG
    terminal.press("Tab", "Tab")
    screen = terminal.wait_for("prod-admin")
    assert "alice-session" in screen
    terminal.press("C-u")

    terminal.type(f"credd --config {other} exec ", enter=False)  # from --config: one name, completed in place
    terminal.press("Tab")
    terminal.wait_for(f"credd --config {other} exec staging-ro")
