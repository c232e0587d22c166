"""The reference in docs/ says what the code does: every config key documented, and nothing documented that is not.

The lists compared are read out of the code (its schema, its enums, and for what only appears as literals in
one function, its syntax tree), never copied into this file: a state, kind or field added to the code without a
line in the docs fails here, and so does one the docs keep after the code dropped it.
"""

from __future__ import annotations

import ast
import inspect
import json
import re
from pathlib import Path

import pytest

from credd import config, daemon, errors, protocol, service
from credd.commands import control
from credd.endpoints import unix_socket as server
from credd.model import FailureKind

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


def config_rows(level: str) -> dict[str, list[str]]:
    """The cells of each key's row in docs/config.md's table for `level`, by key."""
    text = (DOCS / "config.md").read_text()
    return {row[0].strip("`"): row for row in table(section(text, f"## {level}"), "| key | type | default |")}


def test_config_reference_gives_the_loaders_defaults_and_duration_ranges():
    from credd.durations import format_duration

    top, sources, profiles = (config_rows(level) for level in LEVELS)
    assert f"`{config.DEFAULTS['keyring_service']}`" == top["keyring_service"][2]
    assert f"`{format_duration(config.DEFAULTS['refresh_before'])}`" == top["refresh_before"][2]
    assert f"`{format_duration(config.DEFAULTS['session_duration'])}`" == sources["duration"][2]
    assert f"`{format_duration(config.DEFAULTS['role_duration'])}`" == profiles["duration"][2]
    assert f"`{config.DEFAULTS['region']}`" == sources["region"][2]
    assert profiles["region"][2] == "the source's `region`"
    ranges = ((sources["duration"], config.SESSION_DURATION), (profiles["duration"], config.ROLE_DURATION))
    for row, (low, high) in ranges:
        assert row[3].startswith(f"`{format_duration(low)}` to `{format_duration(high)}`")
    assert f"under `{format_duration(config.BOTOCORE_REFRESH_WINDOW)}` warns" in top["refresh_before"][3]
    assert f"over `{format_duration(config.CHAINED_ROLE_MAX)}` warns" in profiles["duration"][3]


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


# The socket protocol (docs/socket-protocol.md) ---------------------------------------------------------------


def section(text: str, heading: str) -> str:
    """The text under `heading` (a line as written, `## Errors`), up to the next heading of its level or above."""
    level = heading.split(" ", 1)[0]
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    ends = [m.start() for m in re.finditer(r"\n(#+) ", text[start:]) if len(m.group(1)) <= len(level)]
    return text[start:start + ends[0]] if ends else text[start:]


def table(text: str, header: str) -> list[list[str]]:
    """The cells of each row of the table whose header row starts with `header` (`| kind | meaning |`)."""
    rows = text.split(f"\n{header}", 1)[1].split("\n\n", 1)[0].splitlines()[2:]
    return [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]


def first_column(text: str, header: str) -> list[str]:
    """Every `name` in backticks in the first cell of each row of that table."""
    return [name for row in table(text, header) for name in re.findall(r"`([^`]+)`", row[0])]


def flat(text: str) -> str:
    """`text` with every run of white space (line breaks of the Markdown included) as one space."""
    return " ".join(text.split())


def json_example(text: str) -> dict:
    return json.loads(re.search(r"```json\n(.*?)```", text, re.DOTALL).group(1))


def function_node(module, qualified: str) -> ast.AST:
    """The syntax tree of `Class.method` or `function` in `module`."""
    tree = ast.parse(inspect.getsource(module))
    for name in qualified.split("."):
        tree = next(node for node in ast.walk(tree)
                    if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name)
    return tree


def strings_assigned(node: ast.AST, variable: str) -> set[str]:
    """Every string constant the code assigns to `variable` (directly, through `a if c else b`, or in a tuple
    assignment `variable, other = "x", ...`)."""
    found: set[str] = set()

    def values(expr: ast.AST):
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            yield expr.value
        elif isinstance(expr, ast.IfExp):
            yield from values(expr.body)
            yield from values(expr.orelse)

    for assign in (n for n in ast.walk(node) if isinstance(n, ast.Assign)):
        for target in assign.targets:
            if isinstance(target, ast.Name) and target.id == variable:
                found.update(values(assign.value))
            elif isinstance(target, ast.Tuple) and isinstance(assign.value, ast.Tuple):
                for item, value in zip(target.elts, assign.value.elts, strict=False):
                    if isinstance(item, ast.Name) and item.id == variable:
                        found.update(values(value))
    return found


