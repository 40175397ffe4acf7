"""The study dashboard: a closed study's report in the window, one tab per section.

It shows the same ``StudyReport`` the command line writes (``engine.stats.study_report``): the
tables of ``engine.stats.study_tables`` and the plots of ``engine.stats.study_figures`` drawn by
matplotlib in Qt (``FigureCanvasQTAgg``). Each plot has "Save PNG" and "Save SVG" buttons; a
section that does not apply shows its one-line reason. The widget computes nothing: whoever
opens it (the app, for a coordinator) hands it the report.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView, QFileDialog, QHBoxLayout, QLabel, QPushButton, QScrollArea, QTableWidget,
    QTableWidgetItem, QTabWidget, QVBoxLayout, QWidget,
)

from engine.stats.figures import figure_bytes
from engine.stats.study_figures import ReportFigure, report_figures
from engine.stats.study_report import StudyReport
from engine.stats.study_tables import ReportSection, Table, report_tables

EXPORT_SUFFIXES = {".png": "png", ".svg": "svg"}


def table_widget(table: Table) -> QTableWidget:
    """A read-only table of the report's cells, sized to its rows."""
    widget = QTableWidget(len(table.rows), len(table.header))
    widget.setHorizontalHeaderLabels(list(table.header))
    widget.verticalHeader().setVisible(False)
    widget.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    for i, row in enumerate(table.rows):
        for j, cell in enumerate(row):
            widget.setItem(i, j, QTableWidgetItem(cell))
    widget.resizeColumnsToContents()
    height = widget.horizontalHeader().height() + sum(widget.rowHeight(i) for i in range(len(table.rows))) + 4
    widget.setFixedHeight(min(height, 420))
    return widget


class PlotView(QWidget):
    """One plot on a matplotlib canvas with its Save PNG / Save SVG buttons."""

    def __init__(self, plot: ReportFigure, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.plot = plot
        self.canvas = FigureCanvasQTAgg(plot.figure)
        width, height = plot.figure.get_size_inches() * plot.figure.dpi
        self.canvas.setMinimumSize(int(min(width, 1000)), int(min(height, 900)))
        buttons = QHBoxLayout()
        buttons.addWidget(QLabel(f"<b>{plot.title}</b>"))
        buttons.addStretch(1)
        for suffix in EXPORT_SUFFIXES:
            button = QPushButton(f"Save {suffix[1:].upper()}…")
            button.setToolTip(f"Save this plot as a {suffix[1:].upper()} file")
            button.clicked.connect(lambda _=False, s=suffix: self._ask_and_save(s))
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.canvas)

    def save(self, path: str | Path) -> Path:
        """Write the plot to ``path`` as PNG or SVG, chosen by the suffix."""
        path = Path(path)
        fmt = EXPORT_SUFFIXES.get(path.suffix.lower())
        if fmt is None:
            raise ValueError(f"{path.name}: plots are saved as .png or .svg")
        path.write_bytes(figure_bytes(self.plot.figure, fmt, dpi=150))
        return path

    def _ask_and_save(self, suffix: str) -> None:
        name, _ = QFileDialog.getSaveFileName(self, "Save plot", f"{self.plot.name}{suffix}", f"*{suffix}")
        if name:
            self.save(name if name.lower().endswith(suffix) else name + suffix)


class StudyDashboard(QWidget):
    """A closed study's report: a tab per section with its tables and plots.

    Attributes:
        plots: ``{plot name: PlotView}`` of every plot shown.
        notes: ``{section key: QLabel}`` of the sections' one-line notes (why one does not apply).
    """

    def __init__(self, report: StudyReport, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.report = report
        self.setWindowTitle(f"Study report: {report.facts.name}")
        self.tabs = QTabWidget()
        self.plots: dict[str, PlotView] = {}
        self.notes: dict[str, QLabel] = {}
        self.tables: dict[str, list[QTableWidget]] = {}
        figures = report_figures(report)
        for section in report_tables(report):
            self.tabs.addTab(self._section_page(section, [f for f in figures if f.section == section.key]),
                             section.title if section.applies else f"{section.title} (n/a)")
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)

    def _section_page(self, section: ReportSection, plots: list[ReportFigure]) -> QScrollArea:
        page = QWidget()
        layout = QVBoxLayout(page)
        if section.note:
            note = QLabel(section.note)
            note.setWordWrap(True)
            note.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.notes[section.key] = note
            layout.addWidget(note)
        for table in section.tables:
            caption = QLabel(f"<i>{table.caption}</i>")
            caption.setWordWrap(True)
            layout.addWidget(caption)
            widget = table_widget(table)
            self.tables.setdefault(section.key, []).append(widget)
            layout.addWidget(widget)
        for plot in plots:
            view = PlotView(plot)
            self.plots[plot.name] = view
            layout.addWidget(view)
        layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(page)
        return scroll

    def export_plot(self, name: str, path: str | Path) -> Path:
        """Save plot ``name`` (e.g. "roc") as PNG or SVG, by the suffix of ``path``."""
        return self.plots[name].save(path)
