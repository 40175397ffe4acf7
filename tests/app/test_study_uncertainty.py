"""What a coordinator gets of the AI's frozen uncertainty once a study is closed: the per-case AI
export and the per-reading columns (empty where no AI was shown), the report's "did readers
follow the AI more when it was sure?" section, and an arm that hides the uncertainty from readers."""

from __future__ import annotations

import csv
import json

import pytest
from statsmodels.stats.proportion import proportion_confint

from app.study_exports import AI_CASE_COLUMNS, export_study
from app.study_report import build_study_report
from app.study_report_render import render_html
from db import study_reader
from db.errors import NotAllowed
from db.studies import close_study, design_of, get_study
from db.study_export import export_study_records
from db.study_progress import study_key
from db.study_reading import save_answer, submit_case
from db.study_spec import ArmSpec, QuestionSpec, StudyDesign
from engine.errors import SalienceError
from engine.stats.study_report import NotApplicable
from tests.ui.study_world import CLASSES, build_study_world, every_kind_design, study_uncertainty_record, workstation_of

FLAGGED = (False, False, True, True)  # the AI is sure of cases 0 and 1, flags 2 and 3 uncertain


def _design(**changes) -> StudyDesign:
    values = dict(
        name="reliance", task="glioma", design="fully_crossed",
        arms=(ArmSpec("unaided"), ArmSpec("ai", shows_prediction=True)),
        questions=(QuestionSpec("diagnosis", "Diagnosis", "single_choice", CLASSES),), order_seed=5,
    )
    values.update(changes)
    return StudyDesign(**values)


def _answer(reader: str, case: int, arm: str) -> str:
    """The AI says "abnormal" for every case; the truth is normal for even cases. With the AI, ann
    always follows it; ben follows it where it is sure and answers the truth where it is flagged.
    Unaided, both answer the truth."""
    truth = CLASSES[case % 2]
    if arm == "unaided" or (reader == "ben" and FLAGGED[case]):
        return truth
    return "abnormal"


def _closed_world(tmp_path, design: StudyDesign | None = None):
    records = [study_uncertainty_record(uncertain=flag) for flag in FLAGGED]
    world = build_study_world(tmp_path, design or _design(), uncertainty=records)
    with world.factory() as session:
        index = {row["pseudonym"]: world.sources.index(row["source"])
                 for row in study_key(session, world.coordinator, world.study_id)}
    for name, reader in world.readers.items():
        for entry in workstation_of(world, name).study_worklist(world.study_id).entries:
            with world.factory.begin() as session:
                form = study_reader.case_for_reader(session, reader, entry.assignment_id)
                (question,) = form.questions
                save_answer(session, reader, entry.assignment_id, question.id,
                            _answer(name, index[entry.pseudonym], entry.arm))
                submit_case(session, reader, entry.assignment_id)
    with world.factory.begin() as session:
        close_study(session, world.coordinator, world.study_id)
    return world, index


def _csv_rows(path):
    comment, body = path.read_text(encoding="utf-8").split("\n", 1)
    return comment, list(csv.DictReader(body.splitlines()))


def test_the_ai_export_has_one_row_per_case_with_the_frozen_uncertainty(tmp_path) -> None:
    world, index = _closed_world(tmp_path)
    result = export_study(world.factory, world.coordinator, world.study_id, "ai", tmp_path / "out")
    (path,) = result.files
    comment, rows = _csv_rows(path)
    assert path.name == f"study-{world.study_id}-ai-cases.csv" and "De-identified" in comment
    assert list(rows[0]) == list(AI_CASE_COLUMNS) and len(rows) == 4
    for row in rows:
        k = index[row["case"]]
        made = study_uncertainty_record(uncertain=FLAGGED[k])["case"]
        assert (row["ground_truth"], row["predicted_class"]) == (CLASSES[k % 2], "abnormal")
        assert row["ai_correct"] == str(k % 2 == 1)
        assert (row["uncertainty_method"], row["uncertainty_samples"], row["uncertainty_answer"]) == ("tta", "16", "item 1")
        assert float(row["total_entropy"]) == made["total_entropy"]
        assert float(row["aleatoric_entropy"]) == made["aleatoric_entropy"]
        assert float(row["epistemic_mutual_information"]) == made["epistemic_mutual_information"]
        assert row["flagged_uncertain"] == str(FLAGGED[k]) and row["uncertainty_words"] == made["words"]
    assert "TCGA" not in path.read_text(encoding="utf-8")


