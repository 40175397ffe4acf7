"""Run a model: bundle and CAM method pickers, Analyse, progress, and what the model said.

The prediction shows, top-down: the model and method (by the names their papers gave them),
whether the probabilities are calibrated, a clip's or slide's verdict naming the winning class,
the key frames of that class, this slice's probabilities, and the quality verdict of the map on
screen (a warning when it failed its check). Up to three more CAM methods can be compared side
by side (one at a time here, the common four at once from the Analysis menu); a perturbation
method's cost is said before it starts.
"""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget,
)

from engine.explain.names import PERTURBATION_NAMES, display_name
from ui.backend import MethodCost
from ui.model import MAX_METHODS, ViewerState
from ui.model.map_check import map_verdict
from ui.panels.probability_table import ProbabilityTable, percent
from ui.panels.task_progress import TaskProgress, duration_text

#: A method estimated to take longer than this asks before it starts.
CONFIRM_SECONDS = 30.0
#: What the panel says of an analysis whose uncertainty was not measured.
NOT_MEASURED = "Uncertainty not measured."
_LEVEL_COLOURS = {"passes": "#7fd17f", "weak": "#ffcc66", "fails": "#ff8a80"}


class AnalysisPanel(QWidget):
    """Asks for an analysis and shows what the model said about the case and the slice.

    Signals:
        analyse_requested(bundle, method): the reader pressed Analyse (method identifier).
        compare_requested(method): the reader asked to add another CAM method (same bundle) to
            the methods shown. "Close comparison" writes to the overlay model directly.
        cost_requested(bundle, method): a slow (perturbation) method was picked: its cost is
            wanted before it runs (answered by ``show_cost``).
    """

    analyse_requested = Signal(str, str)
    compare_requested = Signal(str)
    cost_requested = Signal(str, str)

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display, self.overlay = state.display, state.overlay
        self.costs: dict[str, MethodCost] = {}
        self.bundle = QComboBox()
        self.method = QComboBox()
        self.analyse_button = QPushButton("Analyse")
        self.analyse_button.setToolTip("Run the model and the CAM method on every slice")
        self.method_cost = _small_label()
        self.progress = TaskProgress()
        self.compare_method = QComboBox()
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Add a CAM method with the same model beside the ones shown "
                                       f"(up to {MAX_METHODS} at once; first method at the top left)")
        self.compare_cost = _small_label()
        self.close_compare_button = QPushButton("Close comparison")
        self.header = _wrapping_label()
        self.verdict = _wrapping_label()
        self.verdict_table = ProbabilityTable()
        self.key_frames = _wrapping_label()
        self.key_frames.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.key_frames.linkActivated.connect(self._jump_to)
        self.notes = _small_label()
        self.item_title = QLabel()
        self.item_table = ProbabilityTable()
        self.map_check = _wrapping_label()
        self.uncertainty = _small_label()  # how sure the model is, in words (the case's, or the shown item's)
        form = QFormLayout()
        form.addRow("Model", self.bundle)
        form.addRow("CAM method", self.method)
        compare_row = QHBoxLayout()
        compare_row.addWidget(self.compare_method, 1)
        compare_row.addWidget(self.compare_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.method_cost)
        layout.addWidget(self.analyse_button)
        layout.addWidget(QLabel("Compare with\u2026"))
        layout.addLayout(compare_row)
        layout.addWidget(self.compare_cost)
        layout.addWidget(self.close_compare_button)
        layout.addWidget(self.progress)
        for widget in (self.header, self.verdict, self.verdict_table, self.key_frames, self.notes,
                       self.item_title, self.item_table, self.uncertainty, self.map_check):
            layout.addWidget(widget)
        self.analyse_button.clicked.connect(
            lambda: self.analyse_requested.emit(self.bundle.currentText(), self.method.currentData() or ""))
        self.compare_button.clicked.connect(
            lambda: self.compare_requested.emit(self.compare_method.currentData() or ""))
        self.close_compare_button.clicked.connect(lambda: self.overlay.set_compare_analysis(None))
        self.method.currentIndexChanged.connect(self._method_picked)
        self.compare_method.currentIndexChanged.connect(self._method_picked)
        self.bundle.currentIndexChanged.connect(self._bundle_picked)
        overlay, display = self.overlay.events, self.display.events
        for signal in (overlay.analysis, overlay.compared, overlay.class_index, overlay.map_checks,
                       display.slice_index, display.volume):
            signal.connect(self._show_prediction)
        overlay.analysis.connect(self._on_analysis)
        overlay.compared.connect(self._on_analysis)
        self.set_case_open(False)
        self._show_prediction()

    # -- choices -----------------------------------------------------------------------------
    def set_choices(self, bundles: list[str], methods: list[str]) -> None:
        """Offer the open case's bundles (its own task's first) and the CAM methods.

        The first bundle is picked, whatever was picked for the previous case: a model of another
        task cannot read this image. The CAM method picked stays where still offered. Methods
        are listed by their papers' names ("Grad-CAM++"); the identifier is the item's data.
        """
        self.bundle.setPlaceholderText("No model installed for this task")
        self.method.setPlaceholderText("No CAM method available")
        self.compare_method.setPlaceholderText("No other CAM method")
        self.costs.clear()
        for box in (self.bundle, self.method, self.compare_method):
            box.blockSignals(True)
        self.bundle.clear()
        self.bundle.addItems(bundles)
        self.bundle.setCurrentIndex(0 if bundles else -1)
        for box in (self.method, self.compare_method):
            current = box.currentData()
            box.clear()
            for name in methods:
                box.addItem(display_name(name), name)
            index = box.findData(current) if current in methods else 0
            box.setCurrentIndex(index if methods else -1)  # with a placeholder set, Qt would leave none picked
        for box in (self.bundle, self.method, self.compare_method):
            box.blockSignals(False)
        self._method_picked()

    def wait_for_choices(self) -> None:
        """Empty the pickers until ``set_choices`` offers the open case's bundles and methods."""
        for box in (self.bundle, self.method, self.compare_method):
            box.clear()
            box.setPlaceholderText("Listing models\u2026")
        self.costs.clear()
        self._update_button()

    def set_case_open(self, is_open: bool) -> None:
        self._case_open = is_open
        self._update_button()

    def set_running(self, running: bool) -> None:
        self._running = running
        self._update_button()

    def show_cost(self, cost: MethodCost) -> None:
        """Say what ``cost.method`` will take wherever it is picked."""
        self.costs[cost.method] = cost
        self._show_costs()

    def cost_of(self, method: str) -> MethodCost | None:
        """The estimate shown for ``method``, if one arrived."""
        return self.costs.get(method)

    def _bundle_picked(self, *_args: object) -> None:
        self.costs.clear()
        self._method_picked()

    def _method_picked(self, *_args: object) -> None:
        bundle = self.bundle.currentText()
        for box in (self.method, self.compare_method):
            method = box.currentData()
            if bundle and method in PERTURBATION_NAMES and method not in self.costs:
                self.cost_requested.emit(bundle, method)
        self._show_costs()
        self._update_button()

    def _show_costs(self) -> None:
        for box, label in ((self.method, self.method_cost), (self.compare_method, self.compare_cost)):
            method = box.currentData()
            cost = self.costs.get(method)
            if method in PERTURBATION_NAMES:
                label.setText(cost_text(cost) if cost is not None else
                              f"{display_name(method)}: estimating its cost\u2026")
            label.setVisible(method in PERTURBATION_NAMES)

    def _on_analysis(self, *_args: object) -> None:
        """Offer, as the method to add, the first one offered that is not shown yet."""
        shown = {a.method for a in self.overlay.shown_analyses}
        if shown and self.compare_method.currentData() in shown:
            for index in range(self.compare_method.count()):
                if self.compare_method.itemData(index) not in shown:
                    self.compare_method.setCurrentIndex(index)
                    break
        self._update_button()

    def _update_button(self, *_args: object) -> None:
        ready = getattr(self, "_case_open", False) and not getattr(self, "_running", False)
        self.analyse_button.setEnabled(ready and bool(self.bundle.currentText())
                                       and bool(self.method.currentData()))
        shown = self.overlay.shown_analyses
        added = self.compare_method.currentData()
        self.compare_button.setEnabled(ready and bool(shown) and bool(added) and len(shown) < MAX_METHODS
                                       and added not in {a.method for a in shown})
        self.close_compare_button.setVisible(bool(self.overlay.compared))

    # -- the prediction ----------------------------------------------------------------------
    def _jump_to(self, link: str) -> None:
        """A key-frame link ("item:12") shows that frame."""
        if link.startswith("item:"):
            self.display.slice_index = int(link.split(":", 1)[1])

    def _show_prediction(self, *_args: object) -> None:
        probabilities = self.overlay.current_probabilities()
        analysis = self.overlay.analysis
        parts = (self.header, self.verdict, self.verdict_table, self.key_frames, self.notes, self.item_title,
                 self.item_table, self.uncertainty, self.map_check)
        if not probabilities or analysis is None:
            for widget in parts[1:]:
                widget.setVisible(False)
            self.header.setText("<i>No analysis yet for this case.</i>" if self.display.volume is not None else "")
            return
        shown = analysis.class_names[self.overlay.class_index]
        versus = _placed_names(self.overlay.shown_analyses)
        calibration = {True: "probabilities calibrated on held-out data",
                       False: "probabilities not calibrated (softmax scores)"}.get(analysis.calibrated)
        run_on = f"run on {escape(analysis.device)}" if analysis.device else ""
        small = "; ".join(part for part in (calibration, run_on) if part)
        self.header.setText(f"{escape(analysis.bundle)} \u00b7 {versus}" + (f"<br><small>{small}</small>" if small else ""))
        verdict = analysis.verdict
        self.verdict.setVisible(verdict is not None)
        self.verdict_table.setVisible(verdict is not None)
        self.key_frames.setVisible(False)
        self.notes.setVisible(verdict is not None and bool(verdict.notes))
        if verdict is not None:
            pooled = dict(zip(analysis.class_names, (float(p) for p in verdict.probabilities)))
            winner = verdict.winner
            winner_name = analysis.class_names[winner]
            said = verdict.label if verdict.class_index is not None else (  # the label says the answer
                f"{verdict.label}: {winner_name} ({percent(pooled[winner_name])})")
            self.verdict.setText(f"<b>{escape(said)}</b>")
            self.verdict_table.set_probabilities(pooled, shown, answer=winner_name)
            self.key_frames.setText(self._key_frame_links(verdict.key_items, winner, shown))
            self.key_frames.setVisible(bool(self.key_frames.text()))
            self.notes.setText("<br>".join(escape(_breakable(note)) for note in verdict.notes))
        per_item = verdict is None or self.display.volume.n_slices > 1
        self.item_title.setVisible(per_item)
        self.item_table.setVisible(per_item)
        if per_item:
            self.item_title.setText(f"<b>{self.display.item_word().capitalize()} {self.display.slice_index + 1}</b>")
            self.item_table.set_probabilities(probabilities, shown)
        self._show_uncertainty(analysis, verdict is not None)
        self._show_map_check()

    def _show_uncertainty(self, analysis, pooled: bool) -> None:
        """The case's judgement when there is a pooled verdict, else the shown item's; says so when
        the uncertainty was not measured (a prediction stored before it was, or made without it)."""
        found = analysis.uncertainty
        self.uncertainty.setVisible(True)
        if found is None:
            self.uncertainty.setText(f"<i>{NOT_MEASURED}</i>")
            return
        index = self.display.slice_index
        words = found.words if pooled or index >= len(found.item_words) else found.item_words[index]
        self.uncertainty.setText(f"{escape(words)} ({escape(found.label)})")

    def _key_frame_links(self, key_items: dict[int, tuple[int, ...]], winner: int, shown: str) -> str:
        """Links to the winning class's key frames, then the shown class's when it differs."""
        analysis = self.overlay.analysis
        word = self.display.item_word()
        lines = []
        classes = [winner] + [k for k in (self.overlay.class_index,) if k != winner]
        for k in classes:
            keys = key_items.get(k, ())
            if keys:
                links = " \u00b7 ".join(f"<a href='item:{i}'>{i + 1}</a>" for i in keys)
                why = " (the verdict)" if k == winner else " (on the map)"
                lines.append(f"Key {word}s for {escape(analysis.class_names[k])}{why}: {links}")
        return "<br>".join(lines)

    def _show_map_check(self) -> None:
        """The verdict of the map on screen, a warning when it failed its check."""
        report = self.overlay.check_for("main")
        self.map_check.setVisible(True)
        if report is None:
            self.map_check.setText("<small>This map is not checked on this "
                                   f"{self.display.item_word()} (Map quality \u203a Check this map).</small>")
            return
        verdict = map_verdict(report)
        colour = _LEVEL_COLOURS[verdict.level]
        warning = "\u26a0 Do not trust this map: " if verdict.level == "fails" else "Map check: "
        self.map_check.setText(f"<span style='color:{colour}'><b>{warning}{verdict.symbol} "
                               f"{escape(verdict.headline)}</b></span>")

    def summary_text(self) -> str:
        """Everything the prediction shows, as text (for tests and the accessibility tree)."""
        widgets = (self.header, self.verdict, self.verdict_table, self.key_frames, self.notes, self.item_title,
                   self.item_table, self.uncertainty, self.map_check)
        return "\n".join(widget.text() for widget in widgets if widget.text() and not widget.isHidden())


