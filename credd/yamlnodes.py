"""A YAML document as composed nodes, read with types and line numbers; every failure a ConfigError at its line.

The document is composed into nodes (which keep their line numbers) rather
than loaded into plain dicts, so that duplicate keys are caught (PyYAML
silently keeps the last one) and every error can point at its line. Only
scalars are ever constructed, with the safe constructor, and only for YAML's
own tags. Generic: nothing here knows credd's schema; `config.py` does.
"""

from __future__ import annotations

import re

import yaml

from credd.errors import ConfigError, one_line

YAML_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # what YAML counts as the end of a line
# A mapping's entries by name: (the key's node, the value's node).
Entries = dict[str, tuple[yaml.Node, yaml.Node]]


def error_at(label: str, line: int | None, key: str, message: str) -> ConfigError:
    """A ConfigError on one bounded line: keys and values come from the file and may hold anything."""
    return ConfigError(label, line, one_line(key, 120), one_line(message, 500))


def shown(value: object) -> str:
    """A value from the file as an error message quotes it: its repr, bounded."""
    if isinstance(value, (str, bytes)) and len(value) > 60:
        return one_line(repr(value[:60]), 70) + "…"
    return one_line(repr(value), 70)


class NodeReader:
    """Typed access to the composed nodes of one YAML document; every failure becomes a ConfigError.

    `label` is how errors name the file; `kind` how they name what it should be ("nested too deeply
    to be {kind}").
    """

    def __init__(self, label: str, text: str, kind: str = "a YAML document") -> None:
        self.label = label
        self.text = text
        self.kind = kind
        self.loader: yaml.SafeLoader | None = None
        self.lines: dict[str, int] = {}  # full key (`profiles.p.duration`) -> the line it is on

    def root(self) -> yaml.Node | None:
        """The document's top node; None when it holds nothing (only comments, or a bare null)."""
        try:
            self.loader = yaml.SafeLoader(self.text)  # checks every character first
            node = self.loader.get_single_node()
        except yaml.reader.ReaderError as e:
            at = len(YAML_BREAK.findall(self.text, 0, e.position)) + 1
            raise error_at(self.label, at, "", f"the character #x{e.character:04x} cannot appear in YAML (a "
                                                 "control character); remove it, or write it as an escape in double "
                                                 "quotes") from None
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            line = mark.line + 1 if mark else None
            problem = e.problem or e.context or "cannot parse"
            if isinstance(e.__context__, UnicodeDecodeError):  # PyYAML passes on the codec's own words
                problem = f"{e.context or 'in a tag'}: a %-escape that is not UTF-8"
            raise error_at(self.label, line, "", f"YAML syntax error: {problem}") from None
        except yaml.YAMLError as e:
            raise error_at(self.label, None, "", f"YAML error: {e}") from None
        except RecursionError:
            line = self.loader.get_mark().line + 1 if self.loader is not None else None
            raise error_at(self.label, line, "", f"nested too deeply to be {self.kind}") from None
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
            return None
        return node

    def line(self, node: yaml.Node) -> int:
        return node.start_mark.line + 1

    def error(self, node: yaml.Node, key: str, message: str) -> ConfigError:
        return error_at(self.label, self.line(node), key, message)

    def warning(self, key: str, message: str) -> str:
        """A warning about `key`, named as an error about it would be: `file:line: key: message`."""
        return str(error_at(self.label, self.lines.get(key), key, message))

    def scalar(self, node: yaml.Node, key: str) -> object:
        if not isinstance(node, yaml.ScalarNode):
            kind = "a list" if isinstance(node, yaml.SequenceNode) else "a mapping"
            raise self.error(node, key, f"expected a single value, got {kind}")
        loader = self.loader
        if loader is None:
            raise RuntimeError("NodeReader.scalar before root()")  # a bug in credd: nodes come from root()
        if node.tag not in loader.yaml_constructors:  # `!!python/object`, `!custom`: only YAML's own types
            raise self.error(node, key, "cannot read this value (could not determine a constructor for the tag "
                                        f"{one_line(repr(node.tag), 80)})")
        try:
            return loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, LookupError, ArithmeticError, AttributeError, TypeError):
            # PyYAML's constructors for its own types fail with these for a value that looks like its type
            # and is not one (2001-13-45, `!!int abc`, `!!int ''`, 5000 digits); their texts speak of Python.
            kind = node.tag.rsplit(":", 1)[-1]
            raise self.error(node, key, f"YAML reads this value as {one_line(kind, 40)}, but it is not a valid one; "
                                        "put it in quotes if it is meant as text") from None

    def mapping(self, node: yaml.Node, key: str, allow_empty_value: bool = False) -> Entries:
        """Entries by name, each `(key_node, value_node)`; refuses duplicate and non-string keys."""
        if allow_empty_value and isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.error(node, key, "expected a mapping of `name: value` lines")
        if node.tag != "tag:yaml.org,2002:map":
            raise self.error(node, key, f"the YAML tag {one_line(node.tag, 60)} is not supported here")
        entries: Entries = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.error(key_node, key or "<<", "YAML merge keys (<<) are not supported; write the keys out")
            name = self.scalar(key_node, key or "(top level)")
            if not isinstance(name, str):
                raise self.error(key_node, key or "(top level)", f"keys must be names, got {shown(name)}")
            full = f"{key}.{name}" if key else name
            if name in entries:
                first = self.line(entries[name][0])
                raise self.error(key_node, full, f"duplicate key (first defined on line {first})")
            entries[name] = (key_node, value_node)
            self.lines[full] = self.line(key_node)
        return entries

    def optional(self, entries: Entries, name: str, key: str) -> yaml.Node | None:
        """The value node of `name`, or None when missing or null."""
        if name not in entries:
            return None
        node = entries[name][1]
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null"):
            return None
        return node

    def required(self, entries: Entries, name: str, key: str, why: str, parent: yaml.Node | None = None) -> yaml.Node:
        """The value node of `name`; a missing one is reported at its key, else at `parent`."""
        node = self.optional(entries, name, key)
        if node is None:
            full = f"{key}.{name}" if key else name
            where = entries[name][0] if name in entries else parent
            line = self.line(where) if where is not None else None
            raise error_at(self.label, line, full, f"is required: {why}")
        return node

    def string(self, node: yaml.Node, key: str, pattern: re.Pattern[str], expected: str = "") -> str:
        value = self.scalar(node, key)
        if not isinstance(value, str):
            raise self.error(node, key, f"{expected or 'expected text'}, got {shown(value)}")
        if not pattern.fullmatch(value):
            raise self.error(node, key, f"{expected or 'not a valid value'}, got {shown(value)}")
        return value

    def choice(self, node: yaml.Node, key: str, choices: tuple[str, ...]) -> str:
        value = self.scalar(node, key)
        if value not in choices:
            raise self.error(node, key, f"expected one of {', '.join(choices)}, got {shown(value)}")
        return str(value)

    def boolean(self, node: yaml.Node, key: str) -> bool:
        value = self.scalar(node, key)
        if not isinstance(value, bool):
            raise self.error(node, key, f"expected true or false, got {shown(value)}")
        return value

    def string_list(self, node: yaml.Node, key: str, example: str) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode) or not node.value:
            raise self.error(node, key, f"expected a list of arguments (credd runs it without a shell), like {example}")
        items = []
        for item in node.value:
            value = self.scalar(item, key)
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise self.error(item, key, f"each argument must be text, got {shown(value)}")
            items.append(str(value))
        return tuple(items)