def test_each_reading_says_whether_the_ai_it_showed_was_flagged_uncertain_and_null_unaided(tmp_path) -> None:
    world, index = _closed_world(tmp_path)
    with world.factory.begin() as session:
        records = export_study_records(session, world.coordinator, world.study_id)
    assert len(records) == 2 * 4 * 2
    for record in records:
        if record["arm"] == "unaided":
            assert record["shown_ai_uncertain"] is None and record["shown_uncertainty"] is None
        else:
            assert record["shown_ai_uncertain"] is FLAGGED[index[record["case"]]]
            assert record["shown_uncertainty"] is True
    (path,) = export_study(world.factory, world.coordinator, world.study_id, "csv", tmp_path / "csv").files
    _, rows = _csv_rows(path)
    assert {r["shown_ai_uncertain"] for r in rows if r["arm"] == "unaided"} == {""}
    assert {r["shown_ai_uncertain"] for r in rows if r["arm"] == "ai"} == {"True", "False"}


def test_readers_cannot_export_the_uncertainty(tmp_path) -> None:
    world, _ = _closed_world(tmp_path)
    with pytest.raises(SalienceError, match="may not study.export"):
        export_study(world.factory, world.readers["ann"], world.study_id, "ai", tmp_path / "out")


def _wilson(successes: int, trials: int):
    return pytest.approx(proportion_confint(successes, trials, alpha=0.05, method="wilson"), abs=1e-9)


def test_the_report_splits_agreement_and_accuracy_by_the_ai_flag_per_arm_that_shows_it(tmp_path) -> None:
    world, _ = _closed_world(tmp_path)
    report = build_study_report(world.factory, world.coordinator, world.study_id, world.settings.blob_root)
    section = report.ai_reliance
    assert not isinstance(section, NotApplicable), section
    (entry,) = section.conditions  # the unaided arm showed no AI, so it has no row
    assert entry.condition == "ai" and entry.uncertainty_shown is True and entry.result.unmeasured == 0
    sure, unsure = entry.result.sure, entry.result.unsure
    # sure (cases 0 normal, 1 abnormal): all 4 reads agree with the AI; right on case 1 only
    assert (sure.n_cases, sure.n_reads, sure.n_readers) == (2, 4, 2)
    assert sure.agreement.estimate == 1.0 and (sure.agreement.ci_low, sure.agreement.ci_high) == _wilson(4, 4)
    assert sure.accuracy.estimate == 0.5 and (sure.accuracy.ci_low, sure.accuracy.ci_high) == _wilson(2, 4)
    # uncertain (cases 2 normal, 3 abnormal): ann agrees twice, ben once; ann wrong on case 2
    assert (unsure.n_cases, unsure.n_reads) == (2, 4)
    assert unsure.agreement.estimate == 0.75 and (unsure.agreement.ci_low, unsure.agreement.ci_high) == _wilson(3, 4)
    assert unsure.accuracy.estimate == 0.75 and (unsure.accuracy.ci_low, unsure.accuracy.ci_high) == _wilson(3, 4)
    assert sure.ai_accuracy.estimate == unsure.ai_accuracy.estimate == 0.5
    assert "too few cases" in sure.too_few and "too few cases" in unsure.too_few
    page = render_html(report, plots=())
    assert "Did readers follow the AI more when it was sure?" in page and "too few cases to compare" in page


