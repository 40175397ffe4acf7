"""The engine and the database run headless: importing them never loads Qt (or, for db, torch)."""

from __future__ import annotations

import subprocess
import sys

ENGINE_MODULES = [
    "engine.imaging",
    "engine.imaging.nifti",
    "engine.explain",
    "engine.models.bundle",
]
DB_MODULES = ["db.session", "db.migrate", "db.readings", "db.cases", "db.runs", "db.blobs"]


def _loaded_after_import(modules: list[str]) -> set[str]:
    code = (
        "import sys, importlib\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(' '.join(sorted({n.split('.')[0] for n in sys.modules})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_engine_imports_no_qt_and_no_db():
    loaded = _loaded_after_import(ENGINE_MODULES)
    assert "torch" in loaded  # the check is real: engine does load its own heavy dependencies
    assert not {"PySide6", "shiboken6", "ui", "app", "db"} & loaded


def test_db_imports_no_qt_no_torch_no_engine():
    loaded = _loaded_after_import(DB_MODULES)
    assert "sqlalchemy" in loaded
    assert not {"PySide6", "shiboken6", "torch", "monai", "engine", "ui", "app"} & loaded


def test_import_linter_contracts_hold():
    """The same contracts CI runs (lint-imports) hold for the tree under test."""
    from importlinter.cli import lint_imports

    assert lint_imports() == 0
