"""A reading of a whole slide, saved on SQLite and reopened after a restart: the reader sees the
slide's verdict and the stitched heatmaps (CAM and tile probabilities) it was made on again, in the
window's slide view."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from app.settings import Settings
from app.startup import open_workstation
from engine.progress import NullProgress
from tests.engine.analysis.test_slide_analysis import build_slide
from ui.backend import AnnotationDraft, ReadingDraft


@pytest.fixture(scope="module")
def saved_slide_reading(tmp_path_factory, shared_data):
    """A 2-level pyramid of held-out LC25000 patches analysed with Grad-CAM, and a reading of it
    (one box, made on that analysis) saved by dr_a."""
    home = tmp_path_factory.mktemp("slide-reading")
    settings = Settings(home=home, db_url=f"sqlite:///{home / 'salience.db'}", demo_data=shared_data, reader="dr_a")
    mosaic = build_slide(home / "slide.tif", shared_data / "histopathology-lc25000", levels=2)
    workstation = open_workstation(settings)
    case = workstation.open_path(str(mosaic.path), NullProgress())
    analysis = workstation.analyse(case, "histopathology", "gradcam", NullProgress())
    box = AnnotationDraft("box", 0, ((20.0, 30.0), (200.0, 400.0)), workstation.annotation_labels(case.task)[0])
    saved = workstation.save_reading(case, ReadingDraft(workstation.diagnoses(case.task)[0], 4, annotations=(box,),
                                                        prediction_id=analysis.prediction_id))
    case.volume.extras["slide"].close()
    return settings, mosaic, analysis, saved


def test_a_reopened_slide_reading_brings_back_its_verdict_and_heatmap(saved_slide_reading):
    settings, mosaic, analysis, saved = saved_slide_reading
    restarted = open_workstation(settings)
    case = restarted.open_path(str(mosaic.path), NullProgress())
    try:
        reading, shown = restarted.reopen_reading(case, saved.id, NullProgress())
    finally:
        case.volume.extras["slide"].close()
    assert reading.annotations == saved.annotations and reading.prediction_id == analysis.prediction_id
    assert shown is not None and shown.prediction_id == analysis.prediction_id and shown.method == "gradcam"
    np.testing.assert_array_equal(shown.maps, analysis.maps)  # the stitched maps on the thumbnail grid
    assert shown.maps.shape[1:] == (1,) + case.volume.shape[1:]
    np.testing.assert_allclose(shown.probabilities, analysis.probabilities, atol=1e-6)  # the score as one row
    assert shown.verdict.label == analysis.verdict.label and shown.verdict.label.startswith("Slide: ")
    assert shown.verdict.winner == analysis.verdict.winner and shown.verdict.notes[0] == analysis.verdict.notes[0]
    np.testing.assert_allclose(shown.verdict.probabilities, analysis.verdict.probabilities, atol=1e-6)
    assert shown.explanation_ids == analysis.explanation_ids
    # The tile-probability heatmap is drawn again from the tile places kept with the maps.
    np.testing.assert_allclose(shown.probability_maps, analysis.probability_maps, atol=1e-6)
    assert np.isnan(shown.probability_maps).any() and not np.isnan(shown.probability_maps).all()


def test_the_window_shows_the_reopened_readings_heatmap_over_the_slide(qtbot, saved_slide_reading):
    """In the main window the slide opens in the slide view; reopening the reading sets its
    analysis on the overlay and the heatmap's hottest point is drawn in the hottest colour."""
    from tests.ui.test_slide_view import pixels
    from ui.main_window import MainWindow

    settings, mosaic, analysis, saved = saved_slide_reading
    window = MainWindow(open_workstation(settings))
    window.resize(1400, 900)
    window.show()
    qtbot.waitExposed(window)
    try:
        task = window.open_path(str(mosaic.path))
        with qtbot.waitSignal(task.done, timeout=30000):
            pass
        assert window.showing_slide() and not window.views.isVisible()
        assert window.state.overlay.analysis is None
        with qtbot.waitSignal(window.reopen_reading(saved).done, timeout=30000):
            pass
        overlay = window.state.overlay
        assert overlay.analysis is not None and overlay.analysis.prediction_id == analysis.prediction_id
        assert window.shown_reading.id == saved.id
        overlay.opacity = 1.0
        shown = overlay.analysis.maps[overlay.class_index, 0]
        row, col = np.unravel_index(np.nanargmax(shown), shown.shape)
        view = window.slide_view
        view.set_view(1.0, QPointF(col + 0.5, row + 0.5))  # thumbnail = level 0 here: its pixel at the centre
        qtbot.waitUntil(lambda: view.loader.pending() == 0, timeout=10000)
        qtbot.wait(20)
        centre = pixels(view)[view.height() // 2, view.width() // 2].astype(int)
        hottest = window.state.overlay.spec().lut[255].astype(int)
        assert np.abs(centre - hottest).max() <= 8  # bilinear: the hottest pixel next to warm ones
        overlay.map_source = "probability"  # the tile's probability, on one 0-1 scale
        probability = overlay.analysis.probability_maps[overlay.class_index, 0, row, col]
        tile_colour = window.state.overlay.spec().lut[int(round(probability * 255))].astype(int)
        assert np.abs(pixels(view)[view.height() // 2, view.width() // 2].astype(int) - tile_colour).max() <= 3
        overlay.visible = False
        assert np.abs(pixels(view)[view.height() // 2, view.width() // 2].astype(int) - hottest).max() > 20
    finally:
        window.runner.cancel_all()
        window.runner.wait(5000)
        window.close()
        window.deleteLater()
