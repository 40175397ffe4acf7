"""The report of a closed study built through the data layer: figures right within their CIs,
HTML and PDF carrying every section, the design and the versions, and ``salience study report``."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import sqlalchemy as sa

from app.cli import EXIT_BAD_INPUT, main
from app.study_report import build_study_report
from app.study_report_render import render_html, write_report
from db.models import AuditEvent
from engine.errors import SalienceError
from engine.stats.study_report import NotApplicable
from tests.app.study_sim import AI_WRONG, CASES, READERS, SECRET, SEPARATION, seconds_for
from tests.engine.stats.study_simulation import true_auc


@pytest.fixture(scope="module")
def report(sim_study):
    return build_study_report(sim_study.factory, sim_study.coordinator, sim_study.study_id, sim_study.home / "maps")


@pytest.fixture(scope="module")
def sequential(sim_study):
    return build_study_report(sim_study.factory, sim_study.coordinator, sim_study.sequential_id, sim_study.home / "maps")


def test_the_arms_true_aucs_lie_within_the_reports_mrmc_intervals(report) -> None:
    """Answers drawn with separations 1 and 2: true AUCs 0.760 and 0.921, difference -0.161."""
    result = report.mrmc.result
    assert result.modalities == ("unaided", "ai+gradcam") and len(result.readers) == READERS
    assert (result.n_normal, result.n_abnormal) == (CASES // 2, CASES // 2)
    for interval in result.rrrc.modalities:
        assert interval.ci_low < true_auc(SEPARATION[interval.modality]) < interval.ci_high
    difference = result.rrrc.comparisons[0]
    assert difference.ci_low < true_auc(1.0) - true_auc(2.0) < difference.ci_high


def test_performance_counts_every_read_and_scores_the_frozen_ai(report) -> None:
    rows = {(r.reader, r.condition): r for r in report.performance.rows}
    assert len(rows) == READERS * 2 + 1
    for (reader, _), row in rows.items():
        if reader != "AI":
            assert row.matrix.sum() == CASES and row.matrix[0].sum() == CASES // 2
    ai = rows["AI", "frozen prediction"]
    assert ai.accuracy.estimate == pytest.approx((CASES - len(AI_WRONG)) / CASES)


def test_grad_cam_agrees_with_readers_and_eigen_cam_does_not(report) -> None:
    """Grad-CAM peaks on the lesion the readers outline, Eigen-CAM in a corner: the map-vs-reader
    IoU of Grad-CAM is far above Eigen-CAM's, and reader-vs-reader IoU is the same for both."""
    entries = {(e.condition, e.method): e.result for e in report.spatial.entries}
    assert set(entries) == {(c, m) for c in ("unaided", "ai+gradcam") for m in ("gradcam", "eigencam")}
    for condition in ("unaided", "ai+gradcam"):
        gradcam, eigencam = entries[condition, "gradcam"], entries[condition, "eigencam"]
        assert gradcam.n_cases == CASES // 2
        assert gradcam.cam_vs_reader.estimate > 0.4 > 0.1 > eigencam.cam_vs_reader.estimate
        assert gradcam.reader_vs_reader.estimate == eigencam.reader_vs_reader.estimate > 0.6
        assert eigencam.difference.ci_high < 0


def test_reading_times_are_the_clock_the_readers_were_given(report) -> None:
    times = {t.arm: t for t in report.reading_times.times}
    for arm in ("unaided", "ai+gradcam"):
        expected = np.repeat([seconds_for(k, arm) for k in range(CASES)], READERS)
        assert times[arm].n == expected.size and times[arm].median == pytest.approx(np.median(expected))


