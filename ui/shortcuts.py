"""The keyboard and mouse shortcuts, listed once for the Help > Shortcuts dialog."""

from __future__ import annotations

from html import escape

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("Mouse wheel, Up / Down", "next / previous slice"),
    ("PageUp / PageDown", "5 slices forward / back"),
    ("Home / End", "first / last slice"),
    ("Right-drag", "window (left-right) and level (up-down)"),
    ("R", "reset window/level to the image default"),
    ("Ctrl + wheel", "zoom about the cursor"),
    ("Middle-drag, or left-drag with Navigate", "pan"),
    ("F", "fit the image to the view"),
    ("Space", "play / pause a clip at its recorded frame rate"),
    ("O", "CAM overlay on / off"),
    ("N / P / B", "Navigate, Point, Box tool"),
    ("Click (Point tool)", "drop a point"),
    ("Drag (Box tool)", "draw a box"),
    ("Esc", "cancel the box being drawn, else back to Navigate"),
    ("Delete (in the marks list)", "delete the selected mark"),
    ("Ctrl+O / Ctrl+Shift+O", "open a file / a folder"),
    ("Ctrl+S", "save the reading"),
    ("F1", "this list"),
    ("Ctrl+Q", "quit"),
)


def shortcuts_html() -> str:
    rows = "".join(
        f"<tr><td><b>{escape(keys)}</b></td><td>&nbsp;&nbsp;{escape(action)}</td></tr>"
        for keys, action in SHORTCUTS
    )
    return f"<table cellspacing='3'>{rows}</table>"


class ShortcutsDialog(QDialog):
    """A plain table of every shortcut."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard and mouse shortcuts")
        text = QLabel(shortcuts_html())
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(buttons)
