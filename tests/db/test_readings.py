"""Readings: stored with their annotations, validated, durable, audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from db.annotations import NewAnnotation
from db.errors import InvalidInput, NotFound
from db.models import AuditEvent, Reading
from db.readings import readings_for_reader, save_reading
from db.runs import add_prediction, get_or_create_model_run
from db.session import make_engine, make_session_factory

BOX = NewAnnotation("box", 7, ((10.0, 12.5), (30.0, 40.25)), "enhancing tumour")
POINT = NewAnnotation("point", 8, ((5.5, 6.0),), "necrosis")
POLYGON = NewAnnotation("polygon", 7, ((1.0, 1.0), (1.0, 9.0), (8.0, 4.0)), "oedema")


def test_reading_with_annotations_survives_reopening_the_database(db_url, factory, seeded) -> None:
    with factory.begin() as session:
        saved = save_reading(
            session, seeded.reader_a, seeded.case, "grade III", 4, "rim enhancement",
            annotations=[BOX, POINT, POLYGON], seconds_on_case=42.5,
        )
    factory.kw["bind"].dispose()

    engine = make_engine(db_url)
    with make_session_factory(engine)() as session:
        (reading,) = readings_for_reader(session, seeded.reader_a)
        assert (reading.id, reading.diagnosis, reading.confidence, reading.comment) == (
            saved.id, "grade III", 4, "rim enhancement"
        )
        assert reading.seconds_on_case == 42.5
        assert reading.prediction_id is None
        assert reading.first_answer_locked_at is not None
        assert abs(reading.first_answer_locked_at - reading.created_at) < timedelta(seconds=5)
        stored = [(a.kind, a.slice_index, a.geometry, a.coordinate_space, a.label) for a in reading.annotations]
    engine.dispose()
    assert stored == [
        ("box", 7, {"points": [[10.0, 12.5], [30.0, 40.25]]}, "index:slice,row,col", "enhancing tumour"),
        ("point", 8, {"points": [[5.5, 6.0]]}, "index:slice,row,col", "necrosis"),
        ("polygon", 7, {"points": [[1.0, 1.0], [1.0, 9.0], [8.0, 4.0]]}, "index:slice,row,col", "oedema"),
    ]


@pytest.mark.parametrize("confidence", [0, 6])
def test_database_check_rejects_confidence_outside_1_to_5(factory, seeded, confidence) -> None:
    """The CHECK constraint holds even for code that bypasses save_reading."""
    with pytest.raises(IntegrityError, match="ck_readings_confidence_1_to_5"):
        with factory.begin() as session:
            session.add(Reading(reader_id=seeded.reader_a, case_id=seeded.case, diagnosis="x", confidence=confidence))
    with factory() as session:
        assert session.scalar(sa.select(sa.func.count(Reading.id))) == 0


@pytest.mark.parametrize("confidence", [0, 6, True, 3.0])
def test_save_reading_refuses_bad_confidence_before_the_database(factory, seeded, confidence) -> None:
    with factory.begin() as session:
        with pytest.raises(InvalidInput, match="confidence .* must be an integer 1-5"):
            save_reading(session, seeded.reader_a, seeded.case, "grade II", confidence)


@pytest.mark.parametrize(
    ("annotation", "message"),
    [
        (NewAnnotation("circle", 1, ((1.0, 1.0),), "x"), "kind must be one of"),
        (NewAnnotation("point", 1, ((1.0, 1.0), (2.0, 2.0)), "x"), "needs 1 points, got 2"),
        (NewAnnotation("box", 1, ((1.0, 1.0), (1.0, 9.0)), "x"), "enclose no area"),
        (NewAnnotation("polygon", 1, ((1.0, 1.0), (2.0, 2.0)), "x"), "needs at least 3 points"),
        (NewAnnotation("polygon", 1, ((0.0, 0.0), (1.0, 1.0), (2.0, 2.0)), "x"), "enclose no area"),
        (NewAnnotation("point", 20, ((1.0, 1.0),), "x"), "slice 20 outside the case's 20 slices"),
        (NewAnnotation("point", -1, ((1.0, 1.0),), "x"), "must be a non-negative integer"),
        (NewAnnotation("point", 1, ((63.6, 1.0),), "x"), r"off the 64x48 image"),
        (NewAnnotation("point", 1, ((1.0, float("nan")),), "x"), "not finite"),
        (NewAnnotation("point", 1, ((1.0, 2.0, 3.0),), "x"), "not a \\(row, col\\) pair"),
        (NewAnnotation("point", 1, ((1.0, 2.0),), "  "), "label: must be non-empty"),
    ],
)
def test_malformed_annotations_are_refused_and_nothing_is_stored(factory, seeded, annotation, message) -> None:
    with pytest.raises(InvalidInput, match=message):
        with factory.begin() as session:
            save_reading(session, seeded.reader_a, seeded.case, "grade II", 3, annotations=[POINT, annotation])
    with factory() as session:
        assert readings_for_reader(session, seeded.reader_a) == []


def test_annotations_without_the_needed_fields_are_named_in_the_error(factory, seeded) -> None:
    with factory.begin() as session:
        with pytest.raises(InvalidInput, match="annotation 0: a dict has no kind, slice_index, points, label"):
            save_reading(session, seeded.reader_a, seeded.case, "grade II", 3, annotations=[{"kind": "point"}])


def test_points_on_the_image_edge_are_accepted(factory, seeded) -> None:
    edge = NewAnnotation("box", 19, ((-0.5, -0.5), (63.5, 47.5)), "whole slice")
    with factory.begin() as session:
        reading = save_reading(session, seeded.reader_a, seeded.case, "grade II", 2, annotations=[edge])
    assert reading.annotations[0].geometry == {"points": [[-0.5, -0.5], [63.5, 47.5]]}


def test_other_coordinate_spaces_are_stored_as_given(factory, seeded) -> None:
    world = NewAnnotation("point", 3, ((-120.5, 88.0),), "lesion", coordinate_space="world:lps-mm")
    with factory.begin() as session:
        reading = save_reading(session, seeded.reader_a, seeded.case, "grade II", 2, annotations=[world])
    assert (reading.annotations[0].coordinate_space, reading.annotations[0].geometry) == (
        "world:lps-mm", {"points": [[-120.5, 88.0]]}
    )


def test_readings_come_back_newest_first_and_per_case(factory, seeded) -> None:
    with factory.begin() as session:
        first = save_reading(session, seeded.reader_a, seeded.case, "grade II", 2).id
        second = save_reading(session, seeded.reader_a, seeded.other_case, "grade III", 3).id
        third = save_reading(session, seeded.reader_a, seeded.case, "grade IV", 5).id
    with factory() as session:
        assert [r.id for r in readings_for_reader(session, seeded.reader_a)] == [third, second, first]
        assert [r.id for r in readings_for_reader(session, seeded.reader_a, seeded.case)] == [third, first]


def test_saving_a_reading_records_an_audit_event(factory, seeded) -> None:
    with factory.begin() as session:
        reading = save_reading(session, seeded.reader_b, seeded.case, "grade II", 3, annotations=[BOX, POINT])
    with factory() as session:
        (event,) = session.scalars(sa.select(AuditEvent)).all()
    assert (event.actor, event.action, event.entity, event.entity_id) == ("bob", "reading.saved", "readings", reading.id)
    assert event.detail == {"case_id": seeded.case, "prediction_id": None, "annotations": 2}


def test_the_prediction_shown_must_belong_to_the_case(factory, seeded) -> None:
    with factory.begin() as session:
        run = get_or_create_model_run(session, bundle_name="glioma", version="1.0.0", weights_sha256="d" * 64, device="cpu")
        prediction = add_prediction(
            session, case_id=seeded.other_case, model_run_id=run.id,
            probabilities=[[0.2, 0.8]] * 20, class_names=["LGG", "HGG"], item_axis="slice",
        )
    with factory.begin() as session:
        with pytest.raises(InvalidInput, match=f"prediction {prediction.id} is of case {seeded.other_case}"):
            save_reading(session, seeded.reader_a, seeded.case, "HGG", 4, prediction_id=prediction.id)
        shown = save_reading(session, seeded.reader_a, seeded.other_case, "HGG", 4, prediction_id=prediction.id)
    assert shown.prediction_id == prediction.id


def test_unknown_reader_or_case_is_not_found(factory, seeded) -> None:
    with factory.begin() as session:
        with pytest.raises(NotFound, match="reader 999 does not exist"):
            save_reading(session, 999, seeded.case, "grade II", 3)
        with pytest.raises(NotFound, match="case 999 does not exist"):
            save_reading(session, seeded.reader_a, 999, "grade II", 3)