def _placed_names(analyses) -> str:
    """The shown methods by name, each with its place when there are several:
    "Grad-CAM (left) vs LayerCAM (right)", "Grad-CAM (top left) vs ... (bottom right)"."""
    names = [escape(display_name(a.method)) for a in analyses]
    if len(names) == 1:
        return names[0]
    places = ("left", "right") if len(names) == 2 else ("top left", "top right", "bottom left", "bottom right")
    return " vs ".join(f"{name} ({place})" for name, place in zip(names, places))


def cost_text(cost: MethodCost) -> str:
    """"Score-CAM: about 2,560 forward passes, ~3 min on this machine"."""
    return (f"{display_name(cost.method)}: about {cost.forward_passes:,} forward passes, "
            f"~{duration_text(cost.seconds)} on this machine")


def _breakable(text: str) -> str:
    """Let a long path wrap after its slashes (zero-width spaces)."""
    return text.replace("/", "/\u200b")


def _wrapping_label() -> QLabel:
    """A word-wrapping label of (escaped) rich text: never guessed as plain, where an escaped
    apostrophe would show as "&#x27;"."""
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    return label


def _small_label() -> QLabel:
    label = _wrapping_label()
    font = label.font()
    font.setPointSizeF(font.pointSizeF() * 0.9)
    label.setFont(font)
    label.setVisible(False)
    return label
