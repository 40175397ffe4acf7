"""The bar above the image: drawing and measuring tools, cine Play/Pause for clips; channel,
window/level and inversion."""

from __future__ import annotations

from PySide6.QtGui import QActionGroup, QAction
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QToolButton, QVBoxLayout, QWidget,
)

from ui.cine import CinePlayer, frame_rate
from ui.model import TOOLS, ViewerState, channel_choices

#: Tool -> (button text, shortcut key, what it does).
TOOL_TEXT = {
    "navigate": ("Navigate", "N", "pan; click a mark to select it, drag it to move it"),
    "point": ("Point", "P", "click to drop a point"),
    "box": ("Box", "B", "drag to draw a box"),
    "ellipse": ("Ellipse", "E", "drag to draw an ellipse"),
    "polygon": ("Polygon", "G", "click each vertex; double-click or Enter closes it"),
    "brush": ("Brush", "Shift+B", "drag to paint the label's mask; [ and ] change the radius"),
    "eraser": ("Eraser", "Shift+E", "drag to clear painted masks; [ and ] change the radius"),
    "ruler": ("Ruler", "M", "drag to measure a length in mm"),
    "roi": ("ROI", "T", "drag a box: mean, SD and area of the pixels inside"),
}


class DisplayBar(QWidget):
    """Tool buttons, channel picker, W/L spin boxes and cine controls, bound to ``DisplayModel`` and the tool of ``AnnotationModel``.

    Attributes:
        cine: the player stepping through a clip's frames.
        play_action: the checkable Play/Pause action (Space); disabled unless the volume has a
            frame time.
        frame_rate_label: the clip's true frame rate, e.g. "25.0 fps" (empty for non-clips).
    """

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.display, self.annotation = state.display, state.annotation
        rows = QVBoxLayout(self)
        rows.setContentsMargins(4, 2, 4, 2)
        rows.setSpacing(2)
        layout = QHBoxLayout()  # first row: the tools and the clip controls
        rows.addLayout(layout)
        self.tool_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for tool in TOOLS:
            text, key, what = TOOL_TEXT[tool]
            action = QAction(text, self, checkable=True)
            action.setShortcut(key)
            action.setToolTip(f"{text} tool ({key}): {what}")
            action.triggered.connect(lambda _checked=False, t=tool: setattr(self.annotation, "tool", t))
            group.addAction(action)
            button = QToolButton()
            button.setDefaultAction(action)
            layout.addWidget(button)
            self.tool_actions[tool] = action
        tools_row = layout
        layout = QHBoxLayout()  # second row: what is shown and how it is windowed
        rows.addLayout(layout)
        layout.addWidget(QLabel("Channel"))
        self.channel = QComboBox()
        self.channel.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.channel.setMinimumContentsLength(13)  # "RGB (colour)" in full
        layout.addWidget(self.channel)
        layout.addSpacing(16)
        self.width_box = self._spin_box("Window width (right-drag left/right)")
        self.level_box = self._spin_box("Window level / centre (right-drag up/down)")
        layout.addWidget(QLabel("W"))
        layout.addWidget(self.width_box)
        layout.addWidget(QLabel("L"))
        layout.addWidget(self.level_box)
        self.reset_button = QPushButton("Reset W/L")
        layout.addWidget(self.reset_button)
        self.invert_box = QCheckBox("Invert (I)")
        self.invert_box.setToolTip("Show grey levels inverted")
        layout.addWidget(self.invert_box)
        layout.addStretch(1)
        layout = tools_row
        layout.addSpacing(16)
        self.cine = CinePlayer(state.display, self)
        self.play_action = QAction("Play", self, checkable=True)
        self.play_action.setShortcut("Space")
        self.play_action.setToolTip("Play / pause the clip at its recorded frame rate (Space)")
        self.play_action.triggered.connect(self.cine.toggle)
        self.play_button = QToolButton()
        self.play_button.setDefaultAction(self.play_action)
        layout.addWidget(self.play_button)
        self.frame_rate_label = QLabel()
        layout.addWidget(self.frame_rate_label)
        layout.addStretch(1)
        self.cine.playing_changed.connect(self._on_playing)

        self.channel.currentTextChanged.connect(self._channel_picked)
        self.width_box.valueChanged.connect(self._window_edited)
        self.level_box.valueChanged.connect(self._window_edited)
        self.reset_button.clicked.connect(self.display.reset_window)
        self.invert_box.toggled.connect(lambda on: setattr(self.display, "invert", on))
        self.display.events.invert.connect(self._on_invert)
        self.display.events.volume.connect(self._on_volume)
        self.display.events.channel.connect(self._on_channel)
        self.display.events.window.connect(self._on_window)
        self.annotation.events.tool.connect(self._on_tool)
        self._on_tool(self.annotation.tool)
        self._on_volume(self.display.volume)

    @staticmethod
    def _spin_box(tip: str) -> QDoubleSpinBox:
        box = QDoubleSpinBox()
        box.setDecimals(1)
        box.setRange(-1e6, 1e6)
        box.setKeyboardTracking(False)
        box.setToolTip(tip)
        box.setMinimumWidth(80)
        return box

    def _on_volume(self, volume: object) -> None:
        self.channel.blockSignals(True)
        self.channel.clear()
        if volume is not None:
            self.channel.addItems(list(channel_choices(volume)))
            self.channel.setCurrentText(self.display.channel)
        self.channel.blockSignals(False)
        for widget in (self.channel, self.width_box, self.level_box, self.reset_button, self.invert_box):
            widget.setEnabled(volume is not None)
        rate = frame_rate(volume)
        self.play_action.setEnabled(rate is not None)
        self.frame_rate_label.setText(f"{rate:.1f} fps" if rate is not None else "")

    def _on_playing(self, playing: bool) -> None:
        self.play_action.setChecked(playing)
        self.play_action.setText("Pause" if playing else "Play")

    def _channel_picked(self, name: str) -> None:
        if name and name != self.display.channel:
            self.display.channel = name

    def _on_channel(self, name: str) -> None:
        if name and self.channel.currentText() != name:
            self.channel.setCurrentText(name)

    def _window_edited(self, _value: float) -> None:
        self.display.window = (self.level_box.value(), self.width_box.value())

    def _on_window(self, centre: float, width: float) -> None:
        for box, value in ((self.level_box, centre), (self.width_box, width)):
            box.blockSignals(True)
            box.setValue(value)
            box.blockSignals(False)

    def _on_invert(self, on: bool) -> None:
        self.invert_box.blockSignals(True)
        self.invert_box.setChecked(on)
        self.invert_box.blockSignals(False)

    def _on_tool(self, tool: str) -> None:
        self.tool_actions[tool].setChecked(True)
