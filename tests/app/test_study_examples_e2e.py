"""The two example studies end to end on a fresh SQLite database, as a coordinator and two readers
would run them: ``salience study example`` output created as it is (the real bundles freeze the
AI output once per case), readers assigned, the study opened, every case read through the
workstation the window uses, the study closed and its records exported."""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pytest

from app.cli import main
from app.startup import open_database
from app.settings import Settings
from app.workstation import SalienceWorkstation
from db.accounts import list_accounts
from db.study_export import export_study_records
from engine.progress import NullProgress

PASSWORD = "long password"
ANSWER = {"single_choice": 0, "confidence_1_5": 4, "probability_0_100": 70.0, "helpfulness": 1,
          "pairwise_explanation": "left", "free_text": "B-lines", "multiple_choice": None, "region": None}


def cli(monkeypatch, capsys, *args, stdin=PASSWORD + "\n"):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out) if captured.out.lstrip().startswith(("{", "[")) else captured.out


def read_everything(workstation: SalienceWorkstation, study_id: int) -> list[str]:
    """Read every case of the reader's worklist in order, as the window does: open (pixels and
    AI), answer every question asked, submit (and, in a sequential design, the aided step)."""
    outcomes = []
    worklist = workstation.study_worklist(study_id)
    for entry in worklist.entries:
        opened = workstation.open_study_case(entry.assignment_id, NullProgress())
        assert opened.volume.source == entry.pseudonym and not re.search(r"TCGA|Cov|Pneu|Reg_|/", str(opened.volume.header))
        view = opened.view
        while True:
            form = view.form
            ai = view.ai
            if entry.arm == "unaided" or (form.phases == 2 and form.phase == 1):
                assert ai is None
            else:
                assert ai is not None and len(ai.probabilities) == opened.volume.n_slices
                assert ai.uncertainty.words.startswith(("Uncertain: ", "Not flagged as uncertain: "))  # frozen too
                if ai.map is not None:  # the frozen map fits the image the reader sees
                    assert ai.map.maps.shape[:2] == (1, opened.volume.n_slices) and np.isfinite(ai.map.maps).all()
            for question in form.questions:
                value = ANSWER[question.kind]
                if question.kind == "single_choice":
                    value = question.options[entry.place % len(question.options)]
                if value is not None:
                    workstation.save_study_answer(entry.assignment_id, question.id, value)
            outcome = workstation.submit_study_case(entry.assignment_id)
            if outcome == "submitted":
                break
            view = workstation.study_case_view(entry.assignment_id)  # the aided step opens
        outcomes.append(outcome)
        workstation.leave_study_case(entry.assignment_id)
    return outcomes


@pytest.mark.parametrize("example, arms", [
    ("pocovid", {"unaided", "ai", "ai+gradcam"}),
    ("glioma-sequential", {"ai+gradcam"}),
])
def test_an_example_study_runs_end_to_end(shared_data, tmp_path, monkeypatch, capsys, example, arms):
    monkeypatch.setenv("SALIENCE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SALIENCE_DEMO_DATA", str(shared_data))
    monkeypatch.delenv("SALIENCE_DB_URL", raising=False)
    for name, role in (("cora", "coordinator"), ("ann", "reader"), ("ben", "reader")):
        cli(monkeypatch, capsys, "user", "add", name, "--role", role)
    text = cli(monkeypatch, capsys, "study", "example", example)
    study_file = tmp_path / f"{example}.yaml"
    study_file.write_text(text)
    created = cli(monkeypatch, capsys, "study", "create", str(study_file), "--as", "cora")
    assert created["cases"] == 6 + 3 * (example == "pocovid") and len(created["frozen"]) == 1
    study_id = created["study_id"]
    cli(monkeypatch, capsys, "study", "assign", str(study_id), "--reader", "ann", "ben", "--as", "cora")
    cli(monkeypatch, capsys, "study", "open", str(study_id), "--as", "cora")
    settings = Settings.from_env()
    factory = open_database(settings)
    with factory() as session:
        ids = {a.username: a.id for a in list_accounts(session)}
    orders = {}
    for reader in ("ann", "ben"):
        workstation = SalienceWorkstation(settings, factory, ids[reader])
        orders[reader] = [e.pseudonym for e in workstation.study_worklist(study_id).entries]
        assert set(read_everything(workstation, study_id)) == {"submitted"}
    assert orders["ann"] != orders["ben"] and sorted(orders["ann"]) == sorted(orders["ben"])
    status = cli(monkeypatch, capsys, "study", "status", str(study_id), "--as", "cora")
    assert status["totals"]["submitted"] == status["totals"]["assigned"] == 2 * created["cases"]
    cli(monkeypatch, capsys, "study", "close", str(study_id), "--as", "cora")
    with factory() as session:
        records = export_study_records(session, ids["cora"], study_id)
    assert {r["arm"] for r in records} == arms
    shown = [r for r in records if r["shows_prediction"] and r["phase"] == max(x["phase"] for x in records)]
    assert shown and all(r["shown_prediction_id"] and r["bundle_version"] for r in shown)
    if example == "pocovid":  # the pairwise question showed both frozen maps, sides recorded
        pairwise = [r for r in records if r["question"] == "better_map"]
        assert pairwise and all({r["pairwise_left"], r["pairwise_right"]} == {"gradcam", "eigencam"} for r in pairwise)
    else:  # both answers of the sequential design are kept
        assert {r["phase"] for r in records if r["question"] == "grade"} == {1, 2}
