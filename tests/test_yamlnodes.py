"""The generic YAML node reader on documents that are not credd configs: lines, duplicates, tags, types."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from credd import yamlnodes
from credd.errors import ConfigError
from credd.yamlnodes import NodeReader

TEXT = "name: web\nports: [80, 443]\nenabled: yes\n"


def read(text: str) -> tuple[NodeReader, dict]:
    reader = NodeReader("app.yaml", text, kind="an app file")
    return reader, reader.mapping(reader.root(), "")


def test_typed_values_and_the_line_of_every_key():
    reader, top = read(TEXT)
    assert reader.string(top["name"][1], "name", re.compile(r"\w+")) == "web"
    assert reader.string_list(top["ports"][1], "ports", "[80]") == ("80", "443")
    assert reader.boolean(top["enabled"][1], "enabled") is True
    assert reader.lines == {"name": 1, "ports": 2, "enabled": 3}
    assert reader.optional(top, "missing", "") is None


def test_an_empty_document_is_none_for_the_schema_to_judge():
    assert NodeReader("app.yaml", "# only a comment\n").root() is None


@pytest.mark.parametrize("text, message", [
    ("a: 1\nb: 2\na: 3\n", "app.yaml:3: a: duplicate key (first defined on line 1)"),
    ("a: !!python/object:os.system x\n", "app.yaml:1: a: cannot read this value"),
    ("a: [1\n", "app.yaml:2: YAML syntax error"),
    ("[" * 5000, "app.yaml:1: nested too deeply to be an app file"),
    ("base: &b {x: 1}\nother:\n  <<: *b\n", "app.yaml:3: other: YAML merge keys (<<) are not supported"),
])
def test_every_failure_is_a_config_error_at_its_line(text: str, message: str):
    with pytest.raises(ConfigError) as caught:
        reader = NodeReader("app.yaml", text, kind="an app file")
        top = reader.mapping(reader.root(), "")
        for name, (_, value) in top.items():
            if isinstance(value, yaml.MappingNode):
                reader.mapping(value, name)
            else:
                reader.scalar(value, name)
    assert str(caught.value).startswith(message)


def test_a_missing_key_is_reported_at_its_parent():
    reader, top = read("service:\n  port: 80\n")
    service = reader.mapping(top["service"][1], "service")
    with pytest.raises(ConfigError, match=r"^app\.yaml:1: service\.name: is required: name it$"):
        reader.required(service, "name", "service", "name it", top["service"][0])


def test_the_reader_knows_no_credd_schema():
    """Of credd's own modules it imports only `errors` (for ConfigError): not config, model or durations."""
    tree = ast.parse(Path(yamlnodes.__file__).read_text())
    own = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
           and (node.module or "").startswith("credd")}
    assert own == {"credd.errors"}
