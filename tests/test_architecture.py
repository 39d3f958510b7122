"""The package's layers: imports run one way, from the bottom up, with no circle; cli.py stays thin; the README's
architecture section lists the tree as it is."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "qzhou_eval"
LAYERS = [
    "errors",
    "files",
    "provenance",
    "config",
    "recipe",
    "model",
    "store",
    "evaluate",
    "report",
    "commands",
    "cli",
]


def module_name(file: Path) -> str:
    parts = list(file.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> package modules it imports, imports inside functions included."""
    files = {module_name(f): f for f in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, file in files.items():
        package = mod if file.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            for target in targets:
                while target and target not in files:
                    target = target.rpartition(".")[0]
                if target and target != mod and target != "qzhou_eval" and not mod.startswith(target + "."):
                    graph[mod].add(target)
    return graph


def layer(mod: str) -> int | None:
    rest = mod.removeprefix("qzhou_eval.")
    return next((i for i, name in enumerate(LAYERS) if rest == name or rest.startswith(name + ".")), None)


def test_every_module_belongs_to_a_layer_and_no_import_goes_up():
    graph = import_graph()
    unlayered = [m for m in graph if m not in ("qzhou_eval", "qzhou_eval.__main__") and layer(m) is None]
    assert unlayered == []
    layered = [(m, t) for m, targets in graph.items() for t in targets if layer(m) is not None]
    upward = [(m, t) for m, t in layered if layer(m) < layer(t)]
    assert upward == []


def test_no_import_circle():
    graph = import_graph()
    state: dict[str, int] = {}

    def visit(mod: str, path: list[str]) -> None:
        state[mod] = 1
        for target in graph[mod]:
            assert state.get(target) != 1, " -> ".join([*path, mod, target])
            if target not in state:
                visit(target, [*path, mod])
        state[mod] = 2

    for mod in graph:
        if mod not in state:
            visit(mod, [])


def test_cli_is_thin():
    assert len((PACKAGE / "cli.py").read_text().splitlines()) <= 250


def test_readme_architecture_lists_every_folder_and_top_module():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Architecture", 1)[1].split("```", 2)[1]
    listed = set(re.findall(r"^qzhou_eval/(\S+?)/?\s", section, flags=re.M))
    tree = {p.name for p in PACKAGE.iterdir() if not p.name.startswith("__") and (p.is_dir() or p.suffix == ".py")}
    assert listed == tree
