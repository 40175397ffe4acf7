"""A ``StudyReport`` as one self-contained HTML file (plots embedded) or a PDF (matplotlib's PdfPages).

Both carry the same tables (``engine.stats.study_tables``) and plots
(``engine.stats.study_figures``) as the window's dashboard, the study design, the frozen
model's bundle and version, and the Salience version, so the file can go into a paper's
supplement as it is. A section that does not apply says so in one line.
"""

from __future__ import annotations

import base64
import html
import textwrap
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from app.study_report import DEIDENTIFIED
from engine.errors import SalienceError
from engine.stats.figures import figure_bytes
from engine.stats.study_figures import ReportFigure, report_figures
from engine.stats.study_report import StudyReport
from engine.stats.study_tables import ReportSection, Table, report_tables

REPORT_SUFFIXES = (".html", ".htm", ".pdf")
IMAGE_FORMATS = ("png", "svg")
_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.85em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
caption { text-align: left; font-style: italic; padding-bottom: 0.3em; }
.note { color: #7a4b00; } .meta { color: #555; font-size: 0.9em; }
figure { margin: 0.5em 0 1.5em; } figure img, figure svg { max-width: 100%; height: auto; }
"""


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(cell)}</th>" for cell in table.header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in table.rows)
    return f"<table><caption>{html.escape(table.caption)}</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _html_figure(plot: ReportFigure, image_format: str) -> str:
    data = figure_bytes(plot.figure, image_format)
    if image_format == "svg":
        text = data.decode("utf-8")
        image = text[text.index("<svg"):]
    else:
        image = f'<img alt="{html.escape(plot.title)}" src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'
    return f'<figure id="figure-{html.escape(plot.name)}">{image}<figcaption>{html.escape(plot.title)}</figcaption></figure>'


def render_html(report: StudyReport, image_format: str = "png", plots: Sequence[ReportFigure] | None = None) -> str:
    """The report as one HTML document with every plot embedded (PNG as data URIs, or inline SVG)."""
    if image_format not in IMAGE_FORMATS:
        raise SalienceError(f"report images: {image_format!r} is not one of {', '.join(IMAGE_FORMATS)}")
    plots = report_figures(report) if plots is None else plots
    facts = report.facts
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Study report: {html.escape(facts.name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Study report: {html.escape(facts.name)}</h1>",
        f'<p class="meta">Salience {html.escape(facts.software_version)}, generated {html.escape(facts.generated_at)}. '
        f"{html.escape(DEIDENTIFIED)}</p>",
    ]
    for section in report_tables(report):
        parts.append(f'<section id="{section.key}"><h2>{html.escape(section.title)}</h2>')
        if section.note:
            parts.append(f'<p class="note">{html.escape(section.note)}</p>')
        parts.extend(_html_table(table) for table in section.tables)
        parts.extend(_html_figure(plot, image_format) for plot in plots if plot.section == section.key)
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


A4 = (8.27, 11.69)
_LINES_PER_PAGE = 88
_CHARS_PER_LINE = 150


def _fitted_widths(rows: list[tuple[str, ...]]) -> list[int]:
    """Column widths that fit a page line: the widest column gives way first (never below 8)."""
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    while sum(widths) + 2 * (len(widths) - 1) > _CHARS_PER_LINE and max(widths) > 8:
        widths[widths.index(max(widths))] -= 1
    return widths


def _text_table(table: Table) -> list[str]:
    rows = [table.header, *table.rows]
    widths = _fitted_widths(rows)
    lines = textwrap.wrap(table.caption, _CHARS_PER_LINE) or [""]
    for number, row in enumerate(rows):
        cells = [cell if len(cell) <= width else cell[: width - 1] + "~" for cell, width in zip(row, widths)]
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(cells, widths)).rstrip()[:_CHARS_PER_LINE])
        if number == 0:
            lines.append("-" * min(sum(widths) + 2 * (len(widths) - 1), _CHARS_PER_LINE))
    return lines + [""]


def _section_lines(section: ReportSection) -> list[str]:
    lines = [section.title.upper(), ""]
    if section.note:
        lines += textwrap.wrap(section.note, _CHARS_PER_LINE) + [""]
    for table in section.tables:
        lines += _text_table(table)
    return lines


def _text_pages(lines: list[str]) -> list[Figure]:
    pages = []
    for start in range(0, max(len(lines), 1), _LINES_PER_PAGE):
        page = Figure(figsize=A4)
        page.text(0.04, 0.97, "\n".join(lines[start:start + _LINES_PER_PAGE]), family="monospace", fontsize=6.2, va="top")
        pages.append(page)
    return pages


def write_pdf(report: StudyReport, path: str | Path, plots: Sequence[ReportFigure] | None = None) -> Path:
    """The report as a PDF: the tables as text pages, each section followed by its plots."""
    plots = report_figures(report) if plots is None else plots
    facts = report.facts
    path = Path(path)
    header = [f"Study report: {facts.name}", f"Salience {facts.software_version}, generated {facts.generated_at}.",
              *textwrap.wrap(DEIDENTIFIED, _CHARS_PER_LINE), ""]
    with PdfPages(path, metadata={"Title": f"Study report: {facts.name}", "Creator": f"Salience {facts.software_version}",
                                  "Subject": DEIDENTIFIED}) as pdf:
        for number, section in enumerate(report_tables(report)):
            for page in _text_pages((header if number == 0 else []) + _section_lines(section)):
                pdf.savefig(page)
            for plot in plots:
                if plot.section == section.key:
                    plot.figure.suptitle(plot.title, fontsize=9)
                    pdf.savefig(plot.figure)
    return path


def write_report(report: StudyReport, path: str | Path, image_format: str = "png") -> Path:
    """Write the report as HTML (``.html``/``.htm``) or PDF (``.pdf``), chosen by the suffix.

    Raises:
        SalienceError: another suffix, or a folder that does not exist.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in REPORT_SUFFIXES:
        raise SalienceError(f"{path}: a report is written as .html or .pdf, not {suffix or 'a file without a suffix'}")
    if not path.parent.is_dir():
        raise SalienceError(f"{path}: the folder {path.parent} does not exist")
    if suffix == ".pdf":
        return write_pdf(report, path)
    path.write_text(render_html(report, image_format), encoding="utf-8")
    return path
