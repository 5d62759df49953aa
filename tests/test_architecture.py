"""The dependency rules of docs/architecture.md, checked by parsing every import."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "citybase"

# module -> the citybase modules it may import (itself always allowed)
ALLOWED = {
    "core": set(),
    "storage": {"core"},
    "bus": {"core"},
    "kernel": {"core", "storage", "bus"},
    "security": {"core", "storage", "bus", "kernel"},
    "geo": {"core", "storage", "bus", "kernel", "security"},
    "registry": {"core", "storage", "bus", "kernel", "security", "geo"},
    "ops": {"core", "storage", "bus", "kernel", "security", "geo", "registry"},
    "demo": {"core", "storage", "bus", "kernel", "security", "geo", "registry", "ops"},
    "web": {"core", "security"},
    "api": {"core", "storage", "bus", "kernel", "security", "geo", "registry", "ops", "web"},
    "cli": {"core", "storage", "bus", "kernel", "security", "geo", "registry", "ops", "demo", "api"},
}


def _module_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else "__init__"


def _imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_every_module_is_in_the_rules():
    modules = {_module_of(p) for p in SRC.rglob("*.py")} - {"__init__"}
    assert modules == set(ALLOWED), "add new modules to docs/architecture.md and ALLOWED"


def test_imports_follow_the_dependency_direction():
    broken = []
    for path in SRC.rglob("*.py"):
        mod = _module_of(path)
        if mod == "__init__":
            continue
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] != "citybase" or len(parts) < 2:
                continue
            target = parts[1]
            if target != mod and target not in ALLOWED[mod]:
                broken.append(f"{path.relative_to(SRC)} imports citybase.{target}")
    assert broken == []


def test_domains_reach_each_other_only_through_services():
    # A domain may call another domain's service, never its repository or tables (the seam stays movable).
    broken = []
    for path in SRC.rglob("*.py"):
        mod = _module_of(path)
        if mod in ("api", "cli", "demo"):
            continue
        for name in _imports(path):
            parts = name.split(".")
            if (len(parts) >= 3 and parts[0] == "citybase" and parts[1] != mod
                    and parts[1] not in ("core", "storage", "bus", "kernel") and parts[2] in ("repository", "models")):
                broken.append(f"{path.relative_to(SRC)} imports {name}")
    assert broken == []
