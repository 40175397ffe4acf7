"""The uncertainty of an analysis is stored with its Prediction and comes back with it: a reopened
analysis says what was said when it was made, an old prediction says it was not measured, and a
study's frozen AI output carries it only to readers whose arm shows the AI."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.store import store_analysis, store_case, store_map, uncertainty_record
from app.stored_analysis import stored_analysis, uncertainty_shown
from app.study_freeze import analyse_for_study, store_frozen
from app.workstation import uncertainty_view
from db import runs, study_reader
from db.blobs import BlobStore
from db.errors import NotAllowed
from db.migrate import upgrade
from db.models import Prediction
from db.session import make_engine, make_session_factory, sqlite_url
from engine.analysis import analyse_case
from engine.progress import NullProgress
from tests.engine.analysis.test_case_analysis import synthetic_volume, tiny_bundle
from tests.engine.analysis.test_uncertainty import dropout_bundle
from tests.ui.study_world import (
    build_study_world, every_kind_design, sequential_design, study_uncertainty_record, workstation_of,
)

FIELDS = ("label", "words", "uncertain", "case_answer", "case", "item_words", "rule")
ARRAYS = ("item_uncertain", "total", "aleatoric", "epistemic", "top_std")


def _same(shown, made) -> None:
    """Two ``ui.backend.Uncertainty`` say the same, field by field."""
    assert shown is not None and made is not None
    for name in FIELDS:
        assert getattr(shown, name) == getattr(made, name), name
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(shown, name), getattr(made, name), err_msg=name)


def _database(tmp_path: Path):
    url = sqlite_url(tmp_path / "salience.db")
    upgrade(url)
    return url, BlobStore(tmp_path / "blobs")


def _store_and_reopen(tmp_path: Path, volume, analysis):
    """Store as the window does (one transaction), then read back through a NEW engine and session."""
    url, blobs = _database(tmp_path)
    engine = make_engine(url)
    with make_session_factory(engine).begin() as session:
        case_id = store_case(session, volume, volume.source, "glioma")
        store_analysis(session, blobs, analysis, case_id, "cpu")
    engine.dispose()
    engine = make_engine(url)
    try:
        with make_session_factory(engine)() as session:
            [prediction] = runs.predictions_for_case(session, case_id)
            return prediction.uncertainty, stored_analysis(prediction, blobs)
    finally:
        engine.dispose()


def test_a_volume_analysis_reopens_with_the_uncertainty_it_was_made_with(tmp_path):
    """Per slice and for the case, in the same words and numbers as the fresh analysis showed."""
    volume = synthetic_volume(slices=5)
    analysis = analyse_case(volume, tiny_bundle(), ("gradcam",), uncertainty="auto", uncertainty_samples=4)
    found = analysis.uncertainty
    record, reopened = _store_and_reopen(tmp_path, volume, analysis)
    assert record["method"] == "tta" and record["samples"] == 4 and record["augmentations"] == list(found.augmentations)
    assert record["thresholds"] == {"margin": 0.15, "aleatoric_share": 0.75, "epistemic_share": 0.10, "std_limit": 0.10}
    assert record["case"]["answer"] == found.case_from
    assert record["case"]["total_entropy"] == pytest.approx(float(found.case.total[0]))
    assert record["case"]["aleatoric_entropy"] + record["case"]["epistemic_mutual_information"] == pytest.approx(
        record["case"]["total_entropy"])
    np.testing.assert_allclose(record["items"]["epistemic_mutual_information"], found.items.epistemic, atol=1e-6)
    shown = reopened.uncertainty
    _same(shown, uncertainty_view(analysis))
    judgements = found.item_judgements(analysis.probabilities, analysis.class_names)
    assert shown.words == found.judgement.words and shown.label == "test-time augmentation, 4 samples"
    assert shown.item_words == tuple(j.words for j in judgements)
    assert shown.item_uncertain.tolist() == [j.uncertain for j in judgements]


def test_a_clip_reopens_with_its_verdicts_uncertainty_under_mc_dropout(tmp_path):
    clip = replace(synthetic_volume(slices=4), kind="clip", frame_time_ms=40.0)
    analysis = analyse_case(clip, dropout_bundle(), ("gradcam",), uncertainty="auto", uncertainty_samples=4)
    record, reopened = _store_and_reopen(tmp_path, clip, analysis)
    assert record["method"] == "mc_dropout" and record["case"]["answer"] == "verdict"
    shown = reopened.uncertainty
    _same(shown, uncertainty_view(analysis))
    assert shown.case_answer == "verdict" and shown.words == analysis.uncertainty.judgement.words
    assert shown.label == "Monte Carlo dropout, 4 samples" and reopened.verdict is not None


def test_an_analysis_without_uncertainty_stores_none_and_reopens_as_not_measured(tmp_path):
    """A prediction made without it (or stored before revision 0004) has no record; the reopened
    analysis carries None, which the panel shows as "Uncertainty not measured." (tests/ui)."""
    volume = synthetic_volume(slices=3)
    analysis = analyse_case(volume, tiny_bundle(), ("gradcam",))
    assert uncertainty_record(analysis) is None and uncertainty_view(analysis) is None
    record, reopened = _store_and_reopen(tmp_path, volume, analysis)
    assert record is None and reopened is not None and reopened.uncertainty is None


def test_an_old_row_written_without_the_column_reads_as_not_measured(tmp_path):
    """A prediction row inserted the way releases before 0004 wrote it (no uncertainty column
    named), then reopened: no uncertainty, not an error."""
    url, blobs = _database(tmp_path)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    volume = synthetic_volume(slices=2)
    with factory.begin() as session:
        case_id = store_case(session, volume, volume.source, "glioma")
        run = runs.get_or_create_model_run(session, bundle_name="tiny", version="0.0.1", weights_sha256="0" * 64,
                                           device="cpu")
        session.execute(Prediction.__table__.insert().values(
            case_id=case_id, model_run_id=run.id, probabilities=[[0.4, 0.6], [0.7, 0.3]],
            class_names=["normal", "abnormal"], item_axis="slice", calibrated=False, predicted_class="abnormal"))
        [prediction] = runs.predictions_for_case(session, case_id)
        store_map(session, blobs, prediction_id=prediction.id, method="gradcam", target_layer="features",
                  class_index=1, array=np.ones((2, 4, 4), np.float32))
    with factory() as session:
        [prediction] = runs.predictions_for_case(session, case_id)
        reopened = stored_analysis(prediction, blobs)
    engine.dispose()
    assert reopened.uncertainty is None and reopened.probabilities.shape == (2, 2)


def test_uncertainty_shown_judges_a_whole_volume_answer_as_the_case():
    record = {
        "label": "test-time augmentation, 2 samples", "rule": "r",
        "case": {"answer": "item 0", "total_entropy": 0.2, "aleatoric_entropy": 0.15,
                 "epistemic_mutual_information": 0.05, "top_class_std": 0.01, "uncertain": True, "words": "Uncertain."},
        "items": {"total_entropy": [0.2], "aleatoric_entropy": [0.15], "epistemic_mutual_information": [0.05],
                  "top_class_std": [0.01], "uncertain": [True], "words": ["Uncertain, item 0."]},
    }
    assert uncertainty_shown(record, per_item=True).item_words == ("Uncertain, item 0.",)
    as_case = uncertainty_shown(record, per_item=False)
    assert as_case.item_words == ("Uncertain.",) and as_case.total.tolist() == pytest.approx([0.2])
    assert uncertainty_shown(None, per_item=True) is None


def test_freezing_a_study_case_measures_and_stores_its_uncertainty(tmp_path):
    volume = synthetic_volume(slices=4)
    frozen = analyse_for_study(volume, tiny_bundle(), ["gradcam"], NullProgress())
    assert frozen.uncertainty["method"] == "tta" and frozen.uncertainty["samples"] == 16
    assert len(frozen.uncertainty["items"]["words"]) == len(frozen.probabilities) == 4
    url, blobs = _database(tmp_path)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with factory.begin() as session:
        case_id = store_case(session, volume, volume.source, "glioma")
        spec = store_frozen(session, blobs, case_id, frozen, None)
    with factory() as session:
        [prediction] = runs.predictions_for_case(session, case_id)
        assert prediction.id == spec.prediction_id and prediction.uncertainty == frozen.uncertainty
    engine.dispose()


def test_a_reader_sees_the_frozen_uncertainty_only_in_an_arm_that_shows_the_ai(tmp_path):
    record = study_uncertainty_record()
    world = build_study_world(tmp_path, every_kind_design(), cases=2, uncertainty=record)
    workstation = workstation_of(world, "ann")
    entries = [e for e in workstation.study_worklist(world.study_id).entries if e.available]
    by_arm = {e.arm: e for e in entries}
    assert set(by_arm) == {"unaided", "ai+gradcam"}
    aided = workstation.study_case_view(by_arm["ai+gradcam"].assignment_id).ai
    assert aided.uncertainty.words == record["case"]["words"] and aided.uncertainty.label == record["label"]
    assert aided.uncertainty.item_words == tuple(record["items"]["words"])
    unaided = workstation.study_case_view(by_arm["unaided"].assignment_id)
    assert unaided.ai is None  # no prediction, so no uncertainty either
    with world.factory() as session:  # and the data layer hands none out for that arm
        with pytest.raises(NotAllowed, match="shows no AI output"):
            study_reader.ai_output_for_reader(session, world.readers["ann"], by_arm["unaided"].assignment_id)
        shown = study_reader.ai_output_for_reader(session, world.readers["ann"], by_arm["ai+gradcam"].assignment_id)
    assert shown.uncertainty == record


def test_a_sequential_reader_gets_the_uncertainty_only_in_the_aided_step(tmp_path):
    world = build_study_world(tmp_path, sequential_design(), cases=1, readers=("ann",),
                              uncertainty=study_uncertainty_record())
    workstation = workstation_of(world, "ann")
    [entry] = workstation.study_worklist(world.study_id).entries
    view = workstation.study_case_view(entry.assignment_id)
    assert view.form.phase == 1 and view.ai is None
    with world.factory() as session:
        with pytest.raises(NotAllowed, match="aided step"):
            study_reader.ai_output_for_reader(session, world.readers["ann"], entry.assignment_id)


def test_a_study_frozen_without_uncertainty_shows_the_ai_as_not_measured(tmp_path):
    world = build_study_world(tmp_path, every_kind_design(), cases=2)
    workstation = workstation_of(world, "ann")
    aided = next(e for e in workstation.study_worklist(world.study_id).entries
                 if e.available and e.arm == "ai+gradcam")
    ai = workstation.study_case_view(aided.assignment_id).ai
    assert ai is not None and ai.uncertainty is None


def test_the_study_ai_panel_words_its_uncertainty_or_says_it_was_not_measured():
    from ui.backend import StudyAi
    from ui.study.ai_panel import uncertainty_summary

    ai = StudyAi(class_names=("normal", "abnormal"), predicted_class="abnormal",
                 case_probabilities=np.array([0.3, 0.7]), case_rule="highest over 4 slices", probabilities=np.full((4, 2), 0.5, np.float32), item_axis="slice")
    assert uncertainty_summary(ai) == "<i>Uncertainty not measured.</i>"
    record = study_uncertainty_record()
    said = uncertainty_summary(replace(ai, uncertainty=uncertainty_shown(record, per_item=True)))
    assert record["case"]["words"] in said and "(test-time augmentation, 16 samples)" in said
