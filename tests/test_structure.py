"""The import graph, read statically (every ``import``, at module level or inside a function).

The production packages never reach the demo's wiring, the Meta sandbox or the
embedded Redis, and no project module imports itself back through others. The lock
files and the production image keep to the same line.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from flask import Flask
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

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


def test_the_demo_command_comes_only_with_the_demo_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from connect_service.cli import main

    assert "demo " in CliRunner().invoke(main, ["--help"]).output
    monkeypatch.setitem(sys.modules, "social_connect_demo", None)  # as in the production image
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 2 and "No such command 'demo'" in result.output
    assert "demo " not in CliRunner().invoke(main, ["--help"]).output


def locked(path: Path) -> dict[str, str]:
    """``name → version`` of a lock file (a pin may name extras), every entry carrying its hashes."""
    entries = re.findall(
        r"^([A-Za-z0-9._-]+)(?:\[[A-Za-z0-9._,-]+\])?==(\S+)((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})+)",
        path.read_text(),
        re.M,
    )
    return {canonicalize_name(name): version for name, version, _ in entries}


def pins(requirements: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in requirements:
        requirement = Requirement(line)
        (spec,) = requirement.specifier
        out[canonicalize_name(requirement.name)] = spec.version
    return out


def test_the_lock_files_hold_pyproject_pins_with_hashes_and_production_no_demo_parts() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    runtime = pins(project["project"]["dependencies"] + project["dependency-groups"]["build"])
    extras = pins([line for extra in project["project"]["optional-dependencies"].values() for line in extra])
    production, development = locked(ROOT / "requirements.lock"), locked(ROOT / "requirements-dev.lock")
    # Every line of a lock is a pinned, hashed entry (or a comment): nothing slipped in unhashed.
    for path in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / path).read_text()
        assert text.count("==") == len(locked(ROOT / path)), f"{path}: an entry without hashes (`make lock`)"
    assert {name: production.get(name) for name in runtime} == runtime, "requirements.lock is stale: `make lock`"
    wanted = {**runtime, **extras}
    assert {name: development.get(name) for name in wanted} == wanted, "requirements-dev.lock is stale: `make lock`"
    assert {name: development[name] for name in production} == production  # the same versions in both
    assert "fakeredis" not in production and "fakeredis" in development


def test_the_production_image_gets_the_runtime_lock_and_only_the_production_packages() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    copied = {word for line in dockerfile.splitlines() if line.startswith("COPY ") for word in line.split()[1:-1]}
    assert {*PRODUCTION, "requirements.lock"} <= copied
    assert not copied & {"meta_sandbox", "social_connect_demo", "requirements-dev.lock", "."}
    assert "pip install --require-hashes -r requirements.lock" in dockerfile


def test_only_the_demo_adds_the_demo_login_and_never_to_another_app(app: Flask) -> None:
    from social_connect_demo import login

    assert app.test_client().get("/demo/login").status_code == 404
    with pytest.raises(RuntimeError, match="APP_ENV=demo"):
        login.register(app)
    assert app.test_client().get("/demo/login").status_code == 404
