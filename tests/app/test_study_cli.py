"""``salience user`` and ``salience study``: JSON out, passwords from stdin (never arguments), one
line and exit 2 for bad input, the acting account's role checked, worklists blinded."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import yaml

from app.cli import EXIT_BAD_INPUT, main
from app.study_examples import PER_CLASS, held_out, lung_class
from app.study_files import read_study_file
from tests.ui.study_world import write_case

PASSWORD = "long password"
IDENTIFYING = re.compile(r"TCGA|\.nii|/[A-Za-z_.]|\\|19\d\d|20\d\d_")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh data folder (database, maps, log) for the commands."""
    folder = tmp_path / "home"
    monkeypatch.setenv("SALIENCE_HOME", str(folder))
    monkeypatch.delenv("SALIENCE_DB_URL", raising=False)
    monkeypatch.delenv("SALIENCE_SINGLE_USER", raising=False)
    monkeypatch.setenv("SALIENCE_READER", "nobody")
    return folder


def run(monkeypatch, capsys, *args, stdin=""):
    """``salience ARGS`` in this process with ``stdin``; (exit code, parsed JSON or text, stderr)."""
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(args))
    captured = capsys.readouterr()
    try:
        out = json.loads(captured.out) if captured.out.strip() else None
    except json.JSONDecodeError:
        out = captured.out
    return code, out, captured.err


def accounts(monkeypatch, capsys, readers=("ann", "ben")):
    """A coordinator "cora" and the readers, each with ``PASSWORD`` (no administrator: the command
    line sets them up)."""
    for name, role in (("cora", "coordinator"), *((r, "reader") for r in readers)):
        code, out, err = run(monkeypatch, capsys, "user", "add", name, "--role", role, stdin=PASSWORD + "\n")
        assert (code, out["username"], out["role"], out["has_password"]) == (0, name, role, True), err


def study_file(tmp_path: Path, count: int = 4, **changes) -> Path:
    """An unaided study of ``count`` NIfTI volumes named like TCGA patients (no model needed)."""
    folder = tmp_path / "images"
    folder.mkdir(exist_ok=True)
    data = {
        "name": "cli study", "task": "glioma", "design": "fully_crossed", "order_seed": 7,
        "arms": [{"name": "unaided"}],
        "questions": [{"key": "grade", "prompt": "Grade", "kind": "single_choice", "options": ["II", "III"]}],
        "cases": [{"source": f"images/{write_case(folder, i).name}", "ground_truth": "II"} for i in range(count)],
        "readers": ["ann"],
        **changes,
    }
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_user_add_reads_the_password_from_stdin_and_needs_an_admin_once_one_exists(home, monkeypatch, capsys):
    code, out, _ = run(monkeypatch, capsys, "user", "add", "root", "--role", "admin", stdin="admin password\n")
    assert (code, out["role"]) == (0, "admin")
    code, _, err = run(monkeypatch, capsys, "user", "add", "ann", "--role", "reader", stdin="whatever1\n")
    assert code == EXIT_BAD_INPUT and err.strip() == "salience: error: no account named 'nobody': pass --as with your user name (`salience user add` creates accounts)"
    code, out, err = run(monkeypatch, capsys, "user", "add", "ann", "--role", "reader", "--as", "root",
                         stdin="admin password\nreader password\n")
    assert (code, out["username"], out["has_password"]) == (0, "ann", True), err
    code, _, err = run(monkeypatch, capsys, "user", "add", "ann", "--role", "reader", "--as", "root",
                       stdin="admin password\nreader password\n")
    assert code == EXIT_BAD_INPUT and "account 'ann' already exists" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(monkeypatch, capsys, "user", "add", "eve", "--role", "admin", "--as", "ann",
                       stdin="reader password\nx\n")
    assert code == EXIT_BAD_INPUT and "may not do this (accounts.manage)" in err
    code, out, _ = run(monkeypatch, capsys, "user", "list")
    assert [(a["username"], a["role"]) for a in out] == [("ann", "reader"), ("root", "admin")]
    assert "password" not in json.dumps(out).replace("has_password", "")


