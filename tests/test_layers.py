"""The layers of DESIGN.md: imports point one way, and a test guards it."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "esign"

# layer -> modules it must never import
FORBIDDEN = {
    "workflow": ("flask", "sqlalchemy", "pyhanko", "esign.models", "esign.services", "esign.web",
                 "esign.signing", "esign.verify"),
    "signing": ("flask", "sqlalchemy", "esign.models", "esign.services", "esign.web"),
    "verify": ("flask", "sqlalchemy", "esign.models", "esign.services", "esign.web"),
    "models": ("flask", "esign.services", "esign.web", "esign.signing", "esign.verify"),
    "services": ("flask", "esign.web"),
}
LEAVES = ("config.py", "errors.py")


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(files: list[Path], forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in files:
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                found.append(f"{path.name} imports {name}")
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_point_inward(layer: str) -> None:
    files = sorted((PACKAGE / layer).rglob("*.py"))
    assert files, f"esign/{layer} has no modules"
    assert violations(files, FORBIDDEN[layer]) == []


@pytest.mark.parametrize("leaf", LEAVES)
def test_config_and_errors_import_nothing_else_from_esign(leaf: str) -> None:
    allowed = {"esign.errors"}
    names = {n for n in imports_of(PACKAGE / leaf) if n.startswith("esign") and n not in allowed}
    assert names == set()


def test_the_check_itself_catches_a_forbidden_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from flask import Flask\n")
    assert violations([bad], ("flask",)) == ["bad.py imports flask"]
