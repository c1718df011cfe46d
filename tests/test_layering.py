"""The architecture as tests: which area of ``adabiobert/`` may import which, and where Ray and argparse live.

The areas are the folders of ``adabiobert/`` (the modules at its top are the foundation). A module
that imports an area its own area may not import, a module in a folder no rule names, or Ray or
argparse outside their one home fails here.
"""

import ast
from pathlib import Path

import pytest

LIBRARY = Path(__file__).resolve().parents[1] / "adabiobert"

FOUNDATION = "foundation"
AREAS = {
    FOUNDATION: "errors, storage, spans, labels, metrics, text, progress, configs: pure Python",
    "corpora": "annotated corpora and their formats",
    "model": "the tagger: encoder, CRF, loss, engine, bundle, precision",
    "pmc": "PubMed Central: JATS, shards, versions, ingest, lexicon, the Word2Vec build",
    "annotation": "the annotation job without Ray: stages, planner, commit, tables, exports",
    "linking": "vocabularies, the linking index and the linker",
    "cli": "the adabiobert command and the jobs' argparse kit",
    "distributed": "Ray: the training loop, the annotation pipeline, parallel ingest, the Word2Vec corpus",
    "testing": "fixtures shared by tests/ and benchmarks/",
}
MAY_IMPORT = {
    FOUNDATION: {FOUNDATION},
    "corpora": {FOUNDATION},
    "model": {FOUNDATION},
    "pmc": {FOUNDATION},
    "linking": {FOUNDATION, "corpora"},
    "annotation": {FOUNDATION, "pmc", "model", "linking"},
    "cli": {FOUNDATION, "corpora", "model", "annotation", "linking"},
    "distributed": {FOUNDATION, "corpora", "model", "pmc", "annotation", "linking"},
    "testing": {FOUNDATION, "corpora", "model", "pmc", "annotation", "linking"},
}
"""Every area may import itself; nothing but tests and benchmarks imports ``testing``."""

PUBLIC_FACADES = {LIBRARY / "__init__.py", LIBRARY / "tagger.py"}
"""Foundation modules that re-export the public ``Tagger`` for users' import paths (lazily in ``__init__``)."""

FORBIDDEN_PACKAGES = {
    FOUNDATION: {"torch", "transformers", "ray", "gensim", "argparse"},
    "corpora": {"torch", "transformers", "ray", "argparse"},
    "model": {"ray", "argparse"},
    "pmc": {"torch", "transformers", "ray", "argparse"},
    "annotation": {"ray", "argparse"},
    "linking": {"torch", "transformers", "ray", "argparse"},
    "cli": {"ray"},
    "distributed": {"argparse"},
    "testing": {"ray", "argparse"},
}
TRAINING_SIDE = {"adabiobert.model.engine", "adabiobert.model.assembly", "adabiobert.model.loss",
                 "adabiobert.model.adaptive_alpha", "adabiobert.model.training_report"}
"""The model's training side: the annotation and PMC areas tag with a bundle, they never train."""


def imported_modules(path: Path) -> set[str]:
    """Dotted names a module imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def top_packages(path: Path) -> set[str]:
    return {name.split(".")[0] for name in imported_modules(path)}


def area_of_file(path: Path) -> str:
    parts = path.relative_to(LIBRARY).parts
    return FOUNDATION if len(parts) == 1 else parts[0]


def area_of_module(name: str) -> str | None:
    """The area of an ``adabiobert`` module, ``None`` for anything else."""
    parts = name.split(".")
    if parts[0] != "adabiobert" or len(parts) == 1:
        return None
    return parts[1] if (LIBRARY / parts[1]).is_dir() else FOUNDATION


LIBRARY_FILES = sorted(LIBRARY.rglob("*.py"))
IDS = {"ids": lambda p: str(p.relative_to(LIBRARY))}


@pytest.mark.parametrize("path", LIBRARY_FILES, **IDS)
def test_every_module_is_in_a_named_area(path):
    assert area_of_file(path) in AREAS, f"{path}: adabiobert/{area_of_file(path)}/ is not an area; add it to AREAS with its rules"


@pytest.mark.parametrize("path", LIBRARY_FILES, **IDS)
def test_module_imports_only_the_areas_its_area_may(path):
    if path in PUBLIC_FACADES:
        return
    area = area_of_file(path)
    allowed = MAY_IMPORT[area] | {area}
    wrong = sorted(m for m in imported_modules(path) if area_of_module(m) not in (None, *allowed))
    assert not wrong, f"{path} ({area}) imports {wrong}; {area} may import {sorted(allowed)}"


@pytest.mark.parametrize("path", LIBRARY_FILES, **IDS)
def test_module_imports_no_package_its_area_must_not(path):
    area = area_of_file(path)
    wrong = top_packages(path) & FORBIDDEN_PACKAGES[area]
    assert not wrong, f"{path} ({area}) imports {sorted(wrong)}: Ray lives in distributed/, argparse in cli/"


@pytest.mark.parametrize("path", [p for p in LIBRARY_FILES if area_of_file(p) in {"pmc", "annotation", "linking"}], **IDS)
def test_pmc_annotation_and_linking_never_import_the_training_side(path):
    wrong = sorted(imported_modules(path) & TRAINING_SIDE)
    assert not wrong, f"{path} imports {wrong}: tag through adabiobert.model.tagger, train in distributed/"


def test_the_checks_see_what_they_forbid():
    """The rules would catch a violation: Ray is imported in distributed/, argparse in cli/, and an
    area outside MAY_IMPORT is reported (here: the model importing the annotation area)."""
    assert any("ray" in top_packages(p) for p in (LIBRARY / "distributed").glob("*.py"))
    assert any("argparse" in top_packages(p) for p in (LIBRARY / "cli").glob("*.py"))
    assert area_of_module("adabiobert.annotation.commit") not in MAY_IMPORT["model"] | {"model"}
    assert area_of_module("adabiobert.storage") == FOUNDATION


def test_every_area_has_rules_and_a_folder():
    folders = {p.name for p in LIBRARY.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(AREAS) - {FOUNDATION}
    assert set(MAY_IMPORT) == set(FORBIDDEN_PACKAGES) == set(AREAS)


# ---- modules that must stay light: the commit protocol, the shard, the configs -----------------
LIGHT_MODULES = ["adabiobert.annotation.commit", "adabiobert.annotation.counts", "adabiobert.annotation.status",
                 "adabiobert.pmc.shards", "adabiobert.pmc.versions", "adabiobert.job_configs", "adabiobert.training_config",
                 "adabiobert.cli.kit"]


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
