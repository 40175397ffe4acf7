"""Render the main window over the fake workstation to a PNG, to look at the layout.

Usage: ``QT_QPA_PLATFORM=offscreen python -m tests.ui.snapshot_main_window OUT.png [CASE_DIR]``.
With a glioma case folder the fake serves that real volume, with the FLAIR abnormality mask,
smoothed, standing in for the CAM (a visual check only, not a model output).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
from PySide6.QtWidgets import QApplication

from engine.progress import NullProgress
from tests.ui.fake_workstation import FakeWorkstation, synthetic_maps
from ui.backend import Analysis, OpenedCase


@dataclass
class RealCaseWorkstation(FakeWorkstation):
    """The fake, serving one real case folder; the CAM is the smoothed lesion mask."""

    case_dir: str = ""

    def open_case(self, item, progress) -> OpenedCase:
        from engine.imaging.open import read_image

        return OpenedCase(case_id=1, volume=read_image(self.case_dir, progress), display_channel="flair")

    def analyse(self, case, bundle, method, progress) -> Analysis:
        from scipy.ndimage import gaussian_filter

        mask = case.volume.labels.astype(np.float32)
        lesion = gaussian_filter(mask, sigma=(0.5, 4, 4))
        maps = np.stack([gaussian_filter(1 - mask, sigma=(0.5, 8, 8)) * 0.3, lesion])
        area = mask.reshape(mask.shape[0], -1).mean(axis=1)
        tumour = np.clip(area / max(area.max(), 1e-6) * 0.9 + 0.05, 0, 1)
        probabilities = np.stack([1 - tumour, tumour], axis=1)
        return Analysis(bundle, ("normal", "tumour"), probabilities, method, maps, 7, (11, 12))


def snapshot(out: str, case_dir: str | None = None) -> None:
    from ui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv)
    workstation = RealCaseWorkstation(case_dir=case_dir) if case_dir else FakeWorkstation()
    window = MainWindow(workstation)
    window.resize(1400, 900)
    window.show()
    item = window.worklist.items()[0]
    window.worklist.list.setCurrentRow(0)
    window._show_case(workstation.open_case(item, NullProgress()))
    while window._choices_task.is_running:  # the bundles and methods are listed in a worker
        app.processEvents()
    analysis = workstation.analyse(window.case, "glioma 1.0.0", "gradcam", NullProgress())
    window.state.overlay.set_analysis(analysis)
    if case_dir is None:
        assert analysis.maps.shape == synthetic_maps().shape
    peak = int(np.argmax(analysis.probabilities[:, 1]))
    window.state.display.slice_index = peak
    window.display_bar.tool_actions["point"].trigger()
    _, rows, cols = window.case.volume.shape
    window.state.annotation.add_point(rows * 0.4, cols * 0.6)
    window.reading_form.diagnosis.setCurrentIndex(1)
    window.reading_form.confidence.button(4).click()
    app.processEvents()
    window.grab().save(out)
    window.state.annotation.clear()
    window.reading_form.reset()
    window.close()


if __name__ == "__main__":
    snapshot(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