def error_kinds_sent() -> set[str]:
    """Every `error` kind the daemon and its server put in a reply: `error_reply("kind", ...)` and
    `{"error": "kind", ...}`."""
    kinds = set()
    for module in (daemon, server, protocol):
        for node in ast.walk(ast.parse(inspect.getsource(module))):
            called = getattr(node.func, "attr", getattr(node.func, "id", "")) if isinstance(node, ast.Call) else None
            if called == "error_reply" and isinstance(node.args[0], ast.Constant):
                kinds.add(node.args[0].value)
            if isinstance(node, ast.Dict):
                for key, value in zip(node.keys, node.values, strict=True):
                    if isinstance(key, ast.Constant) and key.value == "error" and isinstance(value, ast.Constant):
                        kinds.add(value.value)
    return kinds


PROTOCOL_DOC = (DOCS / "socket-protocol.md").read_text()


def test_error_kinds_documented_are_the_ones_sent():
    sent = error_kinds_sent()
    assert {"bad-request", "timeout", "forbidden", "failed", "internal"} <= sent  # the scan finds them at all
    documented = set(first_column(section(PROTOCOL_DOC, "## Errors"), "| `error` |"))
    assert sent - documented == set(), "error kinds the daemon sends that docs/socket-protocol.md does not list"
    assert documented - sent == set(), "docs/socket-protocol.md lists error kinds the daemon never sends"


def test_status_states_documented_are_the_ones_the_daemon_gives():
    states = strings_assigned(function_node(daemon, "Daemon.status"), "state")
    assert {"fresh", "starting"} <= states
    status_doc = section(PROTOCOL_DOC, "### status")
    rows = {row[0].strip("`"): row[-1] for row in table(status_doc, "| `state` | meaning |")}
    assert set(rows) == states, "docs/socket-protocol.md's state table and Daemon.status disagree"
    # The exit column, against the states `credd status` counts as served.
    served = set(control.SERVED)  # the states `credd status` (and `status --json`) exit 0 for
    assert {state for state, code in rows.items() if code == "0"} == served
    assert {state for state, code in rows.items() if code == "1"} == states - served
    readme = section((ROOT / "README.md").read_text(), "### What `status` and `refresh` say")
    assert [state for state in sorted(states) if f"`{state}`" not in readme] == [], "README misses a state"
    assert "(docs/socket-protocol.md" in readme, "README's status section does not point to the reference"


def test_refresh_outcomes_documented_are_the_ones_the_daemon_gives():
    outcomes = strings_assigned(function_node(daemon, "Daemon._refresh_outcome"), "outcome")
    assert {"renewed", "failed"} <= outcomes
    documented = set(first_column(section(PROTOCOL_DOC, "### refresh"), "| `outcome` | meaning |"))
    assert documented == outcomes, "docs/socket-protocol.md's outcome table and Daemon._refresh_outcome disagree"


def test_failure_kinds_documented_are_the_enum():
    documented = set(first_column(section(PROTOCOL_DOC, "### status"), "| kind |"))
    assert documented == {kind.value for kind in FailureKind}


def test_status_and_refresh_replies_have_the_documented_fields(make_daemon):
    """The examples in the docs have exactly the fields a real reply has, and every field has its line."""
    _, credd_daemon, _, _ = make_daemon(roles=1)
    refreshed = credd_daemon.refresh_now([])
    status = credd_daemon.status()
    status_doc, refresh_doc = (section(PROTOCOL_DOC, heading) for heading in ("### status", "### refresh"))
    example = json_example(status_doc)
    assert set(example) == set(status)
    assert set(example["profiles"][0]) == set(status["profiles"][0])
    assert set(next(iter(example["sources"].values()))) == set(next(iter(status["sources"].values())))
    one = json_example(refresh_doc)
    assert set(one) == set(refreshed)
    assert set(next(iter(one["profiles"].values()))) == set(next(iter(refreshed["profiles"].values())))
    for field in [*status, *status["profiles"][0], *next(iter(status["sources"].values()))]:
        assert f"`{field}`" in status_doc.split("```", 2)[2], f"status field {field} is not described"
    for field in next(iter(refreshed["profiles"].values())):
        assert f"`{field}`" in refresh_doc.split("```", 2)[2], f"refresh field {field} is not described"


