"""The reference in docs/ says what the code does: every config key documented, and nothing documented that is not."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from credd import config

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LEVELS = {"Top level": config.TOP_KEYS, "sources.NAME": config.SOURCE_KEYS, "profiles.NAME": config.PROFILE_KEYS}
# Keys documented ahead of the schema, by level: none (a key added on one branch and documented on another
# would go here, named, until both merge).
AHEAD_OF_SCHEMA: dict[str, set[str]] = {}


def documented_keys() -> dict[str, set[str]]:
    """The first column of each level's table in docs/config.md, by the heading above it."""
    keys: dict[str, set[str]] = {}
    heading = None
    for line in (DOCS / "config.md").read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
        match = re.match(r"\| `([a-z_]+)` \|", line)
        if match and heading in LEVELS:
            keys.setdefault(heading, set()).add(match.group(1))
    return keys


@pytest.mark.parametrize("level", list(LEVELS))
def test_config_reference_matches_the_schema(level: str):
    documented = documented_keys().get(level, set())
    schema = set(LEVELS[level])
    assert schema - documented == set(), f"keys of {level} missing from docs/config.md"
    assert documented - schema <= AHEAD_OF_SCHEMA.get(level, set()), f"docs/config.md documents keys {level} lacks"


def test_readme_points_into_the_repository_only():
    readme = (ROOT / "README.md").read_text()
    assert "SPEC.md" not in readme and "../" not in readme
    for name in ("config.md", "socket-protocol.md", "credentials-file.md", "exit-codes.md"):
        assert f"(docs/{name})" in readme, f"README does not link docs/{name}"
        assert (DOCS / name).is_file()


def test_readme_config_example_shows_the_keys_users_need():
    readme = (ROOT / "README.md").read_text()
    example = readme.split("## Configuration", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    for key in ("sts_endpoint", "role_session_name", "external_id", "keyring_service", "mfa_command"):
        assert f"{key}:" in example, f"{key} is missing from the README's config example"
    parsed = config.parse_config(example, "README.md", Path("/h/config.yaml"), {"HOME": "/h"}, "linux", 1000)
    assert parsed.profiles  # the example is a valid config as written


# docs/architecture.md: drawn from the import graph, checked against it ------------------------------------------

ARCHITECTURE = DOCS / "architecture.md"
# Imports that reach up a layer today, each to be moved down (issue 14); an import not listed here fails.
REACHING_UP = {("credd.awsconfig", "credd.doctor")}
EFFECT_LIBRARIES = ("boto3", "botocore", "keyring", "yaml", "apscheduler")
CLOCK_READS = {("datetime", "now"), ("datetime", "utcnow"), ("date", "today"), ("time", "time"),
               ("time", "monotonic"), ("time", "perf_counter"), ("time", "time_ns")}


def _import_graph():
    """bench/import_graph.py, the script the page is drawn from, loaded from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "bench" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.graph(ROOT)


def _named_on_page() -> tuple[set[str], set[str], set[str]]:
    """(repository paths, bare file names from the drawing, dotted `credd...` names) the page mentions."""
    text = ARCHITECTURE.read_text()
    spans = re.findall(r"`([^`\n]+)`", text)
    paths = {span for span in spans if re.fullmatch(r"(credd|docs|tests|bench|scripts)/[\w/.-]*", span)}
    drawing = text.split("```", 2)[1]
    files = set(re.findall(r"\b(\w+\.py)\b", drawing))
    dotted = {span for span in spans if re.fullmatch(r"credd(\.\w+)*", span)}
    return paths, files, dotted


def _layers() -> list[tuple[str, list[str]]]:
    """The page's table of layers, bottom first: (layer, its modules)."""
    rows = re.findall(r"^\| (\w+) \| (`credd.*`) \|$", ARCHITECTURE.read_text(), re.MULTILINE)
    return [(layer, re.findall(r"`([\w.]+)`", modules)) for layer, modules in rows]


def test_architecture_names_only_what_exists():
    import importlib

    paths, files, dotted = _named_on_page()
    assert paths and files and dotted  # the patterns still find the page's references
    for path in paths:
        assert (ROOT / path).exists(), f"docs/architecture.md names {path}, which does not exist"
    present = {f.name for f in (ROOT / "credd").rglob("*.py")}
    assert files - present == set(), "docs/architecture.md draws files that credd/ does not have"
    for name in dotted:  # a module, or a module and an attribute path in it (a class, a function, a method)
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            module_name = ".".join(parts[:cut])
            if (ROOT / Path(*parts[:cut])).with_suffix(".py").is_file() or (ROOT / Path(*parts[:cut])).is_dir():
                break
        assert cut > 1 or name == "credd", f"docs/architecture.md names {name}, which is not a credd module"
        if cut == len(parts):
            continue  # a module: its file is there (imported it might run, as `credd.__main__` would)
        thing = importlib.import_module(module_name)
        for attribute in parts[cut:]:
            assert hasattr(thing, attribute), f"docs/architecture.md names {name}: {module_name} has no such thing"
            thing = getattr(thing, attribute)


def test_architecture_layers_hold_in_the_import_graph():
    edges = _import_graph()
    layers = _layers()
    assert [layer for layer, _ in layers] == ["pure", "effects", "sources", "daemon", "endpoints", "commands"]
    rank = {module: n for n, (_, modules) in enumerate(layers) for module in modules}
    assert set(rank) <= set(edges), f"the layer table names modules that do not exist: {set(rank) - set(edges)}"
    commands = len(layers) - 1

    def placed(module: str) -> str | None:  # a module under a placed package (other than credd itself) sits with it
        while module not in rank and module.count(".") > 1:
            module = module.rsplit(".", 1)[0]
        return module if module in rank else None

    unplaced = sorted(module for module in edges if placed(module) is None)
    assert unplaced == [], "modules docs/architecture.md does not place in a layer (add them to its table and drawing)"

    def rank_of(module: str) -> int:
        return rank[placed(module)]

    up = sorted((module, target) for module, out in edges.items() for target in out
                if rank_of(target) > rank_of(module) and (module, target) not in REACHING_UP)
    assert up == [], "imports that reach up a layer (docs/architecture.md draws them down)"
    endpoints = {m for m in edges if rank_of(m) == commands - 1}
    assert not {t for m in endpoints for t in edges[m] if rank_of(t) == commands}, "an endpoint imports a command"


def test_pure_layer_loads_no_effect_library_and_reads_no_clock():
    import ast

    pure = dict(_layers())["pure"]
    for module in pure:
        path = ROOT / Path(*module.split("."))
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not [n for n in names if n.split(".")[0] in EFFECT_LIBRARIES], f"{module} imports {names}"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
                assert (node.value.id, node.attr) not in CLOCK_READS, f"{module} reads the clock ({node.value.id}.{node.attr})"
