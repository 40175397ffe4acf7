"""The keyboard and mouse shortcuts, listed once for the Help > Shortcuts dialog.

Each entry is ``(keys, what they do)``; keys are written as Qt writes them
(``QKeySequence.toString()``), several separated by " / ", so a test can check that every
shortcut set on an action is listed here, and each listed key is tested.
"""

from __future__ import annotations

from html import escape

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

SHORTCUTS: tuple[tuple[str, str], ...] = (
    ("Mouse wheel / Up / Down", "next / previous slice or frame"),
    ("PgUp / PgDown", "5 slices forward / back"),
    ("Home / End", "first / last slice"),
    ("Right-drag", "window (left-right) and level (up-down)"),
    ("1 / 2 / 3 / 4", "window preset: soft tissue 400/40, lung 1500/-600, bone 2500/480, brain 80/40"),
    ("R", "reset window/level to the image default"),
    ("I", "invert grey levels"),
    ("Ctrl + wheel", "zoom about the cursor"),
    ("Middle-drag", "pan (left-drag too, with Navigate, away from a mark)"),
    ("F", "fit the image (or the whole slide) to the view"),
    ("+ / = / -", "zoom in / in / out about the middle of the view"),
    ("Wheel (slide) / Drag (slide)", "zoom a whole slide about the cursor / pan it (with Navigate, off a mark); "
                                     "marks, ruler (µm) and ROI (mm², mean colour) as on slices"),
    ("Click (minimap) / Drag (minimap)", "move the slide view there"),
    ("V", "three linked planes (axial, coronal, sagittal) / back to one view"),
    ("Click or drag in a plane (Navigate)", "three planes: move the crosshair there, the other planes follow; "
                                            "the wheel steps the plane under the pointer"),
    ("Space", "play / pause a clip at its recorded frame rate"),
    ("O", "CAM overlay on / off"),
    ("C", "CAM as contours only, on / off"),
    ("N / P / B / E / G", "Navigate, Point, Box, Ellipse, Polygon tool"),
    ("M / T", "Ruler (mm), ROI statistics tool"),
    ("Shift+B / Shift+E", "Brush, Eraser tool (paint / clear the label mask of the slice)"),
    ("[ / ]", "smaller / larger brush (radius in image pixels)"),
    ("Click (Navigate)", "select a mark; drag it to move it"),
    ("Click (Point) / Drag (Box, Ellipse, Brush, Eraser, Ruler, ROI)", "draw (a brush stroke is one undo step)"),
    ("Click (Polygon) / Double-click / Return / Backspace", "add a vertex, close, close, remove the last vertex"),
    ("Del", "delete the selected mark (on the image or in the marks list)"),
    ("Esc", "cancel what is being drawn, else deselect, else back to Navigate"),
    ("Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y", "undo / redo a change of the marks"),
    ("Ctrl+O / Ctrl+Shift+O", "open a file / a folder"),
    ("Ctrl+S", "save the reading"),
    ("F1", "this list"),
    ("Ctrl+Q", "quit"),
)


def documented_keys() -> set[str]:
    """Every key written in ``SHORTCUTS`` (the parts between " / ")."""
    return {part.strip() for keys, _ in SHORTCUTS for part in keys.split(" / ")}


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
