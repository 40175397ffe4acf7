"""The bar above the image: drawing tool, channel, window/level, and cine Play/Pause for clips."""

from __future__ import annotations

from PySide6.QtGui import QActionGroup, QAction
from PySide6.QtWidgets import (
    QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QPushButton, QToolButton, QWidget,
)

from ui.cine import CinePlayer, frame_rate
from ui.model import TOOLS, ViewerState, channel_choices

TOOL_TEXT = {"navigate": ("Navigate", "N"), "point": ("Point", "P"), "box": ("Box", "B")}


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
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        self.tool_actions: dict[str, QAction] = {}
        group = QActionGroup(self)
        for tool in TOOLS:
            text, key = TOOL_TEXT[tool]
            action = QAction(text, self, checkable=True)
            action.setShortcut(key)
            action.setToolTip(f"{text} tool ({key})")
            action.triggered.connect(lambda _checked=False, t=tool: setattr(self.annotation, "tool", t))
            group.addAction(action)
            button = QToolButton()
            button.setDefaultAction(action)
            layout.addWidget(button)
            self.tool_actions[tool] = action
        layout.addSpacing(16)
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
        for widget in (self.channel, self.width_box, self.level_box, self.reset_button):
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

    def _on_tool(self, tool: str) -> None:
        self.tool_actions[tool].setChecked(True)