def test_protocol_limits_version_and_ops_are_the_codes():
    limits = inspect.signature(server.SocketServer).parameters
    messages = flat(section(PROTOCOL_DOC, "## Messages"))
    assert f"at most {protocol.MAX_REQUEST // 1024} KiB" in messages
    assert f"first byte must arrive within {limits['first_byte_timeout'].default:g} s" in messages
    assert f"the whole line within {limits['read_timeout'].default:g} s" in messages
    assert f"At most {limits['max_clients'].default} clients" in messages
    assert f"every {protocol.RETRY_PAUSE * 1000:g} ms" in messages
    assert f"{protocol.CLIENT_TIMEOUT:g} s" in messages
    assert f"`status`: {control.STATUS_TIMEOUT:g} s" in messages
    assert f"`refresh` and `mfa`: {control.REFRESH_TIMEOUT:g} s" in messages
    assert f"1 to {protocol.MAX_NAME} printable characters" in messages
    for op in protocol.OPS:
        assert f'`{{"op": "{op}"' in messages, f"op {op} is not in the requests table"
    assert f"describes protocol {protocol.PROTOCOL_VERSION} " in flat(PROTOCOL_DOC)
    assert f"the bytes `{protocol.READY_PREFIX.decode()}`" in flat(PROTOCOL_DOC)
    versions = re.findall(r"\b(\d+): ", (DOCS / "versioning.md").read_text().split("**The socket protocol**", 1)[1]
                          .split("\n- ", 1)[0])
    assert versions == [str(n) for n in range(1, protocol.PROTOCOL_VERSION + 1)], "docs/versioning.md's history"


# Exit codes (docs/exit-codes.md) ------------------------------------------------------------------------


def test_every_exit_code_credd_gives_is_documented():
    doc = (DOCS / "exit-codes.md").read_text()
    table = {int(code) for code in first_column(doc, "| code |")}
    assert {0, errors.CreddError.exit_code, errors.UsageError.exit_code} <= table
    interrupted = [node.value.value for node in ast.walk(function_node(__import__("credd.cli").cli, "main"))
                   if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant)]
    assert set(interrupted) - {1, 2} <= table  # 130 for Ctrl-C
    from credd.commands import env

    not_runnable = {node.args[1].value for node in ast.walk(ast.parse(inspect.getsource(env)))
                    if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "CommandNotRunnable"}
    assert not_runnable == {126, 127}
    exec_line = flat(next(item for item in doc.split("\n- ") if item.startswith("`credd exec")))
    assert "not found exits 127" in exec_line and "cannot be run (not executable, a directory) 126" in exec_line
    service_line = flat(next(item for item in doc.split("\n- ") if item.startswith("`credd service status")))
    assert f"{service.STATUS_RUNNING} the service runs" in service_line
    assert f"{service.STATUS_NOT_RUNNING} it does not run or is not installed" in service_line
    assert f"{service.STATUS_UNKNOWN} the service manager could not say" in service_line


# docs/architecture.md: drawn from the import graph, checked against it ------------------------------------------

ARCHITECTURE = DOCS / "architecture.md"
# Imports that reach up a layer today, each to be moved down (issue 14); an import not listed here fails.
REACHING_UP: set[tuple[str, str]] = set()  # none today
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
                read = (node.value.id, node.attr)
                assert read not in CLOCK_READS, f"{module} reads the clock ({'.'.join(read)})"


def test_config_reference_documents_every_endpoint_key_and_no_other():
    rows = config_rows("Top level")
    endpoints = {key.split(".")[1] for key in rows if key.startswith("endpoints.") and key.count(".") == 1}
    assert endpoints == set(config.ENDPOINT_KEYS)
    assert {key.rsplit(".", 1)[1] for key in rows if key.startswith("endpoints.imds.")} == set(config.IMDS_KEYS)
