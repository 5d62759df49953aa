"""The dependency rules of docs/architecture.md, checked by parsing every import in every form
(``import a.b``, ``from a import b``, ``from a.b import c``, relative imports)."""

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
    "twin": {"core", "storage", "bus", "kernel", "security", "geo", "registry", "ops"},  # city.py projects them
    "licences": {"core", "storage", "bus", "kernel", "security", "geo", "registry"},
    "services": {"core", "storage", "bus", "kernel", "security", "geo", "registry", "licences"},
    "iot": {"core", "storage", "bus", "kernel", "security", "geo", "registry", "ops", "twin"},
    "demo": {"core", "storage", "bus", "kernel", "security", "geo", "registry", "ops", "licences", "services",
             "iot"},
    "web": {"core", "kernel", "security"},
    "api": {"core", "storage", "bus", "kernel", "security", "geo", "registry", "ops", "twin", "services", "iot",
            "web"},
    "cli": {"core", "storage", "bus", "kernel", "security", "geo", "registry", "ops", "twin", "services", "iot", "demo",
            "api"},
}
KERNEL = {"core", "storage", "bus", "kernel"}
# Inside a domain: router -> service -> repository -> models. What each layer must not import of its own domain.
LAYERS = {
    "models": {"repository", "service", "router", "schemas"},
    "repository": {"service", "router"},
    "schemas": {"repository", "service", "router"},
    "events": {"repository", "service", "router"},
    "service": {"router"},
    "router": {"repository", "models"},
}
DOMAIN_FILES = ("models", "repository", "service", "router", "schemas", "events")


def _module_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else "__init__"


def imported_names(path: Path) -> list[str]:
    """Every dotted citybase name a file imports, with ``from x import y`` giving ``x.y`` too."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ["citybase", *path.relative_to(SRC).parent.parts]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            out.append(module)
            out.extend(f"{module}.{a.name}" for a in node.names if a.name != "*")
    return [n for n in out if n.startswith("citybase.")]


def test_the_import_parser_sees_every_form(tmp_path):
    f = SRC / "ops" / "_probe_for_test.py"
    f.write_text("import citybase.geo.models\nfrom citybase.geo import models\nfrom ..registry import repository\n"
                 "from .models import Incident\n")
    try:
        names = imported_names(f)
    finally:
        f.unlink()
    assert {"citybase.geo.models", "citybase.registry.repository", "citybase.ops.models.Incident"} <= set(names)


def test_every_module_is_in_the_rules():
    modules = {_module_of(p) for p in SRC.rglob("*.py")} - {"__init__"}
    assert modules == set(ALLOWED), "add new modules to docs/architecture.md and ALLOWED"


def test_imports_follow_the_dependency_direction():
    broken = []
    for path in SRC.rglob("*.py"):
        mod = _module_of(path)
        if mod == "__init__":
            continue
        for name in imported_names(path):
            target = name.split(".")[1]
            if target.startswith("__"):  # the package's own attributes (citybase.__version__)
                continue
            if target != mod and target not in ALLOWED[mod]:
                broken.append(f"{path.relative_to(SRC)} imports {name}")
    assert broken == []


def test_domains_reach_each_other_only_through_services():
    # A domain may call another domain's service, never its repository or tables (the seam stays movable).
    broken = []
    for path in SRC.rglob("*.py"):
        mod = _module_of(path)
        if mod in ("api", "cli", "demo"):
            continue
        for name in imported_names(path):
            parts = name.split(".")
            if parts[1] != mod and parts[1] not in KERNEL and any(p in ("repository", "models") for p in parts[2:]):
                broken.append(f"{path.relative_to(SRC)} imports {name}")
    assert broken == []


def _domain_packages() -> list[Path]:
    """Every folder that is a domain or a sub-domain: it holds a service.py."""
    return sorted(p.parent for p in SRC.rglob("service.py") if p.parent.name not in KERNEL)


def test_every_domain_has_the_same_files():
    missing = [f"{d.relative_to(SRC)}/{f}.py" for d in _domain_packages() for f in DOMAIN_FILES
               if not (d / f"{f}.py").exists()]
    assert missing == []


def test_layers_inside_a_domain_point_one_way():
    broken = []
    for d in _domain_packages():
        own = "citybase." + ".".join(d.relative_to(SRC).parts)
        for layer, forbidden in LAYERS.items():
            f = d / f"{layer}.py"
            if not f.exists():
                continue
            for name in imported_names(f):
                if name.startswith(own + "."):
                    rest = name[len(own) + 1:].split(".")
                    if rest[0] in forbidden:
                        broken.append(f"{f.relative_to(SRC)} imports {name}")
    assert broken == []


def test_every_domain_declares_itself():
    from citybase.kernel.domain import domains

    declared = {d.name for d in domains()}
    tops = {p.relative_to(SRC).parts[0] for p in _domain_packages()}
    assert tops <= declared, f"packages without a domain.py descriptor: {sorted(tops - declared)}"


def test_every_request_session_is_committed_before_the_answer():
    # Depends(get_session) without scope="function" commits after the response is sent: a failed commit
    # would be answered 2xx (tests/api/test_commit_before_answer.py shows what that means).
    late = [f"{p.relative_to(SRC)}" for p in SRC.rglob("*.py") if "Depends(get_session)" in p.read_text()]
    assert late == []