def test_no_password_only_in_single_user_mode_and_short_passwords_refused(home, monkeypatch, capsys):
    code, _, err = run(monkeypatch, capsys, "user", "add", "solo", "--role", "coordinator", "--no-password")
    assert code == EXIT_BAD_INPUT and "single-user mode" in err
    code, _, err = run(monkeypatch, capsys, "user", "add", "solo", "--role", "coordinator", stdin="short\n")
    assert code == EXIT_BAD_INPUT and "at least 8 characters" in err
    code, _, err = run(monkeypatch, capsys, "user", "add", "solo", "--role", "coordinator", stdin="")
    assert code == EXIT_BAD_INPUT and "no password on standard input" in err
    monkeypatch.setenv("SALIENCE_SINGLE_USER", "1")
    code, out, _ = run(monkeypatch, capsys, "user", "add", "solo", "--role", "coordinator", "--no-password")
    assert (code, out["has_password"]) == (0, False)
    monkeypatch.setenv("SALIENCE_READER", "solo")  # the OS account's name in single-user mode
    code, out, _ = run(monkeypatch, capsys, "study", "list")
    assert (code, out) == (0, [])
    monkeypatch.delenv("SALIENCE_SINGLE_USER")
    code, _, err = run(monkeypatch, capsys, "study", "list")
    assert code == EXIT_BAD_INPUT and "has no password and single-user mode" in err


def test_a_study_file_goes_through_create_assign_open_status_worklist_close(home, tmp_path, monkeypatch, capsys):
    """Each command prints JSON; two readers' worklists hold the same pseudonyms in different
    orders and nothing path- or patient-like; the status counts without answers."""
    accounts(monkeypatch, capsys)
    path = study_file(tmp_path, count=6)
    code, created, err = run(monkeypatch, capsys, "study", "create", str(path), "--as", "cora", stdin=PASSWORD + "\n")
    assert code == 0, err
    assert (created["status"], created["cases"], created["readers"], created["assignments"], created["frozen"]) == (
        "draft", 6, ["ann"], 6, [])
    study = str(created["study_id"])
    code, out, _ = run(monkeypatch, capsys, "study", "assign", study, "--reader", "ben", "--as", "cora", stdin=PASSWORD + "\n")
    assert (code, out["readers"], out["assignments_added"]) == (0, ["ann", "ben"], 6)
    code, out, _ = run(monkeypatch, capsys, "study", "open", study, "--starts-on", "2026-01-05", "--as", "cora",
                       stdin=PASSWORD + "\n")
    assert (code, out["status"], out["starts_on"]) == (0, "open", "2026-01-05")
    lists = {}
    for reader, acting in (("ann", "cora"), ("ben", "ben")):
        code, out, err = run(monkeypatch, capsys, "study", "worklist", study, "--reader", reader, "--as", acting,
                             stdin=PASSWORD + "\n")
        assert code == 0, err
        assert (out["reader"], out["done"], out["total"], out["resume_at"]) == (reader, 0, 6, 1)
        assert [c["place"] for c in out["cases"]] == list(range(1, 7))
        assert not IDENTIFYING.search(json.dumps(out)), out
        assert not {"token", "assignment_id", "case_id", "source"} & set(out["cases"][0])
        lists[reader] = [c["pseudonym"] for c in out["cases"]]
    assert sorted(lists["ann"]) == sorted(lists["ben"]) and lists["ann"] != lists["ben"]
    code, _, err = run(monkeypatch, capsys, "study", "worklist", study, "--reader", "ann", "--as", "ben", stdin=PASSWORD + "\n")
    assert code == EXIT_BAD_INPUT and "may see only its own worklist" in err
    code, status, _ = run(monkeypatch, capsys, "study", "status", study, "--as", "cora", stdin=PASSWORD + "\n")
    assert code == 0 and [r["reader"] for r in status["readers"]] == ["ann", "ben"]
    assert status["totals"] == {"assigned": 12, "submitted": 0, "in_progress": 0, "not_started": 12}
    code, _, err = run(monkeypatch, capsys, "study", "status", study, "--as", "ann", stdin=PASSWORD + "\n")
    assert code == EXIT_BAD_INPUT and "(reader) may not do this (study.progress)" in err
    code, out, _ = run(monkeypatch, capsys, "study", "close", study, "--as", "cora", stdin=PASSWORD + "\n")
    assert (code, out["status"]) == (0, "closed")
    code, _, err = run(monkeypatch, capsys, "study", "close", study, "--as", "cora", stdin=PASSWORD + "\n")
    assert code == EXIT_BAD_INPUT and "is closed: it is read-only" in err


