"""The map-quality panel: measure the shown map, read the verdict, never mislabel the slice."""

from __future__ import annotations

from tests.ui.test_compare import finish
from ui.panels.map_quality import report_html


def test_check_is_off_until_an_analysis_and_measures_the_shown_class_and_slice(qtbot, opened, workstation):
    panel = opened.quality_panel
    assert not panel.check_button.isEnabled()
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    assert panel.check_button.isEnabled()
    opened.state.display.slice_index = 3
    panel.check_button.click()
    assert not panel.check_button.isEnabled()  # one check at a time
    qtbot.waitUntil(lambda: panel.report.text() != "", timeout=5000)
    assert workstation.check_calls == [("glioma 1.0.0", "gradcam", 1, 3)]
    text = panel.report.text()
    assert "Grad-CAM \u00b7 tumour \u00b7 slice 4" in text  # the reader's 1-based slice number
    assert "depends on the model" in text and "Weak" in text and "0.130" in text  # deletion AUC of slice 3
    assert "0.10 in the foreground, 0.70 whole map" in text
    qtbot.waitUntil(panel.check_button.isEnabled, timeout=5000)


def test_an_untrustworthy_map_is_said_first_and_a_new_analysis_clears_the_report(qtbot, opened, workstation):
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    opened.state.display.slice_index = 0
    opened.quality_panel.check_button.click()
    qtbot.waitUntil(lambda: opened.quality_panel.report.text() != "", timeout=5000)
    assert "untrustworthy" in opened.quality_panel.report.text()
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    assert opened.quality_panel.report.text() == ""


def test_a_failed_check_is_shown_to_the_reader(qtbot, opened, workstation):
    workstation.check_error = ValueError("slides are checked per tile")
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    opened.quality_panel.check_button.click()
    qtbot.waitUntil(lambda: "slides are checked per tile" in opened.last_error, timeout=5000)
    assert opened.quality_panel.report.text() == ""


def test_report_without_a_mask_leaves_localisation_out():
    report = {"deletion": {"auc": 0.2}, "insertion": {"auc": 0.6},
              "sanity": {"trustworthy": False, "threshold": 0.5, "reason": "stays similar",
                         "steps": [{"spearman": 0.9, "spearman_in_region": None}]}}
    html = report_html(report, "gradcam \u00b7 COVID-19 \u00b7 frame 3")
    assert "Pointing game" not in html and "0.90 (whole map)" in html and "untrustworthy" in html


def test_a_slide_report_names_the_tile_it_was_measured_on():
    report = {"deletion": {"auc": 0.2}, "insertion": {"auc": 0.6},
              "tile": {"row0": 224, "col0": 448, "rows": 224, "cols": 224, "probability": 0.93},
              "sanity": {"trustworthy": True, "threshold": 0.5, "reason": "changes",
                         "steps": [{"spearman": 0.1, "spearman_in_region": None}]}}
    html = report_html(report, "gradcam \u00b7 Adenocarcinoma \u00b7 view 1")
    assert "likeliest tile (level-0 row 224, col 448, P = 93%)" in html
