"""The library stays framework-free: Ray only under adabiobert/distributed/, no CLI parsing."""

import ast
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[1] / "adabiobert"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


LIBRARY_FILES = sorted(p for p in LIBRARY.rglob("*.py") if "distributed" not in p.parts and p.name != "cli.py")


@pytest.mark.parametrize("path", LIBRARY_FILES, ids=lambda p: str(p.relative_to(LIBRARY)))
def test_library_module_imports_neither_ray_nor_argparse(path):
    assert not {"ray", "argparse"} & imported_modules(path), f"{path} must stay free of Ray and CLI parsing"


def test_the_check_sees_ray_where_it_is_used():
    distributed = list((LIBRARY / "distributed").glob("*.py"))
    assert any("ray" in imported_modules(p) for p in distributed)