@pytest.mark.parametrize("change, message", [
    ({"design": "zigzag"}, "design"),
    ({"cases": [{"source": "images/missing.nii.gz"}]}, "missing.nii.gz does not exist"),
    ({"readers": ["ghost"]}, "readers: no account named 'ghost'"),
    ({"questions": [{"key": "x", "prompt": "X", "kind": "confidence_1_5", "options": ["a"]}]}, "takes no options"),
    ({"colour": "blue"}, "unknown keys ['colour']"),
])
def test_a_bad_study_file_is_one_line_naming_the_file(home, tmp_path, monkeypatch, capsys, change, message):
    accounts(monkeypatch, capsys)
    path = study_file(tmp_path, count=2, **change)
    code, out, err = run(monkeypatch, capsys, "study", "create", str(path), "--as", "cora", stdin=PASSWORD + "\n")
    assert code == EXIT_BAD_INPUT and out is None
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"salience: error: {path}: ") and message in lines[0], err


def test_not_yaml_and_wrong_password_are_refused_in_one_line(home, tmp_path, monkeypatch, capsys):
    accounts(monkeypatch, capsys)
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    code, _, err = run(monkeypatch, capsys, "study", "create", str(broken), "--as", "cora", stdin=PASSWORD + "\n")
    assert code == EXIT_BAD_INPUT and err.startswith(f"salience: error: {broken}: not a valid YAML file")
    code, _, err = run(monkeypatch, capsys, "study", "create", str(study_file(tmp_path)), "--as", "cora", stdin="nope\n")
    assert code == EXIT_BAD_INPUT and "account 'cora' could not sign in: wrong password" in err
    code, _, err = run(monkeypatch, capsys, "study", "status", "99", "--as", "cora", stdin=PASSWORD + "\n")
    assert code == EXIT_BAD_INPUT and "study 99" in err and len(err.strip().splitlines()) == 1


def test_examples_are_complete_study_files_over_the_held_out_demo_data(home, shared_data, tmp_path, monkeypatch, capsys):
    """``study example`` prints a file ``study create`` reads as it is: every class (grade), the
    truth from the file name (or data.csv), cases the shipped models never trained on."""
    from engine.models.metadata import read_metadata

    monkeypatch.setenv("SALIENCE_DEMO_DATA", str(shared_data))
    for name, fmt in (("pocovid", "yaml"), ("glioma-sequential", "json")):
        code, text, err = run(monkeypatch, capsys, "study", "example", name, "--format", fmt)
        assert code == 0, err
        path = tmp_path / f"{name}.{fmt}"
        path.write_text(text if isinstance(text, str) else json.dumps(text))
        study = read_study_file(path)
        bundle = "lung-ultrasound" if name == "pocovid" else "glioma"
        held_back = {str(shared_data / ("lung-ultrasound" if name == "pocovid" else "glioma-lgg") / p)
                     for p in held_out(bundle)}
        assert study.bundle == bundle and {c.source for c in study.cases} <= held_back
        truths = [c.ground_truth for c in study.cases]
        assert len(truths) == len(set(truths)) * PER_CLASS
        if name == "pocovid":
            trained = {str(shared_data / "lung-ultrasound" / p) for p in read_metadata(bundle)["split"]["train"]}
            assert trained.isdisjoint(c.source for c in study.cases)
            assert truths == sorted(truths, key=["COVID-19", "Bacterial pneumonia", "Healthy"].index)
            assert all(lung_class(Path(c.source).name) == c.ground_truth for c in study.cases)
            assert {q.kind for q in study.design.questions} >= {"helpfulness", "pairwise_explanation", "free_text"}
        else:
            assert study.design.design == "sequential" and set(truths) == {"grade II", "grade III"}
            grades = {line.split(",")[0]: line.split(",")[9] for line in
                      (shared_data / "glioma-lgg" / "data.csv").read_text().splitlines()[1:]}
            assert all({"1": "grade II", "2": "grade III"}[grades[Path(c.source).name[:12]]] == c.ground_truth
                       for c in study.cases)


def test_a_change_is_committed_before_its_report_is_printed(home, tmp_path, monkeypatch, capsys):
    """``salience study open ID | head -1``: the reader of the output goes away after one line,
    and the study is open all the same (found trying the commands as a coordinator would)."""
    import subprocess
    import sys

    accounts(monkeypatch, capsys)
    code, created, _ = run(monkeypatch, capsys, "study", "create", str(study_file(tmp_path)), "--as", "cora",
                           stdin=PASSWORD + "\n")
    assert code == 0
    command = (f"echo '{PASSWORD}' | {sys.executable} -m app.cli study open {created['study_id']} --as cora "
               "| head -c 1")
    subprocess.run(["bash", "-c", command], check=True, timeout=120, capture_output=True)
    code, listed, _ = run(monkeypatch, capsys, "study", "list", "--as", "cora", stdin=PASSWORD + "\n")
    assert [s["status"] for s in listed] == ["open"]
