"""``python -m app.screenshots OUT``: the README's screenshots, taken from the running window.

Run it under a display (``xvfb-run -s "-screen 0 1600x1000x24" python -m app.screenshots
ui/screenshots``): it starts the real window over a fresh data folder, opens one demo case of
each task from ``../shared/data``, analyses it as a reader would (the same ``MainWindow`` calls
the menus and buttons make), and saves each view as a JPEG. Nothing here is drawn for the
picture: every image is the window as a reader sees it at that moment.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

WINDOW_SIZE = (1600, 1000)


def _pump(app, seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.01)


def wait_for(app, task, timeout: float = 600.0) -> None:
    """Process events until ``task`` (a ``ui.workers.Task``) has ended.

    Raises:
        RuntimeError: it failed or ran past ``timeout`` seconds.
    """
    if task is None:
        raise RuntimeError("the window refused to start the job")
    failures: list[object] = []
    task.failed.connect(failures.append)
    end = time.perf_counter() + timeout
    while task.is_running and time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.02)
    if task.is_running:
        raise RuntimeError(f"{task.name} still running after {timeout:.0f} s")
    if failures:
        raise RuntimeError(f"{task.name} failed: {failures[0]}")
    _pump(app, 0.5)


#: JPEG quality of the saved views: text stays sharp at a fifth of a PNG's size.
JPEG_QUALITY = 90


def save(window, app, out: Path, name: str) -> Path:
    """Save what the window shows now as ``out/name.jpg``."""
    _pump(app, 0.5)
    path = out / f"{name}.jpg"
    if not window.grab().save(str(path), "JPEG", JPEG_QUALITY):
        raise RuntimeError(f"could not write {path}")
    print(f"wrote {path}")
    return path


def open_demo(window, app, title_part: str) -> None:
    """Open the first worklist case whose title contains ``title_part``, as a double click does."""
    items = [item for item in window.worklist.items() if title_part in item.title or title_part in item.source]
    if not items:
        raise RuntimeError(f"no demo case matching {title_part!r} in the worklist (is ../shared/data beside the checkout?)")
    wait_for(app, window.open_item(items[0]))


def shots(window, app, out: Path) -> list[Path]:
    """Every view, in the order the README shows them (``out/<view>.jpg``)."""
    taken: list[Path] = []
    step: Callable[[str], None] = lambda name: taken.append(save(window, app, out, name))  # noqa: E731

    # Glioma MRI: Grad-CAM on a FLAIR slice, checked against the expert mask.
    open_demo(window, app, "TCGA_CS_4941")
    window.state.display.slice_index = 12
    wait_for(app, window.analyse("glioma", "gradcam"))
    wait_for(app, window.check_map(1, 12))
    step("glioma")
    window.planes_action.trigger()  # View > Three planes (V)
    window.state.planes.set_cursor((12, 52, 50))
    step("glioma-planes")
    window.planes_action.trigger()
    # Analysis > Compare Grad-CAM, Grad-CAM++, LayerCAM, Eigen-CAM: four methods, one forward pass.
    wait_for(app, window.compare_methods(["gradcam", "gradcampp", "layercam", "eigencam"]))
    step("glioma-compare")
    # Lung ultrasound: a clip, its per-frame strip and the clip verdict.
    open_demo(window, app, "Cov-Atlas-pleural")
    wait_for(app, window.analyse("lung-ultrasound", "gradcam"))
    step("lung-ultrasound")
    # Histopathology: an H&E patch.
    open_demo(window, app, "lung_aca")
    wait_for(app, window.analyse("histopathology", "gradcam"))
    step("histopathology")
    # A whole slide: a pyramid built from held-back patches, tile probabilities over the tissue.
    slide = build_demo_slide(out.parent / f"{out.name}-slide.tif")
    try:
        wait_for(app, window.open_path(str(slide)))
        wait_for(app, window.analyse("histopathology", "gradcam"))
        window.state.overlay.map_source = "probability"
        window.slide_view.fit()
        step("slide")
        window.slide_view.zoom_by(6.0)
        step("slide-zoomed")
    finally:
        slide.unlink(missing_ok=True)
    # Annotation: a lesion painted with the brush and a box, saved, reopened after the case is closed.
    open_demo(window, app, "TCGA_CS_4941")
    window.state.display.slice_index = 12
    wait_for(app, window.analyse("glioma", "gradcam"))
    paint_lesion(window)
    step("glioma-brush")
    return taken


def paint_lesion(window) -> None:
    """Paint a stroke across the lesion of TCGA_CS_4941 slice 13 with the brush, as a drag does."""
    annotation = window.state.annotation
    annotation.tool = "brush"
    annotation.brush_radius = 4
    annotation.label = annotation.label or "lesion"
    annotation.begin_stroke(38.0, 40.0)
    for step in range(1, 15):
        annotation.extend_stroke(38.0 + step * 0.8, 40.0 + step * 1.6)
    annotation.end_stroke()
    annotation.tool = "navigate"


def build_demo_slide(path: Path) -> Path:
    """A 6 x 8-cell pyramid of the histopathology bundle's held-back patches: a rectangle of tumour
    inside benign tissue (``engine.tasks.histopathology.mosaic``)."""
    import numpy as np

    from app.settings import Settings
    from engine.models.metadata import read_json, resolve_bundle
    from engine.tasks.histopathology.mosaic import build_mosaic, patch_pool, tumour_layout

    held_back = read_json(resolve_bundle("histopathology"), "configs/metadata.json")["split"]["test"]
    pool = patch_pool(Settings.from_env().demo_data / "histopathology-lc25000", list(held_back))
    rng = np.random.default_rng(3)
    build_mosaic(path, tumour_layout(6, 8, rng), pool, rng)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the views into (ui/screenshots for the README)")
    args = parser.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from app.settings import Settings
    from app.startup import open_workstation
    from ui.main_window import MainWindow
    from ui.theme import apply_reading_room_theme

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="salience-shots-") as home:
        os.environ["SALIENCE_HOME"] = home
        os.environ.setdefault("SALIENCE_READER", "drdemo")
        settings = Settings.from_env()
        app = QApplication.instance() or QApplication(sys.argv[:1])
        apply_reading_room_theme(app)
        window = MainWindow(open_workstation(settings))
        window.resize(*WINDOW_SIZE)
        window.show()
        _pump(app, 1.0)
        shots(window, app, args.out)
        window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
