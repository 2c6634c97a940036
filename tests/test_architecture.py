"""Dependencies point one way: schemas <- infra <- workflows | activities | bridge <- dagbridge,
with ``airflow_adapter`` (every use of Airflow internals) below workflows and activities.

``workflows``, ``activities`` and ``bridge`` never import each other: a workflow calls activities
by the names in ``schemas/names.py``, and the bridge starts workflows by name. Imports inside
functions and under ``workflow.unsafe.imports_passed_through()`` count like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# What each package may import of the project's own packages (itself always).
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "infra": {"schemas"},
    "airflow_adapter": {"schemas"},
    "workflows": {"schemas", "airflow_adapter"},
    "activities": {"schemas", "infra", "airflow_adapter"},
    "bridge": {"schemas", "infra"},
    "dagbridge": {"schemas", "infra", "airflow_adapter", "workflows", "activities", "bridge"},
}


def _project_imports(path: Path) -> set[tuple[int, str]]:
    found: set[tuple[int, str]] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update((node.lineno, name.split(".")[0]) for name in names if name.split(".")[0] in ALLOWED)
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package: str) -> None:
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {imported}"
        for path in sorted((REPO / package).rglob("*.py"))
        for line, imported in sorted(_project_imports(path))
        if imported != package and imported not in ALLOWED[package]
    ]
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package])}:\n" + "\n".join(wrong)


def test_every_package_is_placed() -> None:
    packages = {path.parent.name for path in REPO.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert packages == set(ALLOWED), "a new top-level package needs its place in ALLOWED"


def test_test_modules_import_no_other_test_module() -> None:
    """Shared test helpers live in helper modules; a test module imported by another runs its tests twice."""
    wrong = [
        f"{path.relative_to(REPO)}:{node.lineno} imports {node.module}"
        for path in sorted((REPO / "tests").glob("test_*.py"))
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.ImportFrom)
        and node.module is not None
        and (node.module.startswith("tests.test_") or node.module == "tests.conftest")
    ]
    assert not wrong, "\n".join(wrong)
