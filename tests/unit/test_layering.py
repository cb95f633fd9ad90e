"""The layout is the architecture: no import cycles, and lower layers never import higher ones.

Every import counts, at module level or inside a function: a lazy import keeps a cold start
short, but it is a dependency all the same (docs/architecture.md has the map).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each layer and the layers it may import (besides itself). Checked by prefix, most specific first.
LAYERS: dict[str, set[str]] = {
    "app": {"chalicelib.api", "chalicelib.events", "chalicelib.config", "chalicelib.aws_secrets", "chalicelib.logs"},
    "chalicelib.api": {
        "chalicelib.services",
        "chalicelib.db",
        "chalicelib.registry",
        "chalicelib.imaging",
        "chalicelib.ml",
        "chalicelib.storage",
        "chalicelib.queues",
        "chalicelib.compute",
        "chalicelib.config",
        "chalicelib.errors",
        "chalicelib.logs",
        "chalicelib.metrics",
        "chalicelib",
    },
    "chalicelib.events": {
        "chalicelib.services",
        "chalicelib.storage",
        "chalicelib.queues",  # the scheduled sweep's event source is the uploads dead-letter queue
        "chalicelib.config",
        "chalicelib.errors",
        "chalicelib.logs",
        "chalicelib.metrics",
    },
    "chalicelib.services": {
        "chalicelib.db",
        "chalicelib.registry",
        "chalicelib.imaging",
        "chalicelib.ml",
        "chalicelib.storage",
        "chalicelib.queues",
        "chalicelib.compute",
        "chalicelib.config",
        "chalicelib.errors",
        "chalicelib.logs",
        "chalicelib.metrics",
        "chalicelib.aws_secrets",
        "chalicelib",
    },
    "chalicelib.ml": {"chalicelib.imaging", "chalicelib.registry", "chalicelib.config", "chalicelib.errors"},
    "chalicelib.imaging": {"chalicelib.registry", "chalicelib.config", "chalicelib.errors"},
    "chalicelib.db": {"chalicelib.config", "chalicelib.errors", "chalicelib.aws_secrets"},
    "chalicelib.registry": {"chalicelib.errors"},
    "chalicelib.storage": {"chalicelib.config", "chalicelib.errors", "chalicelib.aws"},
    "chalicelib.queues": {"chalicelib.config", "chalicelib.errors", "chalicelib.aws"},
    "chalicelib.compute": {"chalicelib.config", "chalicelib.errors", "chalicelib.dask_preload"},
    "chalicelib.dask_preload": {"chalicelib.config"},  # what `dask scheduler/worker --preload` loads
    "chalicelib.aws_secrets": {"chalicelib.config", "chalicelib.aws"},
    "chalicelib.aws": set(),  # the AWS SDK's clients (botocore)
    "chalicelib.logs": {"chalicelib.config"},
    "chalicelib.metrics": {"chalicelib.config", "chalicelib.logs"},
    "chalicelib.config": set(),
    "chalicelib": set(),  # the package itself: __version__
    "chalicelib.errors": set(),
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def sources() -> dict[str, Path]:
    files = [ROOT / "app.py", *(ROOT / "chalicelib").rglob("*.py")]
    return {module_name(f): f for f in files if "migrations" not in f.parts}


def _type_checking_blocks(tree: ast.AST) -> list[ast.If]:
    """The `if TYPE_CHECKING:` blocks of a module (their imports are for the type checker only)."""
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.If)
        and (
            (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
            or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
        )
    ]


def imports_of(path: Path, modules: set[str], *, runtime_only: bool = False) -> set[str]:
    """The Pixelake modules a file imports (`from pkg import mod` counts as importing pkg.mod);
    with runtime_only, not those under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    if runtime_only:
        for block in _type_checking_blocks(tree):
            type_only.update(id(node) for statement in block.body for node in ast.walk(statement))
    found = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in modules else node.module)
    return {name for name in found if name in modules and name != "chalicelib"}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = sources()
    return {name: imports_of(path, set(mods)) - {name} for name, path in mods.items()}