def test_the_report_section_does_not_apply_when_no_uncertainty_was_measured(tmp_path) -> None:
    world = build_study_world(tmp_path, _design(), open_it=True)
    with world.factory.begin() as session:
        close_study(session, world.coordinator, world.study_id)
    report = build_study_report(world.factory, world.coordinator, world.study_id, world.settings.blob_root)
    assert isinstance(report.ai_reliance, NotApplicable)


def _hidden_design() -> StudyDesign:
    return every_kind_design(arms=(ArmSpec("unaided"),
                                   ArmSpec("ai+gradcam", shows_prediction=True, cam_method="gradcam",
                                           show_uncertainty=False)))


def test_an_arm_with_show_uncertainty_false_shows_the_ai_without_its_uncertainty(tmp_path) -> None:
    from ui.study.ai_panel import uncertainty_summary

    world = build_study_world(tmp_path, _hidden_design(), cases=2, uncertainty=study_uncertainty_record(True))
    workstation = workstation_of(world, "ann")
    aided = next(e for e in workstation.study_worklist(world.study_id).entries if e.available and e.arm == "ai+gradcam")
    ai = workstation.study_case_view(aided.assignment_id).ai
    assert ai is not None and ai.predicted_class == "abnormal"
    assert ai.uncertainty is None and ai.uncertainty_hidden and uncertainty_summary(ai) == ""
    with world.factory() as session:
        shown = study_reader.ai_output_for_reader(session, world.readers["ann"], aided.assignment_id)
    assert shown.uncertainty is None and shown.uncertainty_hidden and shown.prediction_id
    with world.factory() as session:  # kept by the design an edit starts from
        assert [a.show_uncertainty for a in design_of(get_study(session, world.study_id)).arms] == [True, False]
    with world.factory() as session:
        unaided = next(e for e in workstation.study_worklist(world.study_id).entries if e.arm == "unaided")
        with pytest.raises(NotAllowed, match="shows no AI output"):
            study_reader.ai_output_for_reader(session, world.readers["ann"], unaided.assignment_id)


def test_a_hidden_uncertainty_is_still_exported_with_the_reading_saying_it_was_not_shown(tmp_path) -> None:
    world, index = _closed_world(tmp_path, _design(arms=(ArmSpec("unaided"),
                                                          ArmSpec("ai", shows_prediction=True, show_uncertainty=False))))
    with world.factory.begin() as session:
        records = export_study_records(session, world.coordinator, world.study_id)
    aided = [r for r in records if r["arm"] == "ai"]
    assert aided and all(r["shown_uncertainty"] is False for r in aided)
    assert all(r["shown_ai_uncertain"] is FLAGGED[index[r["case"]]] for r in aided)
    report = build_study_report(world.factory, world.coordinator, world.study_id, world.settings.blob_root)
    (entry,) = report.ai_reliance.conditions
    assert entry.uncertainty_shown is False and entry.result.unsure.n_reads == 4
    status_arms = json.loads(json.dumps(workstation_of(world, "cora").study_status(world.study_id)["arms"]))
    assert [a["show_uncertainty"] for a in status_arms] == [True, False]


def test_a_study_without_the_field_shows_the_uncertainty_as_before(tmp_path) -> None:
    world = build_study_world(tmp_path, every_kind_design(), cases=2, uncertainty=study_uncertainty_record())
    workstation = workstation_of(world, "ann")
    aided = next(e for e in workstation.study_worklist(world.study_id).entries if e.available and e.arm == "ai+gradcam")
    ai = workstation.study_case_view(aided.assignment_id).ai
    assert not ai.uncertainty_hidden and ai.uncertainty.words == study_uncertainty_record()["case"]["words"]


def test_the_command_line_offers_every_export_format() -> None:
    from app.study_cli_report import EXPORT_CHOICES
    from app.study_exports import EXPORT_FORMATS

    assert EXPORT_CHOICES == EXPORT_FORMATS and "ai" in EXPORT_CHOICES
