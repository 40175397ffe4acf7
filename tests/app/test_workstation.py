"""The whole path, for real: open a glioma case, classify, explain, annotate, save, restart."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from app.settings import Settings
from app.startup import open_workstation
from app.store import load_map
from db import blobs, runs
from engine.errors import SalienceError
from engine.progress import NullProgress
from ui.backend import AnnotationDraft, ReadingDraft

CASE = "TCGA_CS_4941_19960909"


@pytest.fixture
def settings(tmp_path, shared_data) -> Settings:
    return Settings(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'home' / 'salience.db'}", demo_data=shared_data, reader="dr_a")


@pytest.fixture(scope="module")
def analysed(tmp_path_factory, shared_data):
    """One analysis shared by the tests below (the model run is the slow part)."""
    home = tmp_path_factory.mktemp("ws")
    settings = Settings(home=home, db_url=f"sqlite:///{home / 'salience.db'}", demo_data=shared_data, reader="dr_a")
    workstation = open_workstation(settings)
    item = next(i for i in workstation.worklist() if i.title == CASE)
    case = workstation.open_case(item, NullProgress())
    analysis = workstation.analyse(case, "glioma", "gradcam", NullProgress())
    return settings, workstation, case, analysis


def test_worklist_lists_the_demo_cases_of_every_task(settings):
    from engine.models.bundle import read_metadata

    workstation = open_workstation(settings)
    items = workstation.worklist()
    by_task = {task: [i for i in items if i.task == task] for task in ("glioma", "lung-ultrasound", "histopathology")}
    assert len(items) == sum(len(v) for v in by_task.values())
    assert len(by_task["glioma"]) == len([p for p in (settings.demo_data / "glioma-lgg").iterdir() if p.is_dir()])
    assert len(by_task["lung-ultrasound"]) == 101 + 26  # every clip and still frame of the data README
    # Histopathology: only patches the shipped model never trained on, 15 per class.
    held_out = set(read_metadata("histopathology")["split"]["test"])
    patches = by_task["histopathology"]
    assert len(patches) == 45 and all(i.title in held_out for i in patches)
    assert all(i.status == "new" for i in items)
    for task in by_task:
        assert task in workstation.bundles(task)


def test_opening_a_case_shows_flair_and_registers_it_once(settings):
    workstation = open_workstation(settings)
    item = next(i for i in workstation.worklist() if i.title == CASE)
    first = workstation.open_case(item, NullProgress())
    again = workstation.open_case(item, NullProgress())
    assert first.display_channel == "flair"
    assert first.volume.array.shape == (3, 23, 128, 128)
    assert first.case_id == again.case_id


def test_analysis_gives_per_slice_probabilities_and_stored_maps(analysed):
    settings, workstation, case, analysis = analysed
    n = case.volume.n_slices
    assert analysis.probabilities.shape == (n, len(analysis.class_names))
    np.testing.assert_allclose(analysis.probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert analysis.maps.shape == (len(analysis.class_names), n, 128, 128)
    # Mask-positive slices look more abnormal to the model than mask-negative ones.
    positive = case.volume.labels.reshape(n, -1).any(axis=1)
    abnormal = analysis.probabilities[:, -1]
    assert abnormal[positive].mean() > abnormal[~positive].mean() + 0.3
    # How sure the model is, per slice and for the case (its likeliest abnormal slice), in words.
    found = analysis.uncertainty
    assert found.label == "test-time augmentation, 16 samples" and found.case_answer.startswith("item ")
    assert found.total.shape == found.item_uncertain.shape == (n,) and len(found.item_words) == n
    np.testing.assert_allclose(found.total, found.aleatoric + found.epistemic, atol=1e-5)
    assert found.words == found.item_words[int(found.case_answer.split()[1])]
    # Each class's map went to the content-addressed store and reads back bit for bit.
    store = blobs.BlobStore(settings.blob_root)
    with workstation._sessions() as session:
        prediction = runs.predictions_for_case(session, case.case_id)[0]
        assert prediction.id == analysis.prediction_id
        stored = sorted(prediction.explanations, key=lambda e: e.class_index)
        assert [e.id for e in stored] == list(analysis.explanation_ids)
        for e in stored:
            np.testing.assert_array_equal(load_map(store, e.map_path, e.map_sha256), analysis.maps[e.class_index])
            assert e.method == "gradcam"


def test_a_reading_with_marks_survives_a_restart(analysed):
    settings, workstation, case, analysis = analysed
    k = int(np.argmax(case.volume.labels.sum(axis=(1, 2))))
    draft = ReadingDraft(
        diagnosis="FLAIR abnormality present",
        confidence=4,
        comment="right parieto-occipital lesion",
        annotations=(
            AnnotationDraft("point", k, ((70.0, 60.0),), "lesion"),
            AnnotationDraft("box", k, ((55.0, 45.0), (90.0, 85.0)), "oedema"),
        ),
        seconds_on_case=42.0,
        prediction_id=analysis.prediction_id,
    )
    saved = workstation.save_reading(case, draft)
    restarted = open_workstation(settings)  # a new engine and session factory over the same file
    reopened = restarted.open_case(next(i for i in restarted.worklist() if i.title == CASE), NullProgress())
    readings = restarted.my_readings(reopened)
    assert [r.id for r in readings] == [saved.id]
    assert readings[0].diagnosis == draft.diagnosis and readings[0].confidence == 4
    assert readings[0].comment == draft.comment
    assert readings[0].annotations == draft.annotations
    assert next(i for i in restarted.worklist() if i.title == CASE).status == "read"


def test_another_reader_never_sees_the_first_readers_reading(analysed):
    settings, workstation, case, _ = analysed
    workstation.save_reading(case, ReadingDraft("No FLAIR abnormality", 2))
    other = open_workstation(dataclasses.replace(settings, reader="dr_b"))
    opened = other.open_case(next(i for i in other.worklist() if i.title == CASE), NullProgress())
    assert other.my_readings(opened) == []
    assert all(i.status == "new" for i in other.worklist())


def test_a_refused_reading_loses_nothing_already_saved(analysed):
    settings, workstation, case, _ = analysed
    workstation.save_reading(case, ReadingDraft("Indeterminate", 2, comment="kept"))  # not left to another test
    before = workstation.my_readings(case)
    assert before and before[0].comment == "kept"
    with pytest.raises(SalienceError):
        workstation.save_reading(case, ReadingDraft("Indeterminate", 7))
    off_image = AnnotationDraft("point", 0, ((500.0, 500.0),), "lesion")
    with pytest.raises(SalienceError, match="point"):
        workstation.save_reading(case, ReadingDraft("Indeterminate", 3, annotations=(off_image,)))
    assert workstation.my_readings(case) == before


def test_checking_a_map_measures_it_against_the_mask_and_stores_the_measures(analysed):
    settings, workstation, case, analysis = analysed
    lesion = int(case.volume.labels.reshape(case.volume.n_slices, -1).sum(axis=1).argmax())
    abnormal = len(analysis.class_names) - 1
    report = workstation.check_map(case, "glioma", analysis, abnormal, lesion, NullProgress())
    assert report["item"] == lesion and report["class"] == "FLAIR abnormality"
    assert report["mask_area_fraction"] > 0 and "pointing_game" in report
    assert report["sanity"]["decided_on"] == "region"  # ranked inside the head, not the background
    with workstation._sessions() as session:
        [check] = runs.map_checks_for(session, analysis.explanation_ids[abnormal])
        assert check.item_index == lesion and check.trustworthy == report["sanity"]["trustworthy"]
        assert check.report["deletion"]["auc"] == pytest.approx(report["deletion"]["auc"])
    with pytest.raises(SalienceError, match="no map for class 5"):
        workstation.check_map(case, "glioma", analysis, 5, lesion, NullProgress())


def test_a_slide_is_analysed_tile_by_tile_with_its_score_and_stitched_maps(settings, tmp_path):
    """A pyramid built from held-out LC25000 patches: the window gets one slide score, the maps on
    the thumbnail it shows, and the database keeps one probability row per tissue tile."""
    from tests.engine.analysis.test_slide_analysis import build_slide

    mosaic = build_slide(tmp_path / "slide.tif", settings.demo_data / "histopathology-lc25000", levels=2)
    workstation = open_workstation(settings)
    case = workstation.open_path(str(mosaic.path), NullProgress())
    assert case.task == "histopathology" and case.volume.kind == "slide"
    analysis = workstation.analyse(case, "histopathology", "gradcam", NullProgress())
    n_classes = len(analysis.class_names)
    assert analysis.maps.shape == (n_classes, 1) + case.volume.shape[1:]
    assert analysis.probabilities.shape == (1, n_classes)
    # Tile probabilities on the same grid: each class is likeliest where its patches lie.
    assert analysis.probability_maps.shape == analysis.maps.shape
    for (row, col), label in mosaic.labels.items():
        cell = analysis.probability_maps[:, 0, row * 224 + 112, col * 224 + 112]
        assert int(np.argmax(cell)) == label, (row, col)
    verdict = analysis.verdict
    # Four cells of each class: each finding is present (4 >= 2 tiles); the verdict names one of them.
    assert verdict is not None and verdict.label.startswith("Slide: ") and (
        f" in 4 of {len(mosaic.cells)} tissue tiles (33%) (also " in verdict.label)
    assert analysis.class_names[verdict.winner] in verdict.label and verdict.winner != analysis.class_names.index("Benign")
    np.testing.assert_allclose(verdict.probabilities, analysis.probabilities[0])
    np.testing.assert_allclose(verdict.probabilities, [1 / 3, 1 / 3, 1 / 3], atol=1e-6)  # the tile shares
    assert verdict.notes[0].startswith("Mean tile probability: ")
    assert analysis.uncertainty.item_words == (analysis.uncertainty.words,)  # the verdict's row is the case's
    with workstation._sessions() as session:
        prediction = runs.predictions_for_case(session, case.case_id)[0]
        assert prediction.item_axis == "tile" and len(prediction.probabilities) == len(mosaic.cells)
        assert prediction.predicted_class == analysis.class_names[verdict.winner]
        assert 0 < prediction.explanations[0].map_stats["finite_fraction"] < 1  # glass between cells has no map
    # The map check of a slide measures the tile the model finds likeliest to show the class.
    aca = analysis.class_names.index("Adenocarcinoma")
    report = workstation.check_map(case, "histopathology", analysis, aca, 0, NullProgress())
    tile = report["tile"]
    assert mosaic.labels[(tile["row0"] // 224, tile["col0"] // 224)] == aca  # an adenocarcinoma cell
    assert 0.0 <= report["deletion"]["auc"] <= 1.0 and "trustworthy" in report["sanity"]
    with workstation._sessions() as session:
        [check] = runs.map_checks_for(session, analysis.explanation_ids[aca])
        rows = runs.predictions_for_case(session, case.case_id)[0].probabilities
        assert max(r[aca] for r in rows) == pytest.approx(rows[check.item_index][aca])  # that tile's row
    case.volume.extras["slide"].close()


def test_a_clip_is_analysed_frame_by_frame_with_a_verdict_and_key_frames(settings):
    """A real lung-ultrasound clip in the window: per-frame probabilities, maps on a grid of at
    most MAP_SIDE over the whole frame, the verdict as the mean frame probability, and key
    frames per class stored with the explanations."""
    from app.workstation import MAP_SIDE

    workstation = open_workstation(settings)
    clips = sorted((settings.demo_data / "lung-ultrasound" / "pocus_videos" / "convex").glob("Reg*"))
    case = workstation.open_path(str(clips[0]), NullProgress())
    assert case.task == "lung-ultrasound" and case.volume.kind == "clip"
    analysis = workstation.analyse(case, "lung-ultrasound", "gradcam", NullProgress())
    frames = case.volume.n_slices
    assert analysis.probabilities.shape == (frames, len(analysis.class_names))
    assert analysis.maps.shape[:2] == (len(analysis.class_names), frames)
    assert max(analysis.maps.shape[2:]) <= MAP_SIDE
    verdict = analysis.verdict
    np.testing.assert_allclose(verdict.probabilities, analysis.probabilities.mean(axis=0), atol=1e-6)
    assert analysis.uncertainty.case_answer == "verdict" and analysis.uncertainty.top_std.shape == (frames,)
    assert set(verdict.key_items) == set(range(len(analysis.class_names)))
    assert all(0 <= i < frames for items in verdict.key_items.values() for i in items)
    with workstation._sessions() as session:
        prediction = runs.predictions_for_case(session, case.case_id)[0]
        assert prediction.item_axis == "frame" and len(prediction.probabilities) == frames
        assert prediction.explanations[0].params["key_frames"]["0"] == list(verdict.key_items[0])
    # The map quality of a frame is measured on the frame grid (the coarse map is stretched first).
    report = workstation.check_map(case, "lung-ultrasound", analysis, 0, verdict.key_items[0][0], NullProgress())
    assert report["item"] == verdict.key_items[0][0] and "pointing_game" not in report


def test_a_grey_picture_of_unknown_modality_is_not_taken_for_histopathology(settings):
    """A breast-ultrasound PNG opened from File > Open: one grey channel, the neutral "image" task,
    every model offered, and a model that cannot read it says why in one line."""
    workstation = open_workstation(settings)
    picture = sorted((settings.demo_data / "breast-ultrasound-busi" / "benign").glob("*).png"))[0]
    case = workstation.open_path(str(picture), NullProgress())
    assert case.volume.channel_names == ("intensity",) and case.volume.modality == "OT"
    assert case.task == "image"
    assert set(workstation.bundles("image")) == {"glioma", "glioma-grade", "lung-ultrasound", "histopathology"}
    assert workstation.bundles("histopathology")[0] == "histopathology"
    with pytest.raises(SalienceError, match="needs"):
        workstation.analyse(case, "histopathology", "gradcam", NullProgress())


def test_a_second_case_learns_the_study_range_of_every_stored_map(analysed):
    """After two cases, each class's study range spans both cases' raw maps: the window's
    'Per study' scope colours them on one scale."""
    settings, workstation, first_case, first = analysed
    item = next(i for i in workstation.worklist() if i.title == "TCGA_HT_7692_19960724")
    second_case = workstation.open_case(item, NullProgress())
    second = workstation.analyse(second_case, "glioma", "gradcam", NullProgress())
    for k, (low, high) in enumerate(second.study_ranges):
        assert low == pytest.approx(min(first.maps[k].min(), second.maps[k].min()))
        assert high == pytest.approx(max(first.maps[k].max(), second.maps[k].max()))
    for k, (low, high) in enumerate(first.study_ranges):  # the first knew only itself
        assert (low, high) == pytest.approx((first.maps[k].min(), first.maps[k].max()))


def test_compare_adds_a_method_to_the_same_prediction_with_no_forward_pass(settings):
    """"Compare with..." explains the shown prediction with a second method: new Explanation rows
    on the SAME Prediction row, computed from the kept capture without running the network. When
    the analysis is no longer in memory it is analysed again, still onto the same row."""
    workstation = open_workstation(settings)
    case = workstation.open_case(next(i for i in workstation.worklist() if i.title == CASE), NullProgress())
    first = workstation.analyse(case, "glioma", "gradcam", NullProgress())
    network = workstation._bundle("glioma").network
    calls = []
    hook = network.register_forward_hook(lambda *_: calls.append(1))
    try:
        compared = workstation.compare(case, first, "layercam", NullProgress())
        assert calls == []
        assert workstation.compare(case, first, "layercam", NullProgress()).explanation_ids == compared.explanation_ids
        workstation._analyses.clear()  # forgotten: the next comparison must run the model again
        again = workstation.compare(case, first, "gradcampp", NullProgress())
        assert len(calls) == 1  # 23 slices, one batch
    finally:
        hook.remove()
    assert compared.method == "layercam" and compared.prediction_id == again.prediction_id == first.prediction_id
    # The same prediction's uncertainty beside each method's maps, also when analysed again without it.
    assert compared.uncertainty.words == again.uncertainty.words == first.uncertainty.words
    assert again.uncertainty.item_words == first.uncertainty.item_words
    np.testing.assert_array_equal(compared.probabilities, first.probabilities)
    assert compared.maps.shape == first.maps.shape and not np.allclose(compared.maps, first.maps)
    store = blobs.BlobStore(settings.blob_root)
    with workstation._sessions() as session:
        [prediction] = runs.predictions_for_case(session, case.case_id)
        by_method = {}
        for e in prediction.explanations:
            by_method.setdefault(e.method, []).append(e)
        assert sorted(by_method) == ["gradcam", "gradcampp", "layercam"]
        assert all(len(rows) == 2 for rows in by_method.values())  # one per class, never twice
        stored = sorted(by_method["layercam"], key=lambda e: e.class_index)
        assert [e.id for e in stored] == list(compared.explanation_ids)
        for e in stored:
            np.testing.assert_array_equal(load_map(store, e.map_path, e.map_sha256), compared.maps[e.class_index])
            assert set(e.map_stats) >= {"min", "max", "mean", "std", "finite_fraction", "p50"}
    # The map check of the shown analysis still measures its own method.
    report = workstation.check_map(case, "glioma", first, 1, 10, NullProgress())
    assert report["method"] == "gradcam"


def test_a_reading_reopens_after_a_restart_with_its_marks_and_the_maps_it_was_made_on(analysed):
    """An ellipse and a point saved with the analysis; after a restart the reading comes back with
    its marks (the ellipse as its outline polygon, in image coordinates) and the very maps and
    probabilities stored then, ready to compare or check; another reader cannot reopen it."""
    from ui.model.geometry import ELLIPSE_VERTICES, polygon_area

    settings, workstation, case, analysis = analysed
    marks = (AnnotationDraft("ellipse", 10, ((50.0, 40.0), (70.0, 80.0)), "lesion"),
             AnnotationDraft("point", 11, ((60.0, 60.0),), "oedema"))
    saved = workstation.save_reading(case, ReadingDraft("FLAIR abnormality present", 3, annotations=marks,
                                                        prediction_id=analysis.prediction_id))
    restarted = open_workstation(settings)
    reopened_case = restarted.open_case(next(i for i in restarted.worklist() if i.title == CASE), NullProgress())
    reading, shown = restarted.reopen_reading(reopened_case, saved.id, NullProgress())
    ellipse, point = reading.annotations
    assert ellipse.kind == "polygon" and len(ellipse.points) == ELLIPSE_VERTICES and ellipse.slice_index == 10
    assert polygon_area(ellipse.points) == pytest.approx(np.pi * 10 * 20, rel=0.02)
    assert point == marks[1] and reading.prediction_id == analysis.prediction_id
    assert shown.prediction_id == analysis.prediction_id and shown.method == analysis.method
    assert shown.class_names == analysis.class_names and shown.calibrated == analysis.calibrated
    assert shown.device == analysis.device != ""  # where the model ran, from its stored model run
    np.testing.assert_allclose(shown.probabilities, analysis.probabilities, atol=1e-6)
    np.testing.assert_array_equal(shown.maps, analysis.maps)
    assert shown.explanation_ids == analysis.explanation_ids
    # The uncertainty comes back as it was shown then: the same words per slice and for the case.
    assert (shown.uncertainty.label, shown.uncertainty.words) == (analysis.uncertainty.label, analysis.uncertainty.words)
    assert shown.uncertainty.item_words == analysis.uncertainty.item_words
    np.testing.assert_array_equal(shown.uncertainty.epistemic, analysis.uncertainty.epistemic)
    with restarted._sessions() as session:  # the checks made of these maps come back with them
        stored_checks = [(k, c.item_index) for k, e in enumerate(shown.explanation_ids)
                         for c in runs.map_checks_for(session, e)]
    assert [(k, item) for k, item, _ in shown.map_checks] == stored_checks
    other = open_workstation(dataclasses.replace(settings, reader="dr_b"))
    with pytest.raises(SalienceError, match="not one of your readings"):
        other.reopen_reading(reopened_case, saved.id, NullProgress())


def test_a_reading_made_without_an_analysis_reopens_without_one(analysed):
    _, workstation, case, _ = analysed
    saved = workstation.save_reading(case, ReadingDraft("No FLAIR abnormality", 2, comment="no model"))
    reading, shown = workstation.reopen_reading(case, saved.id, NullProgress())
    assert shown is None and reading.comment == "no model"


def test_score_cam_says_its_cost_before_it_runs(analysed):
    """Score-CAM on a glioma volume: one forward pass per target-layer channel plus the input,
    per slice and class; a positive time measured on this machine."""
    _, workstation, case, _ = analysed
    cost = workstation.method_cost(case, "glioma", "scorecam", NullProgress())
    model = workstation._bundle("glioma")
    slices, classes = case.volume.n_slices, len(model.class_names)
    assert cost.forward_passes % (slices * classes) == 0 and cost.forward_passes > slices * classes * 2
    assert cost.method == "scorecam" and cost.seconds > 0
