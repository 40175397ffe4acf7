"""A focal tumour's slide, analysed in the workstation, read and reopened after a restart: the
verdict names the tumour (not the benign majority) and the overlay shows the tumour's map first,
before and after reopening."""

from __future__ import annotations

import numpy as np
import pytest

from app.settings import Settings
from app.startup import open_workstation
from db.models import Prediction
from engine.analysis.slide_verdict import tile_counts
from engine.models import load_bundle
from engine.progress import NullProgress
from engine.tasks.histopathology.mosaic import BENIGN_CLASS, build_mosaic, patch_pool
from ui.backend import ReadingDraft
from ui.model.overlay import first_class

ACA = 0


@pytest.fixture(scope="module")
def focal_reading(tmp_path_factory, shared_data):
    """A 6 x 8 mosaic of held-back patches, a 2 x 5 rectangle of adenocarcinoma inside benign
    tissue, analysed with Grad-CAM and read by dr_a."""
    home = tmp_path_factory.mktemp("focal-reading")
    settings = Settings(home=home, db_url=f"sqlite:///{home / 'salience.db'}", demo_data=shared_data, reader="dr_a")
    layout = np.full((6, 8), BENIGN_CLASS)
    layout[2:4, 1:6] = ACA
    pool = patch_pool(shared_data / "histopathology-lc25000", load_bundle("histopathology").metadata["split"]["test"])
    mosaic = build_mosaic(home / "focal.tif", layout, pool, np.random.default_rng(5), levels=2)
    workstation = open_workstation(settings)
    case = workstation.open_path(str(mosaic.path), NullProgress())
    try:
        analysis = workstation.analyse(case, "histopathology", "gradcam", NullProgress())
        saved = workstation.save_reading(case, ReadingDraft(workstation.diagnoses(case.task)[0], 4,
                                                            prediction_id=analysis.prediction_id))
    finally:
        case.volume.extras["slide"].close()
    return settings, mosaic, analysis, saved


def test_the_workstation_names_the_focal_tumour_and_shows_its_map_first(focal_reading):
    settings, _, analysis, _ = focal_reading
    verdict = analysis.verdict
    assert verdict.winner == ACA == first_class(analysis)
    assert verdict.label.startswith("Slide: Adenocarcinoma in ") and "tissue tiles (17%)" in verdict.label
    assert int(np.argmax(verdict.probabilities)) == analysis.class_names.index("Benign")  # the shares: mostly benign
    workstation = open_workstation(settings)
    with workstation._sessions() as session:
        prediction = session.get(Prediction, analysis.prediction_id)
        assert prediction.predicted_class == "Adenocarcinoma"
        counts = tile_counts(np.asarray(prediction.probabilities))
    np.testing.assert_allclose(verdict.probabilities, counts / counts.sum(), atol=1e-6)


def test_a_reopened_focal_reading_gives_the_same_verdict(focal_reading):
    settings, mosaic, analysis, saved = focal_reading
    restarted = open_workstation(settings)
    case = restarted.open_path(str(mosaic.path), NullProgress())
    try:
        _, shown = restarted.reopen_reading(case, saved.id, NullProgress())
    finally:
        case.volume.extras["slide"].close()
    assert shown.verdict.label == analysis.verdict.label and shown.verdict.winner == ACA == first_class(shown)
    assert shown.verdict.notes[0] == analysis.verdict.notes[0]  # the mean tile probability, the second figure
    np.testing.assert_allclose(shown.verdict.probabilities, analysis.verdict.probabilities, atol=1e-6)
    np.testing.assert_array_equal(shown.maps, analysis.maps)


def test_a_study_freezes_the_slides_verdict_and_its_uncertainty(focal_reading):
    """A study shows the frozen verdict's class and its map, and the uncertainty judges that
    answer (how often it changes across samples), not the benign majority."""
    from app.study_freeze import analyse_for_study
    from engine.imaging.open import read_image

    _, mosaic, _, _ = focal_reading
    volume = read_image(mosaic.path)
    try:
        frozen = analyse_for_study(volume, load_bundle("histopathology"), ["gradcam"], NullProgress())
    finally:
        volume.extras["slide"].close()
    assert frozen.class_index == ACA and frozen.item_axis == "tile"
    assert frozen.maps["gradcam"][0].shape[0] == 1  # the stitched map of the verdict's class
    case = frozen.uncertainty["case"]
    assert case["answer"] == "verdict" and case["class"] == "Adenocarcinoma"
    counts = tile_counts(frozen.probabilities)
    assert case["probability"] == pytest.approx(counts[ACA] / counts.sum(), abs=1e-6)  # its tile share
    assert frozen.uncertainty["case"]["words"].startswith("Slide answer over ")


def test_a_slide_stored_under_the_mean_rule_says_so_when_reopened(focal_reading):
    """A prediction stored before the verdict rule (its answer the mean tile probability's:
    Benign) reopens with the verdict called again and a note naming the stored answer."""
    from app.stored_analysis import stored_analysis

    settings, _, analysis, _ = focal_reading
    workstation = open_workstation(settings)
    with workstation._sessions.begin() as session:
        prediction = session.get(Prediction, analysis.prediction_id)
        prediction.predicted_class = "Benign"
        shown = stored_analysis(prediction, workstation._blobs)
        prediction.predicted_class = "Adenocarcinoma"  # as it was stored
    assert shown.verdict.winner == ACA
    assert shown.verdict.notes[-1] == ("Stored as Benign by an earlier rule; the verdict above is called again "
                                       "from the stored tiles.")
