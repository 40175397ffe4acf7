"""Start-up does not wait for the model layer: ``salience inspect`` and the window (opened, with a
case shown) load no torch and no MONAI on the thread the user waits on. Each check runs in a
fresh interpreter, so nothing imported by other tests hides an import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("torch", "monai")

INSPECT = """
import io, json, sys, contextlib
from app.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    code = main(["inspect", sys.argv[1]])
print(json.dumps({"code": code, "loaded": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)

WINDOW = """
import importlib.abc, json, os, pathlib, sys, tempfile, threading

gui_thread_imports = []

class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in %r and threading.current_thread() is threading.main_thread():
            gui_thread_imports.append(name)
        return None

sys.meta_path.insert(0, Watch())
from PySide6.QtWidgets import QApplication
from app.settings import Settings
from app.startup import open_workstation
from ui.main_window import MainWindow

home = pathlib.Path(tempfile.mkdtemp())
settings = Settings(home=home, db_url=f"sqlite:///{home / 'salience.db'}",
                    demo_data=pathlib.Path(sys.argv[1]), reader="dr_a")
app = QApplication([])
window = MainWindow(open_workstation(settings))
window.show()
after_window = sorted(set(gui_thread_imports))
task = window.open_item(window.worklist.items()[0])
while task.is_running:
    app.processEvents()
print(json.dumps({"after_window": after_window, "case_shown": window.case is not None,
                  "gui_thread": sorted(set(gui_thread_imports))}), flush=True)
os._exit(0)  # the worker listing the models may still be importing torch: no need to wait
""" % (HEAVY,)


def _probe(code: str, argument: str) -> dict:
    result = subprocess.run([sys.executable, "-c", code, argument], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("relative", ["histopathology-nct-crc/ADI-AAQEFMRI.tif", "glioma-lgg/TCGA_CS_4941_19960909"])
def test_inspect_loads_neither_torch_nor_monai(shared_data, relative):
    """Reading an image needs no model: ``salience inspect`` answers without the model layer."""
    path = shared_data / relative
    if not path.exists():
        pytest.skip(f"{path} is missing")
    assert _probe(INSPECT, str(path)) == {"code": 0, "loaded": []}


def test_the_window_and_a_case_show_before_the_model_layer_loads(shared_data):
    """With the real workstation, building the window and showing a case import no torch or
    MONAI on the GUI thread; the models are listed in a worker."""
    outcome = _probe(WINDOW, str(shared_data))
    assert outcome == {"after_window": [], "case_shown": True, "gui_thread": []}


def test_the_probe_sees_an_import_on_the_gui_thread(shared_data):
    """The window probe is not blind: an import of torch on the GUI thread shows in its answer."""
    code = WINDOW.replace("window.show()\n", "window.show()\nimport torch\n")
    outcome = _probe(code, str(shared_data))
    assert outcome["after_window"] == ["torch"]
