"""The house's shape (ARCHITECTURE.md "Layers"): no import cycle between modules, and no function-level
import of a project module unless a comment right above it says why no other way exists. The layers
themselves are an import-linter contract (pyproject.toml, run by ``make lint``)."""

import ast
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
APPS = ("config", "tenancy", "audit", "outbox", "members", "tiers", "points", "benefits", "simulation", "events")
APPS += ("integrations",)

# Function-level imports of project modules that predate the rule: none left. Keep it that way (a new
# one needs a comment right above it saying why no other way exists).
KNOWN: set[tuple[str, str]] = set()


def _explained(lines: list[str], index: int) -> bool:
    """A comment on the import's line, or right above the block of imports it belongs to."""
    if "#" in lines[index]:
        return True
    while index > 0 and lines[index - 1].strip().startswith(("from ", "import ")):
        index -= 1
    return index > 0 and lines[index - 1].strip().startswith("#")


def _function_level_imports() -> set[tuple[str, str]]:
    found = set()
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            lines = path.read_text().splitlines()
            tree = ast.parse("\n".join(lines))
            for function in ast.walk(tree):
                if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for node in ast.walk(function):
                    if not isinstance(node, ast.Import | ast.ImportFrom):
                        continue
                    modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                    explained = _explained(lines, node.lineno - 1)
                    for module in modules:
                        if module.split(".")[0] in APPS and not explained:
                            found.add((str(path.relative_to(ROOT)), module))
    return found


def test_no_import_cycle_between_modules():
    graph = grimp.build_graph(*APPS, cache_dir=None)
    cycles = []
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if graph.chain_exists(importer=imported, imported=module):
                cycles.append((module, imported, graph.find_shortest_chain(importer=imported, imported=module)))
    assert cycles == []


def test_function_level_imports_of_project_modules_say_why():
    assert _function_level_imports() == KNOWN