def test_sequential_study_reports_the_answer_changes(sequential) -> None:
    """Reader 0 first answers the truth, reader 1 the opposite; both then take the AI's answer,
    which is wrong on case 3 of the six."""
    ((arm, effect),) = sequential.ai_effect.arms
    assert arm == "ai+gradcam" and effect.n_reads == 12
    assert effect.changed.estimate == pytest.approx(6 / 12)
    assert (effect.toward_right_ai.n, effect.toward_right_ai.estimate) == (5, 1.0)
    assert (effect.toward_wrong_ai.n, effect.toward_wrong_ai.estimate) == (1, 1.0)
    assert effect.accuracy_first.estimate == 0.5 and effect.accuracy_final.estimate == pytest.approx(10 / 12)
    assert (effect.accuracy_first_ai_wrong.estimate, effect.accuracy_final_ai_wrong.estimate) == (0.5, 0.0)
    assert isinstance(sequential.roc, NotApplicable) and "probability" in sequential.roc.reason


def test_html_report_has_every_section_design_versions_and_embedded_plots(report) -> None:
    page = render_html(report)
    for key, _, _ in report.sections():
        assert f'<section id="{key}">' in page
    assert '<section id="design">' in page and "fully crossed" in page
    assert "glioma-sim" in page and "2.0.1" in page and "c" * 64 in page and "Salience " in page
    assert "Does not apply: answer changes are measured in sequential designs" in page
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) >= 10 and all(len(image) > 2000 for image in images)
    assert SECRET not in page and "sources" not in page
    assert page.count("<svg") == 0 and render_html(report, "svg").count("<svg") == len(images)


def test_pdf_report_has_a_page_per_plot_and_text_pages(report, tmp_path) -> None:
    path = write_report(report, tmp_path / "report.pdf")
    data = path.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    pages = len(re.findall(rb"/Type\s*/Page\b", data))
    counts = [int(n) for n in re.findall(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)", data)]
    assert counts == [pages] and pages >= 10 + 11  # the plots, and at least a text page per section


def test_a_report_to_an_unknown_suffix_or_missing_folder_is_one_line(report, tmp_path) -> None:
    with pytest.raises(SalienceError, match=r"\.html or \.pdf"):
        write_report(report, tmp_path / "report.docx")
    with pytest.raises(SalienceError, match="does not exist"):
        write_report(report, tmp_path / "nowhere" / "report.html")


def test_cli_writes_the_report_and_audits_it(sim_env, tmp_path, capsys) -> None:
    output = tmp_path / "report.html"
    assert main(["study", "report", str(sim_env.study_id), "-o", str(output), "--as", "carol"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["sections"]["mrmc"] == "applies"
    assert printed["sections"]["ai_effect"].startswith("does not apply: answer changes")
    assert output.read_text().startswith("<!doctype html>")
    with sim_env.factory() as session:
        actions = session.scalars(sa.select(AuditEvent.action).where(AuditEvent.entity_id == sim_env.study_id,
                                                                     AuditEvent.entity == "studies")).all()
    assert "study.report_written" in actions and "study.exported" in actions


def test_cli_refuses_a_reader_and_an_unknown_study_in_one_line(sim_env, tmp_path, capsys) -> None:
    output = tmp_path / "report.html"
    assert main(["study", "report", str(sim_env.study_id), "-o", str(output), "--as", "r0"]) == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "may not" in error and not output.exists()
    assert main(["study", "report", "999", "-o", str(output), "--as", "carol"]) == EXIT_BAD_INPUT
    assert "999" in capsys.readouterr().err
    assert main(["study", "report", str(sim_env.study_id), "-o", str(output), "--as", "nobody"]) == EXIT_BAD_INPUT
    assert "no account named 'nobody'" in capsys.readouterr().err


def test_report_commands_sign_in_by_the_study_commands_rule(sim_env, monkeypatch):
    """An account without a password acts only in single-user mode, as for every study command
    (the report's own sign-in once let it act regardless)."""
    import pytest as _pytest

    from app.settings import Settings
    from app.study_cli_report import signed_in
    from engine.errors import SalienceError

    monkeypatch.setenv("SALIENCE_SINGLE_USER", "0")
    with _pytest.raises(SalienceError, match="single-user mode"):
        signed_in(Settings.from_env(), "carol")
    monkeypatch.setenv("SALIENCE_SINGLE_USER", "1")
    factory, account_id = signed_in(Settings.from_env(), "carol")
    assert account_id > 0
