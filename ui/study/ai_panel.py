"""``StudyAiPanel``: the frozen AI output of a study reading, where the arm and step show it.

The prediction (the case-level answer and each class's probability, and the probability on the
shown slice or frame) with how sure the model was of it (its uncertainty in words, frozen with
it, or "not measured"); the map itself is drawn over the image by the viewer. Where the AI is not
shown the panel says why, and shows nothing else.
"""

from __future__ import annotations

from html import escape

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from ui.backend import StudyAi
from ui.model import ViewerState


def case_summary(ai: StudyAi) -> str:
    """The case-level answer in words. A clip: each class's probability pooled over its frames
    (the clip verdict). A volume read slice by slice: on how many slices the predicted class is
    the most likely one and its highest probability (each class's own highest slice would list
    "no finding 99%, finding 100%" side by side)."""
    if ai.item_axis == "frame" or ai.predicted_class not in ai.class_names:
        rows = "".join(f"<tr><td>{name}</td><td align='right'>&nbsp;{100 * p:.0f}%</td></tr>"
                       for name, p in zip(ai.class_names, ai.case_probabilities))
        return f"<table>{rows}</table><i>{ai.case_rule}</i>"
    k = ai.class_names.index(ai.predicted_class)
    count = len(ai.probabilities)
    top = int((ai.probabilities.argmax(axis=1) == k).sum())
    peak = int(ai.probabilities[:, k].argmax())
    items = {"patch": "patches"}.get(ai.item_axis, f"{ai.item_axis}s")
    return (f"{ai.predicted_class}: most likely on {top} of {count} {items}, up to "
            f"{100 * ai.probabilities[peak, k]:.0f}% ({ai.item_axis} {peak + 1})")


def uncertainty_summary(ai: StudyAi) -> str:
    """How sure the model was of the case's answer, in the words frozen with it and how it was
    measured; "Uncertainty not measured." when the study froze none; nothing in an arm that hides it."""
    if ai.uncertainty_hidden:
        return ""
    found = ai.uncertainty
    if found is None:
        return "<i>Uncertainty not measured.</i>"
    return f"{escape(found.words)} <small>({escape(found.label)})</small>"


class StudyAiPanel(QWidget):
    """Shows a ``StudyAi``, or why there is none.

    Args:
        state: the viewer state; the item probability follows its shown slice.
    """

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display = state.display
        self.ai: StudyAi | None = None
        self.verdict = QLabel()
        self.verdict.setWordWrap(True)
        self.table = QLabel()
        self.table.setWordWrap(True)
        self.item = QLabel()
        self.uncertainty = QLabel()
        self.uncertainty.setWordWrap(True)
        self.map_note = QLabel()
        self.map_note.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        for widget in (self.verdict, self.table, self.item, self.uncertainty, self.map_note):
            layout.addWidget(widget)
        self.display.events.slice_index.connect(lambda _index: self._show_item())
        self.set_ai(None, "No case open.")

    def set_ai(self, ai: StudyAi | None, why_not: str = "") -> None:
        """Show ``ai``; with None, show ``why_not`` alone."""
        self.ai = ai
        if ai is None:
            self.verdict.setText(why_not)
            for widget in (self.table, self.item, self.uncertainty, self.map_note):
                widget.clear()
            return
        self.verdict.setText(f"AI: <b>{ai.predicted_class}</b>")
        self.table.setText(case_summary(ai))
        self.uncertainty.setText(uncertainty_summary(ai))
        if ai.map is not None:
            self.map_note.setText(f"Map over the image: {ai.map.method}, for \u201c{ai.map.class_names[0]}\u201d.")
        elif ai.pairwise:
            self.map_note.setText("Two maps, A and B, are shown side by side for the comparison question.")
        else:
            self.map_note.setText("This arm shows the prediction without a map.")
        self._show_item()

    def _show_item(self) -> None:
        ai = self.ai
        if ai is None or not len(ai.probabilities):
            self.item.clear()
            return
        index = min(self.display.slice_index, len(ai.probabilities) - 1)
        row = ai.probabilities[index]
        best = int(row.argmax())
        self.item.setText(f"On this {ai.item_axis} ({index + 1}): {ai.class_names[best]} {100 * row[best]:.0f}%")
