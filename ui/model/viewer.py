"""``ViewerState``: the viewer's models composed, the one object every widget is given.

napari's split: the state is plain Python objects with psygnal events (no Qt, no torch); Qt
widgets subscribe to the events of the part they show and write back through its setters.
"""

from __future__ import annotations

from ui.model.annotation import AnnotationModel
from ui.model.display import DisplayModel
from ui.model.measure import MeasureModel
from ui.model.overlay import OverlayModel
from ui.model.planes import PlanesModel


class ViewerState:
    """What the reader is looking at, the single source of truth of the viewer.

    Attributes:
        display: volume, channel, slice index, grey-level window and inversion.
        overlay: the analysis (and the compared one) and how its map is drawn; it follows
            ``display`` (a new volume drops the analyses).
        annotation: drawing tool, label, the unsaved marks and their undo history, the marks of a
            saved reading shown again; a new volume drops the marks.
        measure: the ruler and the ROI box; a new volume drops them.
        planes: the 3-D cursor of the three linked planes (its slice is ``display``'s) and
            whether they are shown.
    """

    __slots__ = ("display", "overlay", "annotation", "measure", "planes")  # a stale ``state.slice_index = 3`` fails loudly

    def __init__(self) -> None:
        self.display = DisplayModel()
        self.overlay = OverlayModel(self.display)
        self.annotation = AnnotationModel(self.display)
        self.measure = MeasureModel(self.display)
        self.planes = PlanesModel(self.display, self.overlay)
