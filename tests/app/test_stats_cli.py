"""``salience agreement`` and ``salience mrmc`` print the statistics as JSON; bad files end in one line and exit 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import EXIT_BAD_INPUT, main

VAN_DYKE = Path(__file__).resolve().parents[1] / "engine" / "stats" / "data" / "VanDyke.imrmc"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=120)


def _write_csv(path: Path, rows) -> Path:
    path.write_text("reader,case,value\n" + "\n".join(",".join(map(str, row)) for row in rows) + "\n")
    return path


def test_mrmc_prints_the_published_van_dyke_analysis(capsys):
    """The jackknife OR analysis of the Van Dyke file: OR-DBM's F 4.46, ddf 15.26, p 0.0517."""
    assert main(["mrmc", str(VAN_DYKE)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cases"] == {"normal": 69, "abnormal": 45}
    assert round(report["reader_auc"]["1"]["1"]["auc"], 8) == 0.91964573
    assert round(report["reader_averaged_auc"]["2"], 8) == 0.94083736
    rrrc = report["analyses"]["RRRC"]
    assert (round(rrrc["statistic"], 2), round(rrrc["df2"], 2), round(rrrc["p_value"], 4)) == (4.46, 15.26, 0.0517)
    assert round(report["analyses"]["FRRC"]["statistic"], 5) == 5.47595
    assert round(report["analyses"]["RRFC"]["p_value"], 4) == 0.0420
    assert round(rrrc["comparisons"][0]["ci_low"], 5) == -0.08796
    assert len(report["reader_comparisons"]) == 5


def test_mrmc_with_delong_covariances(capsys):
    """MRMCaov's DeLong run: F 4.484854, df2 15.06611."""
    assert main(["mrmc", "--covariance", "delong", str(VAN_DYKE)]) == 0
    rrrc = json.loads(capsys.readouterr().out)["analyses"]["RRRC"]
    assert (round(rrrc["statistic"], 6), round(rrrc["df2"], 5)) == (4.484854, 15.06611)


def test_agreement_of_ordinal_answers(tmp_path, capsys):
    """Three readers, one skipped a case: pairwise kappas (weighted too), Fleiss, AC1, alpha."""
    rows = [(r, c, v) for r, answers in (("ann", "12334"), ("bob", "12344"), ("cy", "1233")) for c, v in enumerate(answers)]
    path = _write_csv(tmp_path / "grades.csv", rows)
    assert main(["agreement", "--level", "ordinal", "--categories", "1,2,3,4,5", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["readers"] == ["ann", "bob", "cy"] and report["cases"] == 5
    assert report["categories"] == [1, 2, 3, 4, 5]
    pairs = {tuple(entry["readers"]): entry for entry in report["cohen_kappa"]}
    assert set(pairs) == {("ann", "bob"), ("ann", "cy"), ("bob", "cy")}
    assert pairs[("ann", "cy")]["unweighted"]["estimate"] == 1.0
    assert {"linear", "quadratic"} <= set(pairs[("ann", "bob")])
    for name in ("percent_agreement", "fleiss_kappa", "gwet_ac1", "krippendorff_alpha"):
        assert report[name]["ci_low"] <= report[name]["estimate"] <= report[name]["ci_high"], name
    assert "icc" not in report


def test_agreement_of_interval_answers_includes_the_icc(tmp_path, capsys):
    rows = [(r, c, v + shift) for r, shift in (("a", 0), ("b", 1), ("c", 0.5)) for c, v in enumerate((3, 8, 1, 6, 9, 4))]
    path = _write_csv(tmp_path / "sizes.csv", rows)
    assert main(["agreement", "--level", "interval", str(path)]) == 0
    report = json.loads(capsys.readouterr().out)
    forms = {form["name"]: form for form in report["icc"]["forms"]}
    assert forms["ICC3"]["estimate"] == pytest.approx(1.0)  # constant shifts: perfect consistency
    assert forms["ICC2"]["estimate"] < 1.0  # but not absolute agreement
    assert "fleiss_kappa" not in report


@pytest.mark.parametrize(
    "command, content, reason",
    [
        ("mrmc", None, "no such file"),
        ("mrmc", "NR: 2\n", "no 'BEGIN DATA:' line"),
        ("agreement", "who,case,value\nann,1,2\n", "the header needs columns reader, case, value (missing reader)"),
        ("agreement", "reader,case,value\nann,1,2\n", "at least two readers"),
        ("agreement", "reader,case,value\nann,1,2\nann,1,3\nbob,1,2\n", "reader ann rated case 1 twice"),
    ],
)
def test_bad_files_exit_2_with_one_line(tmp_path, capsys, command, content, reason):
    path = tmp_path / ("study.imrmc" if command == "mrmc" else "ratings.csv")
    if content is not None:
        path.write_text(content)
    assert main([command, str(path)]) == EXIT_BAD_INPUT
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert reason in lines[0] and str(path) in lines[0]


def test_a_bad_file_from_the_shell_ends_without_a_traceback(tmp_path):
    path = tmp_path / "study.imrmc"
    path.write_text("BEGIN DATA:\n-1,1,truth,0\n1,1,A,x\n")
    result = _run("mrmc", str(path))
    assert result.returncode == EXIT_BAD_INPUT and result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"salience: error: {path}: line 3: score 'x' is not a number"]
