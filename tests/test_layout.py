"""The layout shows what runs where: no import cycle, and the node package imports nothing of the laptop's.

The imports are read with ``ast`` (every ``import``, also those inside functions
and under ``TYPE_CHECKING``), so a cycle that Python happens to tolerate at
import time still fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "burst"
# what each part of burst may import of burst (besides the shared bottom layer, which all may)
SHARED = {"burst", "burst.protocol", "burst.records", "burst.errors", "burst.retry", "burst.atomic", "burst.concurrency"}
MAY_IMPORT = {
    "shared": set(),
    "storage": {"storage"},
    "node": {"storage", "node"},
    "transport": {"transport"},
    "providers": {"storage", "node", "transport", "providers"},
    "control": {"storage", "node", "transport", "providers", "control"},
    "results": {"storage", "node", "results"},
    "cli": {"storage", "node", "transport", "providers", "control", "results", "cli"},
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            for alias in node.names:
                targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    found = set()
    for target in targets:
        while target not in MODULES and "." in target:
            target = target.rpartition(".")[0]
        if target in MODULES and target != name:
            found.add(target)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def part(name: str) -> str:
    return "shared" if name in SHARED or name == "burst.__main__" else name.split(".")[1]


def test_no_import_cycle():
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = "open"
        stack.append(name)
        for target in sorted(GRAPH[name]):
            if state.get(target) == "open":
                cycle = stack[stack.index(target):] + [target]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        stack.pop()
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name)


def test_every_part_imports_only_what_is_below_it():
    wrong = []
    for name, targets in sorted(GRAPH.items()):
        if name == "burst.__main__":
            continue
        allowed = MAY_IMPORT[part(name)]
        wrong += [f"{name} imports {t}" for t in sorted(targets) if part(t) != "shared" and part(t) not in allowed]
    assert not wrong, "imports against the layering (docs/design.md):\n" + "\n".join(wrong)


def test_the_node_package_needs_no_laptop_code():
    """What ships to a machine: the node package, storage and the shared layer, nothing else of burst."""
    reachable, todo = set(), [n for n in MODULES if n.startswith("burst.node")]
    while todo:
        name = todo.pop()
        if name not in reachable:
            reachable.add(name)
            todo.extend(GRAPH[name])
    outside = sorted(n for n in reachable if part(n) not in ("shared", "node", "storage"))
    assert not outside, f"the node package reaches {outside}"


def test_few_modules_at_the_top_and_none_too_long():
    top = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(top) <= 8, f"burst/ holds {len(top)} modules directly: {top}; put them in the package of their role"
    long = sorted(f"{p.relative_to(ROOT.parent)}: {n}" for p in ROOT.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400)
    assert not long, f"modules over 400 lines: {long}"
