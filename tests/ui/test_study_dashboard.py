"""The study dashboard shows the report's tables and plots, says why a section does not apply,
and saves each plot as PNG or SVG."""

from __future__ import annotations

import numpy as np
import pytest

from engine.stats.study_report import study_report
from tests.engine.stats.study_simulation import CASES, READERS, binormal_records, study_facts


@pytest.fixture(scope="module")
def report():
    _, records = binormal_records()
    return study_report(study_facts(), records)


@pytest.fixture
def dashboard(qtbot, report):
    from ui.study_dashboard import StudyDashboard

    widget = StudyDashboard(report)
    qtbot.addWidget(widget)
    widget.resize(1200, 900)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def _rendered(view) -> np.ndarray:
    view.canvas.draw()
    return np.asarray(view.canvas.buffer_rgba())


def test_plots_are_drawn_on_their_canvases(dashboard) -> None:
    """The ROC canvas has a curve per reader (plus the chance line) in each arm, and its pixels
    are not blank; every plot's canvas shows more than one colour."""
    roc = dashboard.plots["roc"]
    assert [len(ax.lines) for ax in roc.canvas.figure.axes] == [READERS + 1, READERS + 1]
    pixels = _rendered(roc)
    assert pixels.shape[2] == 4 and len(np.unique(pixels.reshape(-1, 4), axis=0)) > 50
    for name, view in dashboard.plots.items():
        assert _rendered(view).std() > 10, name


def test_tables_and_not_applicable_sections_are_shown(dashboard) -> None:
    tab_titles = [dashboard.tabs.tabText(i) for i in range(dashboard.tabs.count())]
    assert tab_titles[0] == "Study design" and any(t.endswith("(n/a)") for t in tab_titles)
    performance = dashboard.tables["performance"][0]
    assert performance.rowCount() == READERS * 2 and performance.item(0, 2).text() == str(CASES)
    assert dashboard.notes["ai_effect"].text().startswith("Does not apply: answer changes are measured in sequential designs")
    mrmc = dashboard.tables["mrmc"][0]
    assert [mrmc.item(i, 0).text() for i in range(mrmc.rowCount())] == ["unaided", "ai+gradcam"]


def test_each_plot_saves_as_png_and_svg(dashboard, tmp_path) -> None:
    png = dashboard.export_plot("roc", tmp_path / "roc.png")
    svg = dashboard.export_plot("reader_auc", tmp_path / "auc.svg")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert b"<svg" in svg.read_bytes()[:500] and b"<path" in svg.read_bytes()
    with pytest.raises(ValueError, match=".png or .svg"):
        dashboard.export_plot("roc", tmp_path / "roc.jpg")
