"""The three layers and their one direction: transforms <- connectors <- pipelines.

Every import in the product's packages, at module level or inside a function, is read
from the source with ``ast``; an import that points up a layer, or a cycle between the
project's modules, fails here. The CLI's light commands must not pay for Beam.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = {"transforms": 0, "connectors": 1, "pipelines": 2}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports() -> dict[str, set[str]]:
    """Module -> the project modules it imports (anywhere in its body)."""
    graph: dict[str, set[str]] = {}
    for package in LAYERS:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = _module_name(path)
            targets: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    targets.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    targets.add(node.module)
                    targets.update(f"{node.module}.{alias.name}" for alias in node.names)
            graph[name] = {t for t in targets if t.split(".")[0] in LAYERS}
    modules = set(graph)
    # keep module names only: "from pipelines.config import Config" names pipelines.config
    return {m: {t for t in ts if t in modules and t not in LAYERS} for m, ts in graph.items()}


def test_every_import_points_down_a_layer() -> None:
    wrong = [
        f"{module} imports {target}"
        for module, targets in project_imports().items()
        for target in sorted(targets)
        if LAYERS[target.split(".")[0]] > LAYERS[module.split(".")[0]]
    ]
    assert wrong == [], "imports that point up a layer:\n" + "\n".join(wrong)


def test_no_import_cycles_between_project_modules() -> None:
    graph = project_imports()
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def _imports_beam(argv: list[str]) -> str:
    code = (
        "import sys\n"
        "from pipelines import cli\n"
        f"try:\n    cli.main({argv!r})\nexcept SystemExit:\n    pass\n"
        "import pipelines.run_cmd, connectors.rss, connectors.web\n"
        "print('apache_beam' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-2000:]


@pytest.mark.parametrize("argv", [["--help"], ["feeds", "--help"], ["topics", "--help"]])
def test_light_commands_do_not_import_beam(argv: list[str]) -> None:
    assert _imports_beam(argv) == "False"


def test_search_does_not_import_beam(tmp_path: Path) -> None:
    """An analyst's search answers without Beam's ~0.5 s import (it only reads the index)."""
    from connectors.localindex import LocalIndex

    LocalIndex.in_store(tmp_path).close()  # an empty index: the search runs to the end
    assert _imports_beam(["search", "banjir", "--store", str(tmp_path)]) == "False"
