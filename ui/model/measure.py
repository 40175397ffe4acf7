"""``MeasureModel``: the ruler and the ROI box on the shown slice, measured in millimetres.

Measurements are the reader's working tools, not part of the reading: one ruler and one ROI at a
time, dropped when the volume changes. Lengths and areas use the volume's in-plane spacing; ROI
statistics are of the shown channel's raw pixel values (``ui.model.geometry.roi_stats``). No Qt.
"""

from __future__ import annotations

from dataclasses import dataclass

from psygnal import Signal, SignalGroup

from ui.model.display import DisplayModel
from ui.model.geometry import Point, RoiStats, box_mask, distance_mm, roi_stats


@dataclass(frozen=True)
class Segment:
    """Two image points on one slice: a ruler's ends, or an ROI box's opposite corners."""

    slice_index: int
    start: Point
    end: Point


class MeasureEvents(SignalGroup):
    ruler = Signal(object)  # Segment | None
    roi = Signal(object)  # Segment | None


class MeasureModel:
    """The ruler and the ROI box of the shown volume.

    Args:
        display: the display model whose volume, channel and slice are measured.
    """

    def __init__(self, display: DisplayModel) -> None:
        self.events = MeasureEvents()
        self._display = display
        self._ruler: Segment | None = None
        self._roi: Segment | None = None
        display.events.volume.connect(lambda _volume: self.clear(), priority=1)

    @property
    def ruler(self) -> Segment | None:
        return self._ruler

    @property
    def roi(self) -> Segment | None:
        return self._roi

    def set_ruler(self, start: Point, end: Point) -> Segment:
        """Lay the ruler from ``start`` to ``end`` on the shown slice (points on the image)."""
        self._ruler = self._segment(start, end)
        self.events.ruler.emit(self._ruler)
        return self._ruler

    def set_roi(self, corner_a: Point, corner_b: Point) -> Segment:
        """Put the ROI box between two corners on the shown slice."""
        self._roi = self._segment(corner_a, corner_b)
        self.events.roi.emit(self._roi)
        return self._roi

    def clear(self) -> None:
        """Remove the ruler and the ROI."""
        if self._ruler is not None:
            self._ruler = None
            self.events.ruler.emit(None)
        if self._roi is not None:
            self._roi = None
            self.events.roi.emit(None)

    def _segment(self, start: Point, end: Point) -> Segment:
        for point in (start, end):
            self._display.require_inside(*point)
        return Segment(self._display.slice_index, tuple(map(float, start)), tuple(map(float, end)))

    def ruler_mm(self) -> float | None:
        """The ruler's length in millimetres; None without a ruler."""
        if self._ruler is None:
            return None
        return distance_mm(self._ruler.start, self._ruler.end, self._spacing())

    def roi_stats(self) -> RoiStats | None:
        """Statistics of the shown channel inside the ROI on the ROI's slice; None without one."""
        volume = self._display.volume
        if self._roi is None or volume is None:
            return None
        image = self._display.image_at(self._roi.slice_index)
        return roi_stats(image, box_mask(image.shape[:2], self._roi.start, self._roi.end), self._spacing())

    def _spacing(self) -> tuple[float, float]:
        _, dy, dx = self._display.volume.spacing
        return float(dy), float(dx)
