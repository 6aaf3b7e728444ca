"""The import graph, read statically (every ``import``, at module level or inside a function).

The production packages never reach the demo's wiring, the Meta sandbox or the
embedded Redis, and no project module imports itself back through others.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = ("connect_service", "publish_worker", "shared")
PROJECT = (*PRODUCTION, "meta_sandbox", "social_connect_demo")
DEMO_ONLY = ("meta_sandbox", "social_connect_demo", "fakeredis")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PROJECT for path in sorted((ROOT / package).rglob("*.py"))}


def imported_names(path: Path, module: str, modules: Collection[str] = ()) -> Iterator[str]:
    """Every module ``path`` imports: ``from x import y`` is ``x.y`` when that is one of ``modules``, else ``x``."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base


def import_graph() -> dict[str, set[str]]:
    """Project module → the project modules it imports (the named submodule where there is one)."""
    modules = project_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        graph[module] = {name for name in imported_names(path, module, modules) if name in modules} - {module}
    return graph


def test_production_packages_import_nothing_of_the_demo() -> None:
    offending = []
    for package in PRODUCTION:
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in imported_names(path, module_name(path)):
                if name.split(".")[0] in DEMO_ONLY:
                    offending.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offending == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle (its modules, the first repeated at the end), or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(module: str) -> list[str] | None:
        if module in visiting:
            return [*visiting[visiting.index(module) :], module]
        if module in done:
            return None
        visiting.append(module)
        for target in sorted(graph.get(module, ())):
            cycle = visit(target)
            if cycle:
                return cycle
        visiting.pop()
        done.add(module)
        return None

    for module in sorted(graph):
        cycle = visit(module)
        if cycle:
            return cycle
    return None


def test_the_project_import_graph_has_no_circle() -> None:
    assert find_cycle(import_graph()) is None


def test_the_graph_reader_sees_function_level_imports_and_circles() -> None:
    """The checks above would catch the circle this issue removed (cli ↔ demo, both imports lazy)."""
    graph = import_graph()
    assert "shared.migrations" in graph["connect_service.cli"]
    assert "connect_service" in graph["social_connect_demo.stack"]
    graph["connect_service.cli"] = {*graph["connect_service.cli"], "social_connect_demo.command"}
    assert find_cycle(graph) is None  # the demo imports the CLI nowhere
    graph["social_connect_demo.command"] = {*graph["social_connect_demo.command"], "connect_service.cli"}
    assert find_cycle(graph) == ["connect_service.cli", "social_connect_demo.command", "connect_service.cli"]