def layer_of(module: str) -> str | None:
    """The most specific layer a module belongs to (the package root counts for itself only)."""
    layers = [
        layer for layer in LAYERS if module == layer or (layer != "chalicelib" and module.startswith(layer + "."))
    ]
    return max(layers, key=len) if layers else None


def test_every_module_belongs_to_a_layer(graph):
    assert not [module for module in graph if layer_of(module) is None]


def test_lower_layers_never_import_higher_ones(graph):
    wrong = []
    for module, targets in graph.items():
        layer = layer_of(module)
        for target in targets:
            target_layer = layer_of(target)
            if layer is None or (target_layer != layer and target_layer not in LAYERS[layer]):
                wrong.append(f"{module} → {target}")
    assert not wrong, "imports against the layering (docs/architecture.md):\n" + "\n".join(sorted(wrong))


# Blueprints reach the database through services (issue 13: "read input, call one service
# function, shape the answer"). At run time a blueprint may import only the vocabulary of the
# schema (plain constants, no SQLAlchemy); for the type checker it may name the row types
# (chalicelib.db.tables) that services return and its *_json functions read.
BLUEPRINT_DB_IMPORTS = {"chalicelib.db.vocabulary"}
BLUEPRINT_DB_TYPE_IMPORTS = {"chalicelib.db.tables"}


def database_imports_of_blueprints(modules: dict[str, Path]) -> dict[str, list[str]]:
    """Each api/ module → its imports of chalicelib.db beyond what blueprints may import."""
    known = set(sources()) | set(modules)
    wrong: dict[str, list[str]] = {}
    for module, path in modules.items():
        if not module.startswith("chalicelib.api."):
            continue
        every = imports_of(path, known)
        runtime = imports_of(path, known, runtime_only=True)
        bad = [
            target
            for target in sorted(every)
            if layer_of(target) == "chalicelib.db"
            and target not in BLUEPRINT_DB_IMPORTS
            and (target in runtime or target not in BLUEPRINT_DB_TYPE_IMPORTS)
        ]
        if bad:
            wrong[module] = bad
    return wrong


def test_blueprints_reach_the_database_through_services():
    wrong = database_imports_of_blueprints(sources())
    assert not wrong, "blueprints importing chalicelib.db (call a service in chalicelib/services/ instead):\n" + (
        "\n".join(f"{module} → {', '.join(targets)}" for module, targets in sorted(wrong.items()))
    )


def test_a_blueprint_importing_the_database_is_caught(tmp_path):
    """The check above refuses a session or a repository at run time, lazily imported too, and
    allows the vocabulary at run time and the row types for the type checker."""
    source = tmp_path / "view.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from chalicelib.db.session import session_scope\n"
        "from chalicelib.db.vocabulary import MODEL_TASKS\n"
        "if TYPE_CHECKING:\n"
        "    from chalicelib.db.tables import MLModel\n"
        "def view():\n"
        "    from chalicelib.db import ml_models\n"
    )
    assert database_imports_of_blueprints({"chalicelib.api.view": source}) == {
        "chalicelib.api.view": ["chalicelib.db.ml_models", "chalicelib.db.session"]
    }
    source.write_text(
        "if TYPE_CHECKING:\n    from chalicelib.db.tables import MLModel\nfrom chalicelib.db.vocabulary import X\n"
    )
    assert database_imports_of_blueprints({"chalicelib.api.view": source}) == {}


def test_no_import_cycles(graph):
    """Tarjan's strongly connected components: any component of more than one module is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    assert not cycles, f"import cycles: {cycles}"


def test_type_only_imports_are_told_from_runtime_ones(tmp_path):
    source = tmp_path / "view.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "from chalicelib.db.vocabulary import IMAGE_STATUSES\n"
        "if TYPE_CHECKING:\n"
        "    from chalicelib.db.tables import Image\n"
        "def view():\n"
        "    from chalicelib.db import images\n"
    )
    modules = set(sources())
    assert imports_of(source, modules) == {"chalicelib.db.vocabulary", "chalicelib.db.tables", "chalicelib.db.images"}
    assert imports_of(source, modules, runtime_only=True) == {"chalicelib.db.vocabulary", "chalicelib.db.images"}
