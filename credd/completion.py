"""Shell completion: what to offer for the word being typed, read off the argument parser and the config.

Pure: `candidates` walks `cli.build_parser()` itself (commands, subcommands,
flags and their choices), so a command or flag added there completes with no
second list to keep; `config_names` scans the config's text for the names under
`sources:` and `profiles:` with a few string operations, so completing never
imports yaml, keyring or boto3 (it runs on every TAB). The shell scripts that
`credd completion SHELL` prints only hand the words to `credd __complete` and
show what it prints.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Sequence

SHELLS = ("bash", "zsh", "fish")
HIDDEN = "__complete"  # the command the scripts call; not in the parser, so never offered or shown in --help
# What a positional names, by its metavar, to the config's sections that hold such names.
NAMES_OF = {"PROFILE": "profiles", "SOURCE": "sources"}
PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.@+=,-")


def candidates(parser: argparse.ArgumentParser, words: Sequence[str], current: str,
               names: Callable[[str, str | None], Iterable[str]]) -> list[tuple[str, str]]:
    """(candidate, description) for `current`, the word being typed after `words` (the ones before it).

    `names(section, config)` gives the names under `sources:` or `profiles:` of the
    config that `--config config` (None: none given) names. An empty list lets the
    shell complete file names: for `--config PATH` and the command `credd exec` runs.
    """
    config = None
    positional = 0
    pending: argparse.Action | None = None  # an option whose value is the next word
    for word in words:
        if pending is not None:
            if "--config" in pending.option_strings:
                config = word
            pending = None
            continue
        if word == "--" or _takes_rest(parser, positional):
            return []  # `credd exec P -- CMD ...`: CMD is the shell's to complete
        if word.startswith("-"):
            option, equals, value = word.partition("=")
            action = _options(parser).get(option)
            if action is not None and action.nargs != 0:
                if not equals:
                    pending = action
                elif option == "--config":
                    config = value
            continue
        commands = _commands(parser)
        if commands is not None:
            if word not in commands.choices:
                return []  # an unknown command: nothing sensible to offer
            parser, positional = commands.choices[word], 0
            continue
        positional += 1
    if pending is not None:
        return _matching(((choice, "") for choice in pending.choices or ()), current)
    flags = [(option, action.help or "") for option, action in _options(parser).items()
             if action.help != argparse.SUPPRESS and option.startswith("--")]
    if current.startswith("-"):
        return _matching(flags, current)
    commands = _commands(parser)
    if commands is not None:
        helps = {action.dest: action.help or "" for action in commands._choices_actions}
        return _matching(((name, helps[name]) for name in commands.choices if name in helps), current)
    action = _positional(parser, positional)
    if action is None:
        return _matching(flags, current)  # nothing more to name: the flags are what is left to type
    if action.nargs == argparse.REMAINDER:
        return []
    if action.choices:
        return _matching(((choice, "") for choice in action.choices), current)
    section = NAMES_OF.get(action.metavar) if isinstance(action.metavar, str) else None
    if section is None:
        return []
    return _matching(((name, section[:-1]) for name in names(section, config)), current)


def config_names(text: str, section: str) -> list[str]:
    """The keys one level under the top-level `section:` of a YAML config, in order: a scan, not a parse.

    Enough for the block style credd's own `init` writes and its docs show; a
    flow-style or otherwise unusual section yields fewer names (completion offers
    less), never an error.
    """
    found: list[str] = []
    inside, indent = False, None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        depth = len(line) - len(line.lstrip(" "))
        if depth == 0:
            inside = stripped.split("#", 1)[0].rstrip() == f"{section}:"
            indent = None
            continue
        if not inside:
            continue
        if indent is None:
            indent = depth
        if depth == indent:
            name = stripped.split(":", 1)[0].strip().strip("'\"")
            if stripped != name and name and all(c in PLAIN for c in name):
                found.append(name)
    return found


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {option: action for action in parser._actions for option in action.option_strings}


def _commands(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def _positional(parser: argparse.ArgumentParser, index: int) -> argparse.Action | None:
    """The positional that takes the `index`-th positional word (a `*` one takes all that follow)."""
    for action in parser._actions:
        if action.option_strings or isinstance(action, argparse._SubParsersAction):
            continue
        if action.nargs in ("*", "+", argparse.REMAINDER) or index == 0:
            return action
        index -= 1
    return None


def _takes_rest(parser: argparse.ArgumentParser, index: int) -> bool:
    action = _positional(parser, index)
    return action is not None and action.nargs == argparse.REMAINDER


def _matching(offers: Iterable[tuple[str, str]], current: str) -> list[tuple[str, str]]:
    return [(word, " ".join(help_text.split())) for word, help_text in offers if word.startswith(current)]


def render(found: Sequence[tuple[str, str]], shell: str) -> str:
    """What `credd __complete SHELL` prints: a word a line; fish and zsh get its description too."""
    if shell == "fish":
        lines = [f"{word}\t{text}" if text else word for word, text in found]
    elif shell == "zsh":
        lines = [word.replace(":", "\\:") + (f":{text}" if text else "") for word, text in found]
    else:
        lines = [word for word, _ in found]
    return "".join(line + "\n" for line in lines)


SCRIPTS = {
    "bash": """\
# credd's bash completion: eval "$(credd completion bash)" in ~/.bashrc
_credd_complete() {
    local IFS=$'\\n'
    COMPREPLY=($(credd __complete bash "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[@]:1:COMP_CWORD-1}" 2>/dev/null))
}
complete -o default -F _credd_complete credd
""",
    "zsh": """\
#compdef credd
# credd's zsh completion: source <(credd completion zsh) in ~/.zshrc, after compinit
_credd() {
    local -a found
    found=("${(@f)$(credd __complete zsh "${words[CURRENT]}" "${(@)words[2,CURRENT-1]}" 2>/dev/null)}")
    found=(${found:#})
    if (( ${#found} )); then
        _describe -t credd 'credd' found
    else
        _files
    fi
}
compdef _credd credd
""",
    "fish": """\
# credd's fish completion: credd completion fish > ~/.config/fish/completions/credd.fish
function __credd_complete
    set -l before (commandline -opc)
    set -l current (commandline -ct)
    set -l found (credd __complete fish "$current" $before[2..-1] 2>/dev/null)
    if set -q found[1]
        printf '%s\\n' $found
    else
        __fish_complete_path "$current"
    end
end
complete -c credd -f -a '(__credd_complete)'
""",
}
