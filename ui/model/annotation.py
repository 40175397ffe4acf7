"""``AnnotationModel``: the drawing tool, the label of the next mark, and the unsaved marks.

Marks are drafts in image coordinates ``(slice, row, col)`` of the shown volume until the reading
is saved; a new volume drops them. Each change fires its event once with the new value. No Qt.
"""

from __future__ import annotations

from typing import Literal

from psygnal import Signal, SignalGroup

from engine.imaging.volume import ImageVolume
from ui.backend import AnnotationDraft
from ui.model.display import DisplayModel

Tool = Literal["navigate", "point", "box"]
TOOLS: tuple[Tool, ...] = ("navigate", "point", "box")


class AnnotationEvents(SignalGroup):
    """Signals of ``AnnotationModel``, each with the new value."""

    tool = Signal(str)
    label = Signal(str)
    drafts = Signal(tuple)  # tuple[AnnotationDraft, ...]


class AnnotationModel:
    """What the reader draws on the shown volume.

    Args:
        display: the display model whose volume and slice marks are drawn on.
    """

    def __init__(self, display: DisplayModel) -> None:
        self.events = AnnotationEvents()
        self._display = display
        self._tool: Tool = "navigate"
        self._label = ""
        self._drafts: tuple[AnnotationDraft, ...] = ()
        display.events.volume.connect(self._on_volume, priority=1)  # before widgets redraw

    @property
    def tool(self) -> Tool:
        return self._tool

    @tool.setter
    def tool(self, tool: Tool) -> None:
        if tool not in TOOLS:
            raise ValueError(f"no tool {tool!r}; tools are {TOOLS}")
        if tool != self._tool:
            self._tool = tool
            self.events.tool.emit(tool)

    @property
    def label(self) -> str:
        """The label given to the next point or box."""
        return self._label

    @label.setter
    def label(self, label: str) -> None:
        if label != self._label:
            self._label = str(label)
            self.events.label.emit(self._label)

    @property
    def drafts(self) -> tuple[AnnotationDraft, ...]:
        """Points and boxes drawn on this case and not yet saved."""
        return self._drafts

    def add_point(self, row: float, col: float) -> AnnotationDraft:
        """Drop a point at image ``(row, col)`` of the shown slice, with the current label.

        Raises:
            ValueError: no volume is shown, or the point lies outside the image.
        """
        self._display.require_inside(row, col)
        return self._append(AnnotationDraft("point", self._display.slice_index, ((row, col),), self._label))

    def add_box(self, corner_a: tuple[float, float], corner_b: tuple[float, float]) -> AnnotationDraft:
        """Draw a box between two image ``(row, col)`` corners, stored top-left then bottom-right.

        Raises:
            ValueError: no volume is shown, or a corner lies outside the image.
        """
        for corner in (corner_a, corner_b):
            self._display.require_inside(*corner)
        top_left = (min(corner_a[0], corner_b[0]), min(corner_a[1], corner_b[1]))
        bottom_right = (max(corner_a[0], corner_b[0]), max(corner_a[1], corner_b[1]))
        return self._append(AnnotationDraft("box", self._display.slice_index, (top_left, bottom_right), self._label))

    def remove(self, index: int) -> None:
        """Delete mark ``index``.

        Raises:
            IndexError: there is no such mark.
        """
        if not 0 <= index < len(self._drafts):
            raise IndexError(f"no annotation {index}; there are {len(self._drafts)}")
        self._publish(self._drafts[:index] + self._drafts[index + 1:])

    def relabel(self, index: int, label: str) -> None:
        """Give mark ``index`` another label."""
        old = self._drafts[index]
        if old.label != label:
            new = AnnotationDraft(old.kind, old.slice_index, old.points, label)
            self._publish(self._drafts[:index] + (new,) + self._drafts[index + 1:])

    def clear(self) -> None:
        """Delete every mark (after saving, or when the reader discards them)."""
        if self._drafts:
            self._publish(())

    def _append(self, draft: AnnotationDraft) -> AnnotationDraft:
        self._publish(self._drafts + (draft,))
        return draft

    def _publish(self, drafts: tuple[AnnotationDraft, ...]) -> None:
        self._drafts = drafts
        self.events.drafts.emit(drafts)

    def _on_volume(self, _volume: ImageVolume | None) -> None:
        self.clear()
