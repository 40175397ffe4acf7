"""Drawing label masks and the brush cursor on a ``SliceView`` (kept apart so the view's own
code stays about geometry and input).

Masks are drawn under the other marks, each label semi-transparent in its colour
(``ui.model.label_mask``): first the saved reading's on show, fainter, then the drafts with the
stroke under way. The brush cursor is a circle of the brush radius in image pixels, so it grows
and shrinks with the zoom.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen

from ui.model.label_mask import MASK_ALPHA, mask_rgba

#: Opacity of a saved reading's masks (fainter than the drafts, as its marks are dashed).
SAVED_MASK_ALPHA = 70
BRUSH_CURSOR_COLOUR = QColor(255, 255, 255)


def draw_label_masks(painter: QPainter, view) -> None:
    """Draw the masks of ``view``'s shown slice over its image rectangle (pixels kept square)."""
    annotation, here = view.annotation, view.display.slice_index
    painter.save()
    painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
    for saved, alpha in ((True, SAVED_MASK_ALPHA), (False, MASK_ALPHA)):
        labels = annotation.mask_layer(here, saved=saved)
        if labels.any():
            rgba = np.ascontiguousarray(mask_rgba(labels, alpha))
            rows, cols = labels.shape
            image = QImage(rgba.data, cols, rows, 4 * cols, QImage.Format.Format_RGBA8888_Premultiplied)
            painter.drawImage(view.image_rect(), image)
    painter.restore()


def draw_brush_cursor(painter: QPainter, view, centre: tuple[float, float]) -> None:
    """A circle of the brush radius (image pixels) about image ``centre``."""
    radius = view.annotation.brush_radius
    middle = view.image_to_widget(*centre)
    corner = view.image_to_widget(centre[0] + radius, centre[1] + radius)
    painter.save()
    painter.setPen(QPen(BRUSH_CURSOR_COLOUR, 2.0, Qt.PenStyle.DotLine if view.annotation.tool == "eraser"
                        else Qt.PenStyle.SolidLine))
    painter.setBrush(Qt.BrushStyle.NoBrush)
    painter.drawEllipse(QRectF(middle - (corner - middle), corner))
    painter.restore()
