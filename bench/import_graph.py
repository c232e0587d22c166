"""Who imports whom among credd's own modules: the graph, its cycles, and what the hook loads.

    .venv/bin/python bench/import_graph.py [--repo DIR] [--lazy]

Reads the source with `ast` (runs nothing). An import at module level is an
edge that is paid at import time; one inside a function (`--lazy` shows those
too) is paid only when that function runs, which is how the commands keep
heavy modules out of `credd process`. Cycles are looked for among module-level
edges, since those are the ones that can break an import.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(tree: ast.Module, here: str, is_package: bool) -> Iterator[tuple[str, bool]]:
    """(imported credd module, at module level?) for every import statement in `tree`."""
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = here.split(".") if is_package else here.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name == "credd" or name.startswith("credd."):
                yield name, id(node) in top_level or _guarded_top(tree, node)


def _guarded_top(tree: ast.Module, node: ast.AST) -> bool:
    """An import under a top-level `if`/`try` still runs at import time; one under `if TYPE_CHECKING:` never runs."""
    for statement in tree.body:
        if isinstance(statement, ast.If) and _is_type_checking(statement.test):
            continue
        if isinstance(statement, (ast.If, ast.Try)) and any(child is node for child in ast.walk(statement)):
            return True
    return False


def _is_type_checking(test: ast.expr) -> bool:
    """`TYPE_CHECKING` or `typing.TYPE_CHECKING`: true only for a type checker."""
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def graph(repo: Path) -> dict[str, dict[str, bool]]:
    """module -> {imported module: at module level}; only names that are credd modules."""
    root = repo
    files = sorted((repo / "credd").rglob("*.py"))
    known = {module_name(f, root) for f in files}
    edges: dict[str, dict[str, bool]] = {}
    for f in files:
        here = module_name(f, root)
        tree = ast.parse(f.read_text(encoding="utf-8"), str(f))
        out = edges.setdefault(here, {})
        for name, eager in imports(tree, here, f.name == "__init__.py"):
            while name not in known and "." in name:  # `from credd.x import function` -> credd.x
                name = name.rsplit(".", 1)[0]
            if name in known and name != here:
                out[name] = out.get(name, False) or eager
    return edges


def cycles(edges: dict[str, dict[str, bool]]) -> list[list[str]]:
    """Strongly connected components of more than one module, over module-level edges (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target, eager in edges.get(node, {}).items():
            if not eager:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def closure(edges: dict[str, dict[str, bool]], start: str) -> set[str]:
    """Every credd module `start` loads at import time."""
    seen = {start}
    todo = [start]
    while todo:
        for target, eager in edges.get(todo.pop(), {}).items():
            if eager and target not in seen:
                seen.add(target)
                todo.append(target)
    # importing credd.x.y imports the packages on the way
    for name in list(seen):
        parts = name.split(".")
        seen.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to read (default: this one)")
    parser.add_argument("--lazy", action="store_true", help="also list imports made inside functions")
    args = parser.parse_args(argv)
    if not (args.repo / "credd").is_dir():
        parser.error(f"{args.repo} has no credd/ package")
    edges = graph(args.repo)
    eager_count = sum(eager for out in edges.values() for eager in out.values())
    lazy_count = sum(not eager for out in edges.values() for eager in out.values())
    print(f"{len(edges)} modules, {eager_count} module-level imports, {lazy_count} imports inside functions")
    for module in sorted(edges):
        eager = sorted(t for t, e in edges[module].items() if e)
        lazy = sorted(t for t, e in edges[module].items() if not e)
        line = f"{module}: {', '.join(eager) or '-'}"
        if args.lazy and lazy:
            line += f"  (lazy: {', '.join(lazy)})"
        print(line)
    found = cycles(edges)
    print("cycles: " + ("; ".join(" <-> ".join(c) for c in found) if found else "none"))
    hook = "credd.hook"
    if hook in edges:
        print(f"{hook} loads at import time: {', '.join(sorted(closure(edges, hook)))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
