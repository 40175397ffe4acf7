"""Run a model: bundle and CAM method pickers, Analyse, progress, and this slice's probabilities;
then compare the first CAM method with a second one side by side."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget,
)

from ui.panels.task_progress import TaskProgress
from ui.model import ViewerState


class AnalysisPanel(QWidget):
    """Asks for an analysis and shows the current slice's class probabilities.

    Signals:
        analyse_requested(bundle, method): the reader pressed Analyse.
        compare_requested(method): the reader asked to compare the shown analysis with another
            CAM method (same bundle). "Close comparison" writes to the overlay model directly.
    """

    analyse_requested = Signal(str, str)
    compare_requested = Signal(str)

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display, self.overlay = state.display, state.overlay
        self.bundle = QComboBox()
        self.method = QComboBox()
        self.analyse_button = QPushButton("Analyse")
        self.analyse_button.setToolTip("Run the model and the CAM method on every slice")
        self.progress = TaskProgress()
        self.compare_method = QComboBox()
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Run a second CAM method with the same model and show "
                                       "both side by side (left: first method)")
        self.close_compare_button = QPushButton("Close comparison")
        self.probabilities = QLabel()
        self.probabilities.setWordWrap(True)
        self.probabilities.setTextInteractionFlags(Qt.TextInteractionFlag.LinksAccessibleByMouse)
        self.probabilities.linkActivated.connect(self._jump_to)
        form = QFormLayout()
        form.addRow("Model", self.bundle)
        form.addRow("CAM method", self.method)
        compare_row = QHBoxLayout()
        compare_row.addWidget(self.compare_method, 1)
        compare_row.addWidget(self.compare_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(form)
        layout.addWidget(self.analyse_button)
        layout.addWidget(QLabel("Compare with\u2026"))
        layout.addLayout(compare_row)
        layout.addWidget(self.close_compare_button)
        layout.addWidget(self.progress)
        layout.addWidget(self.probabilities)
        self.analyse_button.clicked.connect(
            lambda: self.analyse_requested.emit(self.bundle.currentText(), self.method.currentText())
        )
        self.compare_button.clicked.connect(
            lambda: self.compare_requested.emit(self.compare_method.currentText()))
        self.close_compare_button.clicked.connect(lambda: self.overlay.set_compare_analysis(None))
        self.method.currentTextChanged.connect(self._update_button)
        self.compare_method.currentTextChanged.connect(self._update_button)
        overlay, display = self.overlay.events, self.display.events
        for signal in (overlay.analysis, overlay.compare_analysis, overlay.class_index,
                       display.slice_index, display.volume):
            signal.connect(self._show_probabilities)
        overlay.analysis.connect(self._on_analysis)
        overlay.compare_analysis.connect(self._update_button)
        self.set_case_open(False)

    def set_choices(self, bundles: list[str], methods: list[str]) -> None:
        """Offer these bundles and CAM methods, keeping the current picks where still offered."""
        self.bundle.setPlaceholderText("No model installed for this task")
        self.method.setPlaceholderText("No CAM method available")
        self.compare_method.setPlaceholderText("No other CAM method")
        for box, names in ((self.bundle, bundles), (self.method, methods),
                           (self.compare_method, methods)):
            current = box.currentText()
            box.clear()
            box.addItems(names)
            if current in names:
                box.setCurrentText(current)
            elif names:
                box.setCurrentIndex(0)  # with a placeholder set, Qt would leave none picked
        self._update_button()

    def wait_for_choices(self) -> None:
        """Empty the pickers until ``set_choices`` offers the open case's bundles and methods."""
        for box in (self.bundle, self.method, self.compare_method):
            box.clear()
            box.setPlaceholderText("Listing models\u2026")
        self._update_button()

    def set_case_open(self, is_open: bool) -> None:
        self._case_open = is_open
        self._update_button()

    def set_running(self, running: bool) -> None:
        self._running = running
        self._update_button()

    def _on_analysis(self, analysis: object) -> None:
        """Offer, as the second method, the first one offered that differs from the analysis's."""
        if analysis is not None and self.compare_method.currentText() == analysis.method:
            for index in range(self.compare_method.count()):
                if self.compare_method.itemText(index) != analysis.method:
                    self.compare_method.setCurrentIndex(index)
                    break
        self._update_button()

    def _update_button(self, *_args: object) -> None:
        ready = getattr(self, "_case_open", False) and not getattr(self, "_running", False)
        self.analyse_button.setEnabled(ready and bool(self.bundle.currentText())
                                       and bool(self.method.currentText()))
        analysis = self.overlay.analysis
        second = self.compare_method.currentText()
        self.compare_button.setEnabled(ready and analysis is not None and bool(second)
                                       and second != analysis.method)
        self.close_compare_button.setVisible(self.overlay.compare_analysis is not None)

    def _jump_to(self, link: str) -> None:
        """A key-frame link ("item:12") shows that frame."""
        if link.startswith("item:"):
            self.display.slice_index = int(link.split(":", 1)[1])

    def _show_probabilities(self, *_args: object) -> None:
        probabilities = self.overlay.current_probabilities()
        analysis = self.overlay.analysis
        if not probabilities or analysis is None:
            self.probabilities.setText("<i>No analysis yet for this case.</i>"
                                       if self.display.volume is not None else "")
            return
        shown = analysis.class_names[self.overlay.class_index]
        compared = self.overlay.compare_analysis
        versus = f" (left) vs {escape(compared.method)} (right)" if compared is not None else ""
        parts = [f"<div>{escape(analysis.bundle)} \u00b7 {escape(analysis.method)}{versus}</div>"]
        verdict = analysis.verdict
        if verdict is not None:
            pooled = dict(zip(analysis.class_names, (float(p) for p in verdict.probabilities)))
            parts.append(f"<div><b>{escape(verdict.label)}</b></div>{_table(pooled, shown)}")
            keys = verdict.key_items.get(self.overlay.class_index, ())
            if keys:
                word = self.display.item_word()
                links = " \u00b7 ".join(f"<a href='item:{i}'>{i + 1}</a>" for i in keys)
                parts.append(f"<div>Key {word}s for {escape(shown)}: {links}</div>")
            parts.extend(f"<div><small>{escape(note)}</small></div>" for note in verdict.notes)
        if verdict is None or self.display.volume.n_slices > 1:
            parts.append(f"<div><b>{self.display.item_word().capitalize()} {self.display.slice_index + 1}</b></div>"
                         f"{_table(probabilities, shown)}")
        found = analysis.uncertainty
        if found is not None:  # the verdict's judgement, else this item's
            index = self.display.slice_index
            words = found.words if verdict is not None or index >= len(found.item_words) else found.item_words[index]
            parts.append(f"<div><small>{escape(words)} ({escape(found.label)})</small></div>")
        self.probabilities.setText("".join(parts))


def _table(probabilities: dict[str, float], shown: str) -> str:
    """Class probabilities as rows, the class on the overlay in bold."""
    rows = "".join(
        f"<tr><td>{'<b>' if name == shown else ''}{escape(name)}</td>"
        f"<td align='right'>{'<b>' if name == shown else ''}{100 * p:.1f}%</td></tr>"
        for name, p in probabilities.items()
    )
    return f"<table width='100%' cellspacing='2'>{rows}</table>"
