"""Map quality: the measures a reviewer reads next to the map before trusting it.

"Check this map" measures the shown map (class, slice, method) in a worker: faithfulness
(deletion and insertion AUC, average drop and increase in confidence), localisation against the
image's mask when it has one (pointing game, energy inside), and the parameter-randomisation
sanity check. The result stays labelled with what was measured, so moving to another slice
never passes one slice's figures off as another's. While several methods are compared, the
reader picks which method's map to check (its verdict then shows in that view's caption).
"""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QComboBox, QLabel, QPushButton, QVBoxLayout, QWidget

from engine.explain.names import display_name

from ui.model import ViewerState
from ui.model.map_check import map_verdict
from ui.panels.task_progress import TaskProgress

#: Headline colour per verdict level: green only when every measure passed.
LEVEL_COLOURS = {"passes": "#7fd17f", "weak": "#ffcc66", "fails": "#ff8a80"}


class MapQualityPanel(QWidget):
    """A button that asks for the shown map's quality and the report it gets back.

    Signals:
        check_requested(class_index, item): the reader asked to measure the shown map (of the
            method ``method_to_check`` names).
    """

    check_requested = Signal(int, int)

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display, self.overlay = state.display, state.overlay
        self.check_button = QPushButton("Check this map")
        self.check_button.setToolTip(
            "Measure the shown map on this slice: deletion/insertion, confidence drop, "
            "mask localisation and the weight-randomisation sanity check (takes a few seconds)")
        self.method = QComboBox()  # which compared method's map to check; hidden with one method
        self.method.setToolTip("The method whose map is checked")
        self.progress = TaskProgress()
        self.report = QLabel()
        self.report.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.method)
        layout.addWidget(self.check_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.report)
        self._running = False
        self.check_button.clicked.connect(
            lambda: self.check_requested.emit(self.overlay.class_index, self.display.slice_index))
        self.overlay.events.analysis.connect(lambda _analysis: self.clear())
        self.display.events.volume.connect(lambda _volume: self.clear())
        self.overlay.events.compared.connect(self._offer_methods)
        self.clear()

    def method_to_check(self) -> str | None:
        """The method whose map "Check this map" measures: the one picked while comparing, else
        the first analysis's (None without one)."""
        shown = [analysis.method for analysis in self.overlay.shown_analyses]
        picked = self.method.currentData()
        return picked if picked in shown else (shown[0] if shown else None)

    def _offer_methods(self, *_args: object) -> None:
        picked = self.method.currentData()
        shown = [analysis.method for analysis in self.overlay.shown_analyses]
        self.method.blockSignals(True)
        self.method.clear()
        for method in shown:
            self.method.addItem(f"Map of {display_name(method)}", method)
        self.method.setCurrentIndex(shown.index(picked) if picked in shown else 0)
        self.method.blockSignals(False)
        self.method.setVisible(len(shown) > 1)

    def clear(self) -> None:
        self.report.setText("")
        self._offer_methods()
        self._update_button()

    def set_running(self, running: bool) -> None:
        self._running = running
        self._update_button()

    def _update_button(self, *_args: object) -> None:
        self.check_button.setEnabled(self.overlay.analysis is not None and not self._running)

    def show_report(self, report: dict, where: str) -> None:
        """Show a quality report (``engine.analysis.quality`` output) measured at ``where``."""
        self.report.setText(report_html(report, where))


def _row(name: str, value: str, hint: str = "") -> str:
    hint_html = f"<br><small>{escape(hint)}</small>" if hint else ""
    return f"<tr><td>{escape(name)}{hint_html}</td><td align='right'>{value}</td></tr>"


def verdict_html(report: dict) -> str:
    """The headline of a report (``ui.model.map_check.map_verdict``) and the other findings."""
    verdict = map_verdict(report)
    colour = LEVEL_COLOURS[verdict.level]
    more = "".join(f"<br><small>\u2022 {escape(reason)}</small>" for reason in verdict.reasons[1:])
    return f"<span style='color:{colour}'><b>{verdict.symbol} {escape(verdict.headline)}</b></span>{more}"


def report_html(report: dict, where: str) -> str:
    """The reader-facing summary of a quality report: one verdict weighing every measure first,
    then the figures."""
    sanity = report["sanity"]
    verdict = verdict_html(report)
    dependence = ("depends on the model's weights" if sanity["trustworthy"]
                  else "untrustworthy: does not depend on the weights")
    last = sanity["steps"][-1]
    spearman = f"{last['spearman']:.2f} (whole map)"
    if last.get("spearman_in_region") is not None:
        spearman = f"{last['spearman_in_region']:.2f} in the foreground, {last['spearman']:.2f} whole map"
    rows = [
        _row("Deletion AUC", f"{report['deletion']['auc']:.3f}", "lower is better"),
        _row("Insertion AUC", f"{report['insertion']['auc']:.3f}", "higher is better"),
    ]
    if "confidence" in report:
        rows.append(_row("Average drop", f"{report['confidence']['average_drop']:.1f}%", "lower is better"))
    if "pointing_game" in report:
        hit = report["pointing_game"]["hit"]
        rows.append(_row("Pointing game", "hit" if hit else "miss", "map peak inside the image's mask"))
        energy = report["energy_inside_mask"]["fraction"]
        area = report.get("mask_area_fraction", 0.0)
        rows.append(_row("Energy inside mask", f"{100 * energy:.1f}%", f"the mask covers {100 * area:.1f}%"))
    rows.append(_row("Rank correlation after randomising all weights", escape(spearman),
                     f"flagged at \u2265 {sanity['threshold']:.2f}: {dependence}"))
    tile = report.get("tile")
    if tile is not None:  # a slide: measured on its likeliest tile
        where = (f"{where} \u00b7 likeliest tile (level-0 row {tile['row0']}, col {tile['col0']}, "
                 f"P = {100 * tile['probability']:.0f}%)")
    return (f"<div><b>{escape(where)}</b></div><div>{verdict}</div>"
            f"<table width='100%' cellspacing='2'>{''.join(rows)}</table>"
            f"<div><small>{escape(sanity['reason'])}</small></div>")
