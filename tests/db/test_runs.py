"""Cases, model runs, predictions and explanations; deletion never takes readings with it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from db.cases import get_case, get_or_create_case, list_cases
from db.errors import InvalidInput, NotFound
from db.models import Case, Explanation, Prediction
from db.readings import save_reading
from db.runs import add_explanation, add_prediction, get_or_create_model_run, predictions_for_case

WEIGHTS = "e" * 64
MAP_SHA = "f" * 64


class FakeArray:
    """Anything with ``tolist`` (numpy arrays, torch tensors) is accepted as probabilities."""

    def __init__(self, rows):
        self.rows = rows

    def tolist(self):
        return [list(row) for row in self.rows]


def _prediction(session, case_id, probabilities, **extra):
    run = get_or_create_model_run(session, bundle_name="glioma", version="1.0.0", weights_sha256=WEIGHTS, device="cpu")
    return add_prediction(
        session, case_id=case_id, model_run_id=run.id, probabilities=probabilities,
        class_names=["LGG", "HGG", "normal"], item_axis="slice", **extra,
    )


def test_cases_are_found_again_by_content_hash(factory, seeded) -> None:
    with factory.begin() as session:
        again = get_or_create_case(
            session, content_hash="a" * 64, source="/elsewhere", modality="CT", kind="image", shape=(1, 1, 2, 2), task="x"
        )
        assert (again.id, again.source, again.modality) == (seeded.case, "/data/glioma/case1", "MR")
        assert [c.id for c in list_cases(session, task="glioma")] == [seeded.case, seeded.other_case]
        assert list_cases(session, task="histopathology") == []
        assert get_case(session, seeded.case).shape == [4, 20, 64, 48]
        assert get_case(session, seeded.case).header == {"Manufacturer": "ACME", "SliceThickness": 1.0}
        with pytest.raises(NotFound):
            get_case(session, 12345)
        with pytest.raises(InvalidInput, match="not a sha256"):
            get_or_create_case(session, content_hash="XYZ", source="/x", modality="MR", kind="volume", shape=(1,), task="t")
        with pytest.raises(InvalidInput, match="kind 'movie'"):
            get_or_create_case(session, content_hash="9" * 64, source="/x", modality="US", kind="movie", shape=(1,), task="t")


def test_model_runs_are_shared_by_identical_weights_and_device(factory) -> None:
    with factory.begin() as session:
        key = dict(bundle_name="glioma", version="1.0.0", weights_sha256=WEIGHTS)
        cpu = get_or_create_model_run(session, device="cpu", **key)
        assert get_or_create_model_run(session, device="cpu", **key).id == cpu.id
        assert get_or_create_model_run(session, device="cuda:0", **key).id != cpu.id


def test_prediction_stores_rows_and_defaults_to_the_mean_argmax(factory, seeded) -> None:
    # Slice-wise argmax votes LGG twice, but HGG has the highest mean probability.
    rows = [[0.5, 0.4, 0.1], [0.5, 0.4, 0.1], [0.0, 1.0, 0.0]]
    with factory.begin() as session:
        prediction = _prediction(session, seeded.case, FakeArray(rows), calibrated=True)
    with factory() as session:
        (stored,) = predictions_for_case(session, seeded.case)
    assert (stored.id, stored.predicted_class, stored.calibrated, stored.item_axis) == (prediction.id, "HGG", True, "slice")
    assert stored.probabilities == rows
    assert stored.class_names == ["LGG", "HGG", "normal"]
    assert (stored.model_run.bundle_name, stored.model_run.weights_sha256) == ("glioma", WEIGHTS)


@pytest.mark.parametrize(
    ("probabilities", "message"),
    [
        ([[0.5, 0.5]], "row 0 has 2 values for 3 classes"),
        ([[0.5, 0.5, 0.0], [1.2, -0.2, 0.0]], "row 1 .* leaves \\[0, 1\\]"),
        ([[0.5, float("nan"), 0.5]], "not finite"),
        ([], "non-empty"),
    ],
)
def test_malformed_probabilities_are_refused(factory, seeded, probabilities, message) -> None:
    with factory.begin() as session:
        with pytest.raises(InvalidInput, match=message):
            _prediction(session, seeded.case, probabilities)


def test_explanation_records_map_and_checks_its_class(factory, seeded) -> None:
    with factory.begin() as session:
        prediction = _prediction(session, seeded.case, [[0.2, 0.7, 0.1]])
        explanation = add_explanation(
            session, prediction_id=prediction.id, method="gradcam", target_layer="features.denseblock4",
            class_index=1, map_path="ff/" + "f" * 62 + ".npy", map_sha256=MAP_SHA,
            map_stats={"min": -0.25, "max": 3.5, "mean": 0.125, "std": 0.5}, params={"relu": False},
        )
        with pytest.raises(InvalidInput, match="class_index 3 outside 0..2"):
            add_explanation(
                session, prediction_id=prediction.id, method="gradcam", target_layer="x", class_index=3,
                map_path="p", map_sha256=MAP_SHA, map_stats={"min": 0, "max": 1, "mean": 0.5},
            )
        with pytest.raises(InvalidInput, match="missing \\['mean'\\]"):
            add_explanation(
                session, prediction_id=prediction.id, method="gradcam", target_layer="x", class_index=0,
                map_path="p", map_sha256=MAP_SHA, map_stats={"min": 0, "max": 1},
            )
        with pytest.raises(InvalidInput, match="min <= mean <= max"):
            add_explanation(
                session, prediction_id=prediction.id, method="gradcam", target_layer="x", class_index=0,
                map_path="p", map_sha256=MAP_SHA, map_stats={"min": 0, "max": 1, "mean": 2},
            )
    with factory() as session:
        (stored,) = predictions_for_case(session, seeded.case)[0].explanations
    assert (stored.id, stored.method, stored.class_index) == (explanation.id, "gradcam", 1)
    assert stored.map_stats == {"min": -0.25, "max": 3.5, "mean": 0.125, "std": 0.5}
    assert stored.params == {"relu": False}


def test_deleting_a_case_without_readings_removes_its_results(factory, seeded) -> None:
    with factory.begin() as session:
        prediction = _prediction(session, seeded.other_case, [[0.2, 0.7, 0.1]])
        add_explanation(
            session, prediction_id=prediction.id, method="gradcam", target_layer="x", class_index=0,
            map_path="p", map_sha256=MAP_SHA, map_stats={"min": 0, "max": 1, "mean": 0.5},
        )
    with factory.begin() as session:
        session.execute(sa.delete(Case).where(Case.id == seeded.other_case))
    with factory() as session:
        assert session.scalar(sa.select(sa.func.count(Prediction.id))) == 0
        assert session.scalar(sa.select(sa.func.count(Explanation.id))) == 0


def test_a_case_or_prediction_with_readings_cannot_be_deleted(factory, seeded) -> None:
    with factory.begin() as session:
        prediction = _prediction(session, seeded.case, [[0.2, 0.7, 0.1]])
        save_reading(session, seeded.reader_a, seeded.case, "HGG", 4, prediction_id=prediction.id)
    for table, row in ((Case, seeded.case), (Prediction, prediction.id)):
        with pytest.raises(sa.exc.IntegrityError, match="FOREIGN KEY"):
            with factory.begin() as session:
                session.execute(sa.delete(table).where(table.id == row))
    with factory() as session:
        assert session.get(Case, seeded.case) is not None
        assert session.get(Prediction, prediction.id) is not None


def test_map_checks_keep_the_report_and_its_verdict_and_go_with_their_explanation(factory, seeded) -> None:
    import numpy as np

    from db.runs import add_map_check, map_checks_for

    with factory.begin() as session:
        prediction = _prediction(session, seeded.case, [[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
        explanation = add_explanation(
            session, prediction_id=prediction.id, method="gradcam", target_layer="features", class_index=2,
            map_path="ab/cd.npy", map_sha256=MAP_SHA, map_stats={"min": -1.0, "max": 2.0, "mean": 0.1},
        )
        report = {
            "deletion": {"auc": np.float32(0.125)},
            "pointing_game": {"peak": (np.int64(3), np.int64(4)), "hit": np.bool_(True)},
            "sanity": {"trustworthy": False, "reason": "stays similar"},
        }
        check = add_map_check(session, explanation_id=explanation.id, item_index=1, report=report)
        explanation_id, check_id = explanation.id, check.id
        with pytest.raises(InvalidInput, match="outside 0..1"):
            add_map_check(session, explanation_id=explanation.id, item_index=2, report=report)
        with pytest.raises(InvalidInput, match="lacks sanity.trustworthy"):
            add_map_check(session, explanation_id=explanation.id, item_index=0, report={"deletion": {}})
        with pytest.raises(InvalidInput, match="not plain JSON"):
            add_map_check(session, explanation_id=explanation.id, item_index=0,
                          report={"auc": float("nan"), "sanity": {"trustworthy": True}})
        with pytest.raises(NotFound):
            add_map_check(session, explanation_id=9999, item_index=0, report=report)
    with factory() as session:
        [stored] = map_checks_for(session, explanation_id)
        assert (stored.id, stored.item_index, stored.trustworthy) == (check_id, 1, False)
        assert stored.report["deletion"]["auc"] == 0.125 and stored.report["pointing_game"]["peak"] == [3, 4]
    with factory.begin() as session:
        session.delete(session.get(Explanation, explanation_id))
    with factory() as session:
        assert map_checks_for(session, explanation_id) == []


def test_the_stored_map_range_spans_every_case_of_one_model_method_and_class(factory, seeded) -> None:
    from db.runs import stored_map_range

    def explain(session, case_id, weights, method, k, low, high):
        run = get_or_create_model_run(session, bundle_name="glioma", version="1.0.0", weights_sha256=weights, device="cpu")
        prediction = add_prediction(session, case_id=case_id, model_run_id=run.id, probabilities=[[0.2, 0.3, 0.5]],
                                    class_names=["LGG", "HGG", "normal"], item_axis="slice")
        add_explanation(session, prediction_id=prediction.id, method=method, target_layer="features", class_index=k,
                        map_path=f"{case_id}/{method}/{k}.npy", map_sha256=MAP_SHA,
                        map_stats={"min": low, "max": high, "mean": (low + high) / 2})

    with factory.begin() as session:
        explain(session, seeded.case, WEIGHTS, "gradcam", 1, -0.5, 2.0)
        explain(session, seeded.other_case, WEIGHTS, "gradcam", 1, -0.1, 3.5)
        explain(session, seeded.other_case, WEIGHTS, "gradcam", 0, -9.0, 9.0)  # another class
        explain(session, seeded.other_case, WEIGHTS, "layercam", 1, 0.0, 50.0)  # another method
        explain(session, seeded.other_case, "d" * 64, "gradcam", 1, -7.0, 70.0)  # other weights
    with factory() as session:
        assert stored_map_range(session, weights_sha256=WEIGHTS, method="gradcam", class_index=1) == (-0.5, 3.5)
        assert stored_map_range(session, weights_sha256=WEIGHTS, method="scorecam", class_index=1) is None


def test_explained_cases_are_those_with_every_method_of_one_weights(factory, seeded) -> None:
    """What a cohort run skips: a case counts as done for these weights only when one of its
    predictions has every asked method; another model's maps, or some of the methods, do not."""
    from db.runs import explained_cases

    def explain(session, case_id, weights, methods):
        run = get_or_create_model_run(session, bundle_name="glioma", version="1.0.0", weights_sha256=weights, device="cpu")
        prediction = add_prediction(session, case_id=case_id, model_run_id=run.id, probabilities=[[0.2, 0.3, 0.5]],
                                    class_names=["LGG", "HGG", "normal"], item_axis="slice")
        for method in methods:
            for k in (0, 1):
                add_explanation(session, prediction_id=prediction.id, method=method, target_layer="features",
                                class_index=k, map_path=f"{case_id}/{method}/{k}.npy", map_sha256=MAP_SHA,
                                map_stats={"min": 0.0, "max": 1.0, "mean": 0.5})

    with factory.begin() as session:
        explain(session, seeded.case, WEIGHTS, ["gradcam", "eigencam"])
        explain(session, seeded.other_case, WEIGHTS, ["gradcam"])  # one method only
        explain(session, seeded.other_case, "d" * 64, ["gradcam", "eigencam"])  # other weights
    case = ("/data/glioma/case1", "a" * 64)
    with factory() as session:
        assert explained_cases(session, weights_sha256=WEIGHTS, methods=["gradcam", "eigencam"]) == [case]
        assert explained_cases(session, weights_sha256=WEIGHTS, methods=["eigencam"]) == [case]
        both = explained_cases(session, weights_sha256=WEIGHTS, methods=["gradcam"])
        assert [h for _, h in both] == ["a" * 64, "b" * 64]
        assert len(explained_cases(session, weights_sha256=WEIGHTS, methods=[])) == 2  # predictions only
        assert explained_cases(session, weights_sha256=WEIGHTS, methods=["gradcam", "scorecam"]) == []
        assert explained_cases(session, weights_sha256="c" * 64, methods=[]) == []
        with pytest.raises(InvalidInput, match="not a sha256"):
            explained_cases(session, weights_sha256="xyz", methods=[])
