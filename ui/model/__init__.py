"""Qt-free viewer models with specific events; ``ui`` widgets follow them.

``ViewerState`` composes ``DisplayModel`` (volume, channel, slice, window), ``OverlayModel``
(analysis, comparison, map checks and the look of the map), ``AnnotationModel`` (tool, label,
drafts with undo, a saved reading's marks), ``MeasureModel`` (ruler, ROI) and ``PlanesModel``
(the 3-D cursor of the three linked planes).
Nothing here imports PySide6 or torch (an import-linter contract and a test check it).
"""

from ui.model.annotation import MARK_TOOLS, PAINT_TOOLS, TOOLS, AnnotationModel, Tool
from ui.model.display import RGB_CHANNEL, WINDOW_PRESETS, DisplayModel, channel_choices
from ui.model.measure import MeasureModel, Segment
from ui.model.overlay import MAP_ROLES, MAP_SOURCES, MAX_METHODS, MapRole, MapSource, OverlayModel
from ui.model.planes import PLANES, Plane, PlanesModel
from ui.model.viewer import ViewerState

__all__ = [
    "MAP_ROLES", "MAP_SOURCES", "MARK_TOOLS", "MAX_METHODS", "PAINT_TOOLS", "PLANES", "RGB_CHANNEL", "TOOLS",
    "WINDOW_PRESETS", "AnnotationModel", "DisplayModel", "MapRole", "MapSource", "MeasureModel", "OverlayModel", "Plane",
    "PlanesModel", "Segment", "Tool", "ViewerState", "channel_choices",
]
