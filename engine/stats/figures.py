"""Plots of reader-study statistics as matplotlib ``Figure`` objects built from plain numbers.

Each function builds a new ``Figure()`` with ``fig.subplots()`` and never touches pyplot's
global state, so the same figure feeds the window's dashboard (``FigureCanvasQTAgg``), the HTML
and PDF reports (``figure.savefig`` to bytes) and tests that read back what was drawn. Nothing
here imports Qt; the Agg canvas is attached by ``Figure`` itself.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.figure import Figure

from engine.stats.results import StatsInputError

PANEL_INCHES = 3.2
FORMATS = ("png", "svg", "pdf")


def _grid(n_panels: int, columns: int, height: float = PANEL_INCHES) -> tuple[Figure, list]:
    columns = max(1, min(columns, n_panels))
    rows = max(1, math.ceil(n_panels / columns))
    figure = Figure(figsize=(PANEL_INCHES * columns + 0.4, height * rows + 0.4), layout="constrained")
    axes = np.atleast_1d(figure.subplots(rows, columns, squeeze=False)).ravel().tolist()
    for extra in axes[n_panels:]:
        extra.set_visible(False)
    return figure, axes[:n_panels]


def _matrix_panel(axes, title: str, matrix: np.ndarray, row_labels, column_labels, fmt: str, vmin, vmax, cmap: str):
    image = axes.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax)
    axes.set_title(title, fontsize=9)
    axes.set_xticks(range(len(column_labels)), column_labels, rotation=45, ha="right", fontsize=7)
    axes.set_yticks(range(len(row_labels)), row_labels, fontsize=7)
    middle = (np.nanmin(matrix) + np.nanmax(matrix)) / 2 if np.isfinite(matrix).any() else 0
    for (i, j), value in np.ndenumerate(matrix):
        text = "-" if not np.isfinite(value) else format(value, fmt)
        colour = "white" if np.isfinite(value) and value > middle else "black"
        axes.text(j, i, text, ha="center", va="center", fontsize=7, color=colour)
    return image


def confusion_figure(panels: Sequence[tuple[str, Sequence[str], np.ndarray]], columns: int = 4) -> Figure:
    """One confusion matrix per panel: ``(title, labels, counts truth x answer)``."""
    figure, axes = _grid(len(panels), columns)
    for ax, (title, labels, matrix) in zip(axes, panels):
        _matrix_panel(ax, title, np.asarray(matrix, dtype=float), labels, labels, ".0f", 0, None, "Blues")
        ax.set_xlabel("answer", fontsize=8)
        ax.set_ylabel("ground truth", fontsize=8)
    return figure


def roc_figure(panels: Sequence[tuple[str, Sequence[tuple[str, np.ndarray, np.ndarray, float]]]], columns: int = 3) -> Figure:
    """Empirical ROC curves: one panel per condition, one step line per reader ``(name, fpr, tpr, auc)``."""
    figure, axes = _grid(len(panels), columns)
    for ax, (title, curves) in zip(axes, panels):
        ax.plot([0, 1], [0, 1], linestyle=":", color="grey", linewidth=0.8)
        for name, fpr, tpr, auc in curves:
            ax.plot(fpr, tpr, linewidth=1.2, label=f"{name} ({auc:.3f})")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="1 - specificity", ylabel="sensitivity", aspect="equal")
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=6, loc="lower right", title="reader (AUC)", title_fontsize=6)
    return figure


def agreement_figure(panels: Sequence[tuple[str, Sequence[str], np.ndarray]], columns: int = 3) -> Figure:
    """Pairwise agreement matrices (e.g. Cohen's kappa), one panel ``(title, readers, matrix)`` each."""
    figure, axes = _grid(len(panels), columns)
    image = None
    for ax, (title, readers, matrix) in zip(axes, panels):
        image = _matrix_panel(ax, title, np.asarray(matrix, dtype=float), readers, readers, ".2f", -1, 1, "RdBu")
    if image is not None:
        figure.colorbar(image, ax=axes, shrink=0.7, label="Cohen's kappa")
    return figure


def interval_figure(rows: Sequence[tuple[str, float, float | None, float | None]], xlabel: str,
                    reference: float | None = None, xlim: tuple[float, float] | None = None) -> Figure:
    """A forest plot: one estimate with its interval per row ``(label, estimate, low, high)``."""
    figure = Figure(figsize=(6.4, 0.9 + 0.32 * max(len(rows), 1)), layout="constrained")
    ax = figure.subplots()
    positions = np.arange(len(rows))[::-1]
    for y, (_, estimate, low, high) in zip(positions, rows):
        if low is not None and high is not None and np.isfinite([low, high]).all():
            ax.plot([low, high], [y, y], color="tab:blue", linewidth=1.5)
        ax.plot([estimate], [y], marker="o", color="tab:blue", markersize=4)
    if reference is not None:
        ax.axvline(reference, color="grey", linestyle=":", linewidth=0.8)
    ax.set_yticks(positions, [label for label, *_ in rows], fontsize=7)
    ax.set_xlabel(xlabel, fontsize=8)
    if xlim is not None:
        ax.set_xlim(*xlim)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    return figure


def auc_figure(conditions: Sequence[str], readers: Sequence[str], auc: np.ndarray,
               means: Sequence[tuple[float, float, float]]) -> Figure:
    """Each reader's AUC per condition (one line per reader) and the reader-averaged AUC with its CI."""
    figure = Figure(figsize=(6.4, 3.6), layout="constrained")
    ax = figure.subplots()
    x = np.arange(len(conditions))
    for j, reader in enumerate(readers):
        ax.plot(x, np.asarray(auc)[:, j], marker=".", linewidth=0.8, alpha=0.7, label=reader)
    estimates = np.array([m[0] for m in means])
    errors = np.array([[m[0] - m[1] for m in means], [m[2] - m[0] for m in means]])
    ax.errorbar(x + 0.08, estimates, yerr=errors, fmt="s", color="black", capsize=4, label="reader average (CI)")
    ax.set_xticks(x, conditions, fontsize=8)
    ax.set_xlim(-0.5, len(conditions) - 0.5)
    ax.set_ylabel("AUC")
    ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return figure


def distribution_figure(groups: Sequence[tuple[str, np.ndarray]], ylabel: str) -> Figure:
    """Box plots (median, IQR, 1.5 IQR whiskers) of one sample per group, with the points."""
    figure = Figure(figsize=(6.4, 3.4), layout="constrained")
    ax = figure.subplots()
    values = [np.asarray(v, dtype=float) for _, v in groups]
    ax.boxplot(values, showfliers=False)
    for k, sample in enumerate(values, start=1):
        jitter = np.linspace(-0.12, 0.12, sample.size) if sample.size > 1 else np.zeros(sample.size)
        ax.plot(k + jitter, sample, linestyle="none", marker=".", markersize=3, alpha=0.5, color="tab:blue")
    ax.set_xticks(range(1, len(groups) + 1), [name for name, _ in groups], fontsize=8)
    ax.set_ylabel(ylabel)
    return figure


def counts_figure(categories: Sequence[str], series: Sequence[tuple[str, Sequence[int]]], xlabel: str) -> Figure:
    """Grouped bars: how often each category was answered, one bar colour per series."""
    figure = Figure(figsize=(6.4, 3.4), layout="constrained")
    ax = figure.subplots()
    x = np.arange(len(categories))
    width = 0.8 / max(len(series), 1)
    for k, (name, counts) in enumerate(series):
        ax.bar(x + (k - (len(series) - 1) / 2) * width, counts, width, label=name)
    ax.set_xticks(x, [str(c) for c in categories], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("reads")
    ax.legend(fontsize=7)
    return figure


def figure_bytes(figure: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    """The figure encoded as PNG, SVG or PDF bytes."""
    if fmt not in FORMATS:
        raise StatsInputError(f"figure format {fmt!r} is not one of {', '.join(FORMATS)}")
    buffer = io.BytesIO()
    figure.savefig(buffer, format=fmt, dpi=dpi)
    return buffer.getvalue()
