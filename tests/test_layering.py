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


# ---- modules that must stay light: the commit protocol, the shard, the configs -----------------
LIGHT_MODULES = ["adabiobert.annotation_commit", "adabiobert.pmc_shards", "adabiobert.job_configs", "adabiobert.config"]


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_light_module_imports_nothing_that_imports_torch(module):
    """Imported in a fresh interpreter: what it pulls in, directly or not, is in sys.modules."""
    import subprocess
    import sys

    code = f"import sys, {module}; print(sorted({{'torch', 'gensim', 'ray', 'transformers'}} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], cwd=LIBRARY.parent, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", f"{module} pulls in {done.stdout.strip()}"


# ---- storage is the only module that tells s3:// from local; no fault switches in the library ----
def called_names(path: Path) -> set[str]:
    """Names of every function called in a module (``f(...)`` or ``x.f(...)``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            function = node.func
            names.add(function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", ""))
    return names


PRODUCTION_FILES = sorted([*LIBRARY.rglob("*.py"), *(LIBRARY.parent / "jobs").glob("*.py")])


@pytest.mark.parametrize("path", PRODUCTION_FILES, ids=lambda p: str(p.relative_to(LIBRARY.parent)))
def test_only_storage_asks_whether_a_uri_is_s3(path):
    if path == LIBRARY / "storage.py":
        assert "is_s3" in called_names(path)  # the check sees the calls it forbids elsewhere
        return
    assert "is_s3" not in called_names(path), f"{path}: branch on s3 inside adabiobert/storage.py instead"


@pytest.mark.parametrize("path", PRODUCTION_FILES, ids=lambda p: str(p.relative_to(LIBRARY.parent)))
def test_no_production_module_kills_its_own_process(path):
    """Fault injection is the tests' business (tests/fault_hooks.py): no ``os._exit`` switch here."""
    assert "_exit" not in called_names(path), f"{path} calls os._exit"
