"""Below the image: the slice slider and a strip of the shown class's probability per slice."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPen, QPolygonF
from PySide6.QtWidgets import QLabel, QSlider, QHBoxLayout, QVBoxLayout, QWidget

from engine.imaging.render import colormap
from ui.model import ViewerState

CURSOR_COLOUR = QColor(64, 224, 208)
KEY_ITEM_COLOUR = QColor(245, 245, 245)


class ProbabilityStrip(QWidget):
    """One bar per slice, its height and colour the probability of the overlay class there.

    Clicking or dragging on the strip jumps to that slice, so suspicious slices are one click away.
    """

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display, self.overlay = state.display, state.overlay
        self.setFixedHeight(44)
        self.setToolTip("Probability of the shown class on each slice; click to jump there")
        for signal in (state.overlay.events.analysis, state.overlay.events.class_index,
                       state.overlay.events.colormap, state.display.events.slice_index,
                       state.display.events.volume):
            signal.connect(self._repaint)

    def _repaint(self, *_args: object) -> None:
        self.update()

    def slice_at(self, x: float) -> int:
        """The slice whose bar lies under widget x."""
        count = self.display.volume.n_slices if self.display.volume is not None else 1
        return int(min(max(x / max(self.width(), 1) * count, 0), count - 1))

    def bar_rect(self, index: int) -> QRectF:
        count = self.display.volume.n_slices
        step = self.width() / count
        return QRectF(index * step, 0.0, step, float(self.height()))

    def paintEvent(self, _event: object) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(20, 21, 23))
        analysis, volume = self.overlay.analysis, self.display.volume
        if volume is None:
            painter.end()
            return
        if analysis is None:
            painter.setPen(QColor(120, 120, 120))
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter,
                             "Probabilities per slice or frame appear here after Analyse")
            painter.end()
            return
        else:
            lut = colormap(self.overlay.colormap)
            probabilities = analysis.probabilities[:, self.overlay.class_index]
            for index, probability in enumerate(probabilities):
                cell = self.bar_rect(index)
                height = (cell.height() - 2) * float(probability)
                bar = QRectF(cell.left() + 0.5, cell.bottom() - height, max(cell.width() - 1, 1), height)
                painter.fillRect(bar, QColor(*lut[round(float(probability) * 255)]))
            painter.setPen(QPen(QColor(90, 90, 90), 1, Qt.PenStyle.DotLine))
            middle = self.height() / 2.0
            painter.drawLine(0, int(middle), self.width(), int(middle))  # p = 0.5
        if analysis is not None and analysis.verdict is not None:
            self._draw_key_items(painter, analysis.verdict.key_items.get(self.overlay.class_index, ()))
        current = self.bar_rect(self.display.slice_index)
        painter.setPen(QPen(CURSOR_COLOUR, 2))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(current.adjusted(1, 1, -1, -1))
        painter.end()

    def _draw_key_items(self, painter: QPainter, items: tuple[int, ...]) -> None:
        """A white triangle above each key frame of the shown class (the frames that matter most)."""
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(KEY_ITEM_COLOUR)
        for index in items:
            cell = self.bar_rect(index)
            centre, half = cell.center().x(), max(3.0, min(cell.width() / 2, 6.0))
            painter.drawPolygon(QPolygonF([QPointF(centre - half, 0.0), QPointF(centre + half, 0.0),
                                           QPointF(centre, 1.6 * half)]))

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        if self.display.volume is not None:
            self.display.slice_index = self.slice_at(event.position().x())

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self.mousePressEvent(event)


class SliceNavigator(QWidget):
    """A slice slider with the slice number, above the probability strip."""

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display, self.overlay = state.display, state.overlay
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setPageStep(5)
        self.slider.setToolTip("Slice or frame (mouse wheel, Up/Down, PageUp/PageDown)")
        self.label = QLabel()
        self.label.setMinimumWidth(90)
        self.strip = ProbabilityStrip(state)
        row = QHBoxLayout()
        row.addWidget(self.slider, 1)
        row.addWidget(self.label)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 4)
        layout.setSpacing(2)
        layout.addLayout(row)
        self.strip_caption = QLabel()
        self.strip_caption.setMinimumWidth(self.label.minimumWidth())
        self.strip_caption.setToolTip("The strip plots this class's probability on each slice")
        strip_row = QHBoxLayout()
        strip_row.addWidget(self.strip, 1)
        strip_row.addWidget(self.strip_caption)
        layout.addLayout(strip_row)
        self.slider.valueChanged.connect(lambda value: setattr(self.display, "slice_index", value))
        self.display.events.volume.connect(self._on_volume)
        self.display.events.slice_index.connect(self._on_slice)
        self.overlay.events.analysis.connect(self._show_class)
        self.overlay.events.class_index.connect(self._show_class)
        self._on_volume(self.display.volume)

    def _on_volume(self, volume: object) -> None:
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(volume.n_slices - 1, 0) if volume is not None else 0)
        self.slider.blockSignals(False)
        self.setEnabled(volume is not None)
        self._on_slice(self.display.slice_index)

    def _show_class(self, *_args: object) -> None:
        analysis = self.overlay.analysis
        name = analysis.class_names[self.overlay.class_index] if analysis is not None else ""
        self.strip_caption.setText(f"P({name})" if name else "")

    def _on_slice(self, index: int) -> None:
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        volume = self.display.volume
        count = volume.n_slices if volume is not None else 0
        text = f"{self.display.item_word().capitalize()} {index + 1} / {count}" if count else ""
        if count and volume.kind == "clip" and volume.frame_time_ms:
            text += f"  ({index * volume.frame_time_ms / 1000:.2f} s)"
        self.label.setText(text)
