"""The reading-room look: a dark, low-glare Fusion palette so the image is the brightest thing."""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = QColor(64, 160, 224)

_STYLE_SHEET = """
QGroupBox { border: 1px solid #3a3d42; border-radius: 4px; margin-top: 14px; padding: 6px 4px 4px 4px; }
QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 4px; color: #9fb7cc; font-weight: bold; }
QDockWidget::title { background: #26292d; padding: 4px 6px; }
QToolButton:checked { background: #2f5573; border: 1px solid #4a90c8; border-radius: 3px; }
QPushButton:checked { background: #2f5573; border: 1px solid #4a90c8; }
QStatusBar { color: #c8c8c8; }
QCheckBox::indicator { width: 12px; height: 12px; border: 1px solid #8a9099; border-radius: 2px; background: #1b1d1f; }
QCheckBox::indicator:checked { background: #4a90c8; border-color: #b8d8f2; }
QCheckBox::indicator:disabled { border-color: #555; }
QCheckBox::indicator:checked:disabled { background: #34495a; }
"""


def reading_room_palette() -> QPalette:
    """Dark greys with a muted blue accent; disabled text stays legible."""
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: QColor(33, 35, 38),
        QPalette.ColorRole.WindowText: QColor(220, 220, 220),
        QPalette.ColorRole.Base: QColor(24, 26, 28),
        QPalette.ColorRole.AlternateBase: QColor(40, 43, 47),
        QPalette.ColorRole.ToolTipBase: QColor(45, 48, 52),
        QPalette.ColorRole.ToolTipText: QColor(230, 230, 230),
        QPalette.ColorRole.PlaceholderText: QColor(130, 130, 130),
        QPalette.ColorRole.Text: QColor(220, 220, 220),
        QPalette.ColorRole.Button: QColor(45, 48, 52),
        QPalette.ColorRole.ButtonText: QColor(220, 220, 220),
        QPalette.ColorRole.BrightText: QColor(255, 90, 90),
        QPalette.ColorRole.Highlight: ACCENT.darker(130),
        QPalette.ColorRole.HighlightedText: QColor(255, 255, 255),
        QPalette.ColorRole.Link: ACCENT,
    }
    for role, colour in roles.items():
        palette.setColor(role, colour)
    disabled = QPalette.ColorGroup.Disabled
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(disabled, role, QColor(110, 110, 110))
    return palette


def apply_reading_room_theme(app: QApplication) -> None:
    """Give the whole application the dark Fusion look (idempotent)."""
    if app.property("salience_theme"):
        return
    app.setStyle("Fusion")
    app.setPalette(reading_room_palette())
    app.setStyleSheet(_STYLE_SHEET)
    app.setProperty("salience_theme", True)
