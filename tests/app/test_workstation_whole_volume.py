"""A 3-D model in the window: one stored prediction for the volume, its verdict, and its map shown on
every slice; the CLI predicts and explains a patient folder with it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.cli import main
from app.settings import Settings
from app.startup import open_workstation
from db import runs
from engine.models.metadata import read_metadata
from engine.progress import NullProgress
from ui.model.display import DisplayModel
from ui.model.overlay import OverlayModel


@pytest.fixture(scope="module")
def held_back(shared_data):
    """A test patient of the shipped grade model (never trained on)."""
    return shared_data / "glioma-lgg" / read_metadata("glioma-grade")["split"]["test"][0]


def test_a_grade_analysis_is_one_prediction_shown_on_every_slice(tmp_path, shared_data, held_back):
    settings = Settings(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'home' / 'salience.db'}",
                        demo_data=shared_data, reader="dr_a")
    workstation = open_workstation(settings)
    assert "glioma-grade" in workstation.bundles("glioma")
    case = workstation.open_path(str(held_back), NullProgress())
    analysis = workstation.analyse(case, "glioma-grade", "gradcam", NullProgress())
    n = case.volume.n_slices
    assert analysis.maps.shape == (2, n, 128, 128)
    assert analysis.probabilities.shape == (n, 2) and np.ptp(analysis.probabilities, axis=0).max() == 0.0
    verdict = analysis.verdict
    assert verdict.label.startswith("Volume verdict") and np.allclose(verdict.probabilities, analysis.probabilities[0])
    assert any("per-slice strip repeats it" in note for note in verdict.notes)
    assert all(0 <= i < n for items in verdict.key_items.values() for i in items)
    with workstation._sessions() as session:
        prediction = runs.predictions_for_case(session, case.case_id)[0]
        assert prediction.item_axis == "volume" and len(prediction.probabilities) == 1
        assert prediction.explanations[0].params["upsampling"] == "trilinear"
    # The viewer's model takes it as any other analysis: a map and the volume's probability on each slice.
    display = DisplayModel()
    display.set_volume(case.volume, "flair")
    overlay = OverlayModel(display)
    overlay.set_analysis(analysis)
    shown_class = int(np.argmax(verdict.probabilities))
    assert overlay.class_index == shown_class
    display.slice_index = n - 1
    shown = overlay.current_probabilities()
    assert shown == pytest.approx(dict(zip(analysis.class_names, map(float, verdict.probabilities))))
    assert overlay.spec().saliency.shape == (128, 128)
    # The map check measures the whole volume's map, whichever slice is shown.
    report = workstation.check_map(case, "glioma-grade", analysis, shown_class, 3, NullProgress())
    assert "whole volume" in report["scope"] and "pointing_game" in report and "sanity" in report


def test_predict_and_explain_a_patient_folder_with_the_grade_model(held_back, tmp_path, capsys):
    assert main(["predict", "--bundle", "glioma-grade", str(held_back)]) == 0
    predicted = json.loads(capsys.readouterr().out)
    assert predicted["item_axis"] == "volume" and predicted["n_items"] == 1
    assert predicted["verdict_class"] in ("WHO grade II", "WHO grade III")
    assert predicted["verdict_rule"] == "one prediction for the whole volume"
    out = tmp_path / "grade.nii.gz"
    assert main(["explain", "--bundle", "glioma-grade", str(held_back), "-o", str(out)]) == 0
    explained = json.loads(capsys.readouterr().out)
    assert explained["class"] == predicted["verdict_class"]
    assert explained["shape"][1:] == [128, 128] and explained["verdict_class"] == predicted["verdict_class"]
    import nibabel as nib

    assert nib.load(str(out)).shape[:2] == (128, 128)
