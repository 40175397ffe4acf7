"""CAM overlay controls: on/off, opacity, threshold, contours, class, normalisation, negatives,
colour map, and the colour bar labelled with raw values and how they were normalised."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QLinearGradient, QPainter
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QSlider, QVBoxLayout, QWidget,
)

from engine.imaging.render import COLORMAPS, colormap
from ui.model import MAP_ROLES, ViewerState

SCOPES = (("volume", "Per volume (slices comparable)"), ("slice", "Per slice (stretched)"),
          ("study", "Per study (cases comparable)"))


class ColourBar(QWidget):
    """The colour map as a bar, labelled with the raw map values at its ends."""

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.overlay = state.overlay
        self.setFixedHeight(44)
        for signal in (state.overlay.events.all, state.display.events.slice_index):
            signal.connect(self._repaint)  # a per-slice range changes with the slice

    def _repaint(self, *_args: object) -> None:
        self.update()

    def end_labels(self) -> tuple[str, str, str]:
        """The texts under the bar's left end, middle and right end.

        One method: its raw values at the ends. Several: each method's ends, left to right in view
        order, when they fit beside the middle word; otherwise "low" and "high", and the middle
        says that each view's caption gives its own range (the texts never overlap).
        """
        spec = self.overlay.spec()
        if spec is None:
            return "", "", ""
        ends = [spec.value_range]
        compared = (self.overlay.value_range(role) for role in MAP_ROLES[1:])
        ends += [end for end in compared if end is not None]  # each method spans its own raw values
        if len(ends) == 1:
            middle = "tile probability" if self.overlay.map_source == "probability" else "raw CAM value"
            return f"{spec.value_range.low:.3g}", middle, f"{spec.value_range.high:.3g}"
        low = " | ".join(f"{end.low:.3g}" for end in ends)
        high = " | ".join(f"{end.high:.3g}" for end in ends)
        middle = "raw: left | right" if len(ends) == 2 else "raw"
        metrics = self.fontMetrics()
        gap = metrics.horizontalAdvance("  ")
        # The middle text is centred: each end must stay clear of its half.
        half_middle = metrics.horizontalAdvance(middle) / 2.0
        if max(metrics.horizontalAdvance(low), metrics.horizontalAdvance(high)) + half_middle + gap <= self.width() / 2.0:
            return low, middle, high
        return "low", "each view's own raw range", "high"

    def paintEvent(self, _event: object) -> None:  # noqa: N802
        painter = QPainter(self)
        lut = colormap(self.overlay.colormap)
        bar = QRectF(0, 0, self.width(), 12)
        gradient = QLinearGradient(bar.topLeft(), bar.topRight())
        for index in range(0, 256, 15):
            gradient.setColorAt(index / 255.0, QColor(*lut[index]))
        gradient.setColorAt(1.0, QColor(*lut[255]))
        painter.fillRect(bar, gradient)
        spec = self.overlay.spec()
        if spec is not None:
            painter.setPen(QColor(200, 200, 200))
            text_area = QRectF(0, 13, self.width(), 16)
            low, middle, high = self.end_labels()
            painter.drawText(text_area, Qt.AlignmentFlag.AlignLeft, low)
            painter.drawText(text_area, Qt.AlignmentFlag.AlignRight, high)
            painter.drawText(text_area, Qt.AlignmentFlag.AlignHCenter, middle)
            scope = self.overlay.scope_text()
            if self.overlay.threshold > 0:
                scope += f"; below {100 * self.overlay.threshold:.0f}% hidden"
            painter.drawText(QRectF(0, 28, self.width(), 16), Qt.AlignmentFlag.AlignHCenter, scope)
            if self.overlay.threshold > 0:  # where the hidden part of the bar ends
                x = self.overlay.threshold * self.width()
                painter.fillRect(QRectF(0, 0, x, 12), QColor(0, 0, 0, 170))
        painter.end()


class OverlayPanel(QWidget):
    """Controls bound to ``OverlayModel``: each follows its own event and writes back through
    the model's setter."""

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.overlay = overlay = state.overlay
        self.visible = QCheckBox("Show CAM overlay (O)")
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity_label = QLabel()
        self.opacity_label.setMinimumWidth(36)
        self.threshold = QSlider(Qt.Orientation.Horizontal)
        self.threshold.setRange(0, 95)
        self.threshold.setToolTip("Hide the map below this share of its colour range")
        self.threshold_label = QLabel()
        self.threshold_label.setMinimumWidth(36)
        self.contour = QCheckBox("Contours only (C)")
        self.contour.setToolTip("Draw the map as iso-lines at 25, 50 and 75% of its range")
        self.class_box = QComboBox()
        self.source = QComboBox()
        self.source.addItem("CAM (where the model looked)", "cam")
        self.source.addItem("Tile probability", "probability")
        self.source.setToolTip("A slide: the CAM stitched from its tiles, or each tile's probability")
        self.scope = QComboBox()
        for key, text in SCOPES:
            self.scope.addItem(text, key)
        self.negative = QCheckBox("Show negative values")
        self.colormap_box = QComboBox()
        self.colormap_box.addItems(sorted(COLORMAPS))
        self.colour_bar = ColourBar(state)
        opacity_row = QHBoxLayout()
        opacity_row.addWidget(self.opacity, 1)
        opacity_row.addWidget(self.opacity_label)
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(self.threshold, 1)
        threshold_row.addWidget(self.threshold_label)
        form = QFormLayout()
        form.addRow("Opacity", opacity_row)
        form.addRow("Hide below", threshold_row)
        form.addRow("Class", self.class_box)
        form.addRow("Show", self.source)
        self._form = form
        form.addRow("Normalise", self.scope)
        form.addRow("Colours", self.colormap_box)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.visible)
        layout.addLayout(form)
        layout.addWidget(self.negative)
        layout.addWidget(self.contour)
        layout.addWidget(self.colour_bar)

        self.visible.toggled.connect(lambda on: setattr(overlay, "visible", on))
        self.opacity.valueChanged.connect(lambda value: setattr(overlay, "opacity", value / 100.0))
        self.threshold.valueChanged.connect(lambda value: setattr(overlay, "threshold", value / 100.0))
        self.contour.toggled.connect(lambda on: setattr(overlay, "contour", on))
        self.class_box.currentIndexChanged.connect(self._class_picked)
        self.source.currentIndexChanged.connect(
            lambda index: setattr(overlay, "map_source", self.source.itemData(index)))
        self.scope.currentIndexChanged.connect(
            lambda index: setattr(overlay, "normalisation", self.scope.itemData(index)))
        self.negative.toggled.connect(lambda on: setattr(overlay, "show_negative", on))
        self.colormap_box.currentTextChanged.connect(lambda name: setattr(overlay, "colormap", name))
        events = overlay.events
        events.visible.connect(lambda on: _quietly(self.visible, self.visible.setChecked, on))
        events.opacity.connect(self._show_opacity)
        events.threshold.connect(self._show_threshold)
        events.contour.connect(lambda on: _quietly(self.contour, self.contour.setChecked, on))
        events.class_index.connect(self._show_class)
        events.map_source.connect(lambda source: _show_data(self.source, source))
        events.normalisation.connect(lambda scope: _show_data(self.scope, scope))
        events.show_negative.connect(lambda on: _quietly(self.negative, self.negative.setChecked, on))
        events.colormap.connect(lambda name: _quietly(self.colormap_box, self.colormap_box.setCurrentText, name))
        events.analysis.connect(self._on_analysis)
        self._on_analysis(overlay.analysis)

    def _class_picked(self, index: int) -> None:
        if index >= 0 and self.overlay.analysis is not None:
            self.overlay.class_index = index

    def _on_analysis(self, analysis: object) -> None:
        self.class_box.blockSignals(True)
        self.class_box.clear()
        if analysis is not None:
            self.class_box.addItems(list(analysis.class_names))
        self.class_box.blockSignals(False)
        self.setEnabled(analysis is not None)
        has_tiles = analysis is not None and analysis.probability_maps is not None
        self._form.setRowVisible(self.source, has_tiles)
        has_study = analysis is not None and analysis.study_ranges is not None
        self.scope.model().item(self.scope.findData("study")).setEnabled(has_study)
        self.scope.setItemData(self.scope.findData("study"),
                               "Every stored map of this model and method, all cases: one colour scale"
                               if has_study else "No stored maps of this model and method yet",
                               Qt.ItemDataRole.ToolTipRole)
        self._sync()

    def _show_opacity(self, opacity: float) -> None:
        _quietly(self.opacity, self.opacity.setValue, round(opacity * 100))
        self.opacity_label.setText(f"{round(opacity * 100)}%")

    def _show_threshold(self, share: float) -> None:
        _quietly(self.threshold, self.threshold.setValue, round(share * 100))
        self.threshold_label.setText(f"{round(share * 100)}%")

    def _show_class(self, index: int) -> None:
        _quietly(self.class_box, self.class_box.setCurrentIndex,
                 index if self.overlay.analysis is not None else -1)

    def _sync(self) -> None:
        """Make every control show the model's value (a new analysis, or at start)."""
        overlay = self.overlay
        _quietly(self.visible, self.visible.setChecked, overlay.visible)
        self._show_opacity(overlay.opacity)
        self._show_threshold(overlay.threshold)
        _quietly(self.contour, self.contour.setChecked, overlay.contour)
        self._show_class(overlay.class_index)
        _show_data(self.source, overlay.map_source)
        _show_data(self.scope, overlay.normalisation)
        _quietly(self.negative, self.negative.setChecked, overlay.show_negative)
        _quietly(self.colormap_box, self.colormap_box.setCurrentText, overlay.colormap)


def _quietly(widget: QWidget, apply, value: object) -> None:
    """Show ``value`` in ``widget`` without echoing it back to the model as a change."""
    widget.blockSignals(True)
    apply(value)
    widget.blockSignals(False)


def _show_data(box: QComboBox, data: str) -> None:
    """Pick the item of ``box`` whose data is ``data``, quietly."""
    _quietly(box, box.setCurrentIndex, box.findData(data))
