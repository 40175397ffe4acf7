"""A study's life: created with frozen output and pseudonyms, editable until the first answer,
then only extendable without moving anyone's order, read-only once closed; every change audited."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import replace
from datetime import timedelta

import pytest
import sqlalchemy as sa

from db.errors import InvalidInput, NotAllowed, StudyStateError
from db.models import Assignment, AuditEvent, StudyCase
from db.studies import (
    add_study_cases,
    add_study_readers,
    close_study,
    create_study,
    design_of,
    edit_study,
    get_study,
    list_studies,
    open_study,
)
from db.study_reader import case_for_reader, reader_worklist
from db.study_reading import save_answer
from db.study_spec import ArmSpec, QuestionSpec, StudyCaseSpec, design_from_mapping
from tests.db.study_world import NOON, START, build_world, open_new_study, pocovid_design, sequential_design


@pytest.fixture
def world(any_factory):
    return build_world(any_factory, readers=3, cases=6)


def _orders(factory, study_id):
    with factory() as session:
        rows = session.execute(
            sa.select(Assignment.reader_id, Assignment.session_id, Assignment.position, StudyCase.pseudonym, Assignment.arm_id)
            .join(StudyCase, Assignment.study_case_id == StudyCase.id)
            .where(Assignment.study_id == study_id)
        )
        return {(r, s, p): (name, arm) for r, s, p, name, arm in rows}


def _actions(factory, study_id):
    with factory() as session:
        query = sa.select(AuditEvent.action).where(AuditEvent.entity == "studies", AuditEvent.entity_id == study_id)
        return list(session.scalars(query.order_by(AuditEvent.id)))


def test_creating_a_study_draws_pseudonyms_freezes_output_and_assigns_the_design(any_factory, world) -> None:
    with any_factory.begin() as session:
        study = create_study(session, world.coordinator, pocovid_design(), world.cases, world.readers)
        assert (study.status, study.design, study.order_seed, study.created_by.username) == ("draft", "counterbalanced", 11, "carol")
        cases = sorted(study.cases, key=lambda c: c.case_id)
        names = [c.pseudonym for c in cases]
        assert all(re.fullmatch(rf"S{study.id}-C\d{{3}}", n) for n in names) and len(set(names)) == 6
        assert sorted(names) != names or sorted(c.design_index for c in cases) != [c.design_index for c in cases]
        assert [(c.prediction_id, {m.method: m.explanation_id for m in c.maps}) for c in cases] == [
            (spec.prediction_id, dict(spec.explanation_ids)) for spec in world.cases
        ]
        assert {(c.bundle_name, c.bundle_version, c.bundle_sha256) for c in cases} == {("lung-ultrasound", "1.1.0", "e" * 64)}
        assert Counter(a.arm.name for a in study.assignments) == {"unaided": 6, "ai": 6, "ai+gradcam": 6}
        assert design_of(study) == pocovid_design()
        study_id = study.id
    assert _actions(any_factory, study_id) == ["study.created"]


@pytest.mark.parametrize(
    "design,count",
    [("fully_crossed", 3 * 6 * 3), ("counterbalanced", 3 * 6), ("crossover", 3 * 6 * 3), ("sequential", 3 * 6)],
)
def test_each_design_makes_its_number_of_assignments(any_factory, world, design, count) -> None:
    arms = pocovid_design().arms if design != "sequential" else sequential_design().arms
    base = pocovid_design() if design != "sequential" else sequential_design()
    with any_factory.begin() as session:
        study = create_study(session, world.coordinator, replace(base, design=design, arms=arms), world.cases, world.readers)
        assert len(study.assignments) == count
        assert {a.phases for a in study.assignments} == ({2} if design == "sequential" else {1})
        assert len(study.sessions) == (3 if design == "crossover" else 1)


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(design="latin"), "design 'latin' is not one of"),
        (dict(arms=(ArmSpec("unaided", cam_method="gradcam"),)), "a map \\(gradcam\\) is shown only with the prediction"),
        (dict(design="sequential"), "in a sequential design phase 1 is the unaided read"),
        (dict(questions=(QuestionSpec("better", "Which?", "pairwise_explanation", ("gradcam", "eigencam")),)),
         "compares maps, so it can only be asked where the AI is shown \\(not in arm 'unaided'"),
        (dict(questions=(QuestionSpec("dx", "Dx?", "single_choice", ("a",)),)), "two or more distinct options"),
        (dict(questions=(QuestionSpec("dx", "Dx?", "confidence_1_5", arms=("ai",)),)), "arm 'unaided' asks no question"),
        (dict(repeat_fraction=1.5), "repeat_fraction 1.5 is outside 0..1"),
        (dict(washout_days=-1), "washout_days -1 must be a whole number >= 0"),
    ],
)
def test_broken_designs_are_refused_with_one_line(any_factory, world, change, message) -> None:
    with any_factory.begin() as session:
        with pytest.raises(InvalidInput, match=message):
            create_study(session, world.coordinator, replace(pocovid_design(), **change), world.cases, world.readers)


def test_frozen_output_must_belong_to_the_case_and_cover_every_method_shown(any_factory, world) -> None:
    first, second = world.cases[0], world.cases[1]
    wrong = [
        (replace(first, prediction_id=None, explanation_ids={}), "an arm shows the AI, but no frozen prediction"),
        (replace(first, prediction_id=second.prediction_id), f"prediction {second.prediction_id} is of case {second.case_id}"),
        (replace(first, explanation_ids={"gradcam": first.explanation_ids["gradcam"]}), "no frozen map for \\['eigencam'\\]"),
        (replace(first, explanation_ids={**first.explanation_ids, "gradcam": second.explanation_ids["gradcam"]}),
         "explains prediction"),
        (replace(first, explanation_ids={"gradcam": first.explanation_ids["eigencam"], "eigencam": first.explanation_ids["eigencam"]}),
         "is a eigencam map, not gradcam"),
    ]
    for spec, message in [*wrong, (first, "listed twice")]:
        with any_factory() as session:  # rolled back: a refused study leaves nothing
            with pytest.raises(InvalidInput, match=message):
                create_study(session, world.coordinator, pocovid_design(), [spec] if spec is not first else [first, first],
                             world.readers)
    with any_factory() as session:
        with pytest.raises(NotAllowed, match="may not study.create"):
            create_study(session, world.readers[0], pocovid_design(), world.cases, world.readers)


def test_unaided_only_study_needs_no_frozen_output(any_factory, world) -> None:
    design = replace(pocovid_design(), arms=(ArmSpec("unaided"),),
                     questions=(QuestionSpec("dx", "Dx?", "single_choice", ("a", "b")),))
    with any_factory.begin() as session:
        study = create_study(session, world.coordinator, design, [StudyCaseSpec(s.case_id) for s in world.cases], world.readers)
        assert {c.prediction_id for c in study.cases} == {None}


def test_a_study_is_editable_until_its_first_answer_then_only_extendable(any_factory, world) -> None:
    study_id = open_new_study(any_factory, world, pocovid_design(), readers=world.readers[:2])
    with any_factory.begin() as session:
        kept = {c.case_id: c.pseudonym for c in get_study(session, study_id).cases}
        study = edit_study(session, world.coordinator, study_id, design=replace(pocovid_design(), design="fully_crossed"),
                           cases=world.cases[:4])
        assert {c.case_id: c.pseudonym for c in study.cases} == {k: v for k, v in kept.items() if k in {s.case_id for s in world.cases[:4]}}
        assert len(study.assignments) == 2 * 4 * 3
    with any_factory.begin() as session:
        entry = reader_worklist(session, world.readers[0], study_id, now=NOON).entries[0]
        question = get_study(session, study_id).questions[0]
        save_answer(session, world.readers[0], entry.assignment_id, question.id, "healthy", now=NOON)
    before = _orders(any_factory, study_id)
    with any_factory.begin() as session:
        with pytest.raises(StudyStateError, match="has been read since .* it can only be extended"):
            edit_study(session, world.coordinator, study_id, design=pocovid_design())
    with any_factory.begin() as session:
        added = add_study_cases(session, world.coordinator, study_id, world.cases[4:])
        assert len(added) == 2 and not set(added) & set(kept.values()) - {kept[s.case_id] for s in world.cases[4:]}
        assert add_study_readers(session, world.coordinator, study_id, [world.readers[2]]) == 6 * 3
        with pytest.raises(InvalidInput, match="listed twice"):
            add_study_readers(session, world.coordinator, study_id, [world.readers[2]])
    after = _orders(any_factory, study_id)
    assert {key: after[key] for key in before} == before  # nobody's existing order moved
    per_reader = Counter(reader for reader, _, _ in after)
    assert per_reader == {reader: 6 * 3 for reader in world.readers}
    for reader in world.readers[:2]:  # the new cases come after the old ones, for every arm round
        positions = sorted(p for r, _, p in after if r == reader)
        assert positions == list(range(18))
    assert _actions(any_factory, study_id) == ["study.created", "study.opened", "study.edited", "study.cases_added", "study.readers_added"]


def test_opening_a_case_is_already_a_reading_that_freezes_the_design(any_factory, world) -> None:
    study_id = open_new_study(any_factory, world, pocovid_design())
    with any_factory.begin() as session:
        entry = reader_worklist(session, world.readers[1], study_id, now=NOON).entries[0]
        case_for_reader(session, world.readers[1], entry.assignment_id, now=NOON)
    with any_factory.begin() as session:
        with pytest.raises(StudyStateError, match="has been read since 2026-03-02 12:00 UTC"):
            edit_study(session, world.coordinator, study_id, reader_ids=world.readers[:1])


def test_open_dates_the_sessions_and_close_makes_the_study_read_only(any_factory, world) -> None:
    design = replace(pocovid_design(), design="crossover", washout_days=28, repeat_fraction=0.34)
    with any_factory.begin() as session:
        study = create_study(session, world.coordinator, design, world.cases, world.readers)
        study_id = study.id
        assert [s.opens_on for s in study.sessions] == [None] * 4
        with pytest.raises(NotAllowed, match="is not on your list"):
            reader_worklist(session, world.readers[0], study_id)  # a draft is invisible to readers
        opened = open_study(session, world.coordinator, study_id, starts_on=START, now=NOON)
        assert [(s.number, s.opens_on, s.repeat) for s in opened.sessions] == [
            (n, START + timedelta(days=28 * (n - 1)), n == 4) for n in (1, 2, 3, 4)
        ]
        assert sum(c.repeat_read for c in opened.cases) == 2  # round(0.34 * 6)
        with pytest.raises(StudyStateError, match="is open, not a draft"):
            open_study(session, world.coordinator, study_id)
    with any_factory.begin() as session:
        with pytest.raises(NotAllowed, match="may not study.close"):
            close_study(session, world.readers[0], study_id)
        close_study(session, world.coordinator, study_id, now=NOON)
    entry_id = None
    with any_factory.begin() as session:
        for attempt in (
            lambda: close_study(session, world.coordinator, study_id),
            lambda: add_study_readers(session, world.coordinator, study_id, [world.admin]),
            lambda: add_study_cases(session, world.coordinator, study_id, []),
            lambda: edit_study(session, world.coordinator, study_id, design=design),
        ):
            with pytest.raises(StudyStateError, match="is closed: it is read-only"):
                attempt()
        worklist = reader_worklist(session, world.readers[0], study_id, now=NOON)
        assert {e.why_not for e in worklist.entries} == {"the study is closed"}
        entry_id = worklist.entries[0].assignment_id
        with pytest.raises(StudyStateError, match="the study is closed"):
            save_answer(session, world.readers[0], entry_id, get_study(session, study_id).questions[0].id, "healthy", now=NOON)
    assert _actions(any_factory, study_id)[-2:] == ["study.opened", "study.closed"]


def test_open_needs_readers_and_cases(any_factory, world) -> None:
    with any_factory.begin() as session:
        study = create_study(session, world.coordinator, pocovid_design(), world.cases, [])
        with pytest.raises(StudyStateError, match="has 0 readers and 6 cases"):
            open_study(session, world.coordinator, study.id)
        assert [(s.name, s.readers, s.cases, s.status) for s in list_studies(session, world.coordinator)] == [
            ("pocovid", 0, 6, "draft")
        ]
        with pytest.raises(NotAllowed):
            list_studies(session, world.readers[0])


def test_a_study_file_mapping_becomes_a_checked_design() -> None:
    data = {
        "name": "pocovid", "task": "lung-ultrasound", "design": "counterbalanced", "order_seed": 11,
        "arms": [{"name": "unaided"}, {"name": "ai", "shows_prediction": True},
                 {"name": "ai+gradcam", "shows_prediction": True, "cam_method": "gradcam"}],
        "questions": [
            {"key": "diagnosis", "prompt": "Diagnosis?", "kind": "single_choice", "options": ["COVID-19", "pneumonia", "healthy"]},
            {"key": "confidence", "prompt": "How sure are you?", "kind": "confidence_1_5"},
            {"key": "helpfulness", "prompt": "How helpful was the map?", "kind": "helpfulness", "arms": ["ai+gradcam"]},
            {"key": "better_map", "prompt": "Which map explains better?", "kind": "pairwise_explanation",
             "options": ["gradcam", "eigencam"], "required": False, "arms": ["ai", "ai+gradcam"]},
            {"key": "notes", "prompt": "Anything else?", "kind": "free_text", "required": False},
        ],
        "cases": ["handled by the app"],
    }
    assert design_from_mapping(data, ignore=("cases",)) == pocovid_design()
    with pytest.raises(InvalidInput, match="study file: unknown keys \\['cases'\\]"):
        design_from_mapping(data)
    with pytest.raises(InvalidInput, match="study file question 0: unknown keys \\['choices'\\]"):
        design_from_mapping({**data, "questions": [{"key": "x", "choices": []}]}, ignore=("cases",))
    with pytest.raises(InvalidInput, match="study file: missing \\['arms'\\]"):
        design_from_mapping({k: v for k, v in data.items() if k != "arms"}, ignore=("cases",))
