"""Qt-free viewer models with specific events; ``ui`` widgets follow them.

``ViewerState`` composes ``DisplayModel`` (volume, channel, slice, window), ``OverlayModel``
(analysis, comparison and the look of the map) and ``AnnotationModel`` (tool, label, drafts).
Nothing here imports PySide6 or torch (an import-linter contract and a test check it).
"""

from ui.model.annotation import TOOLS, AnnotationModel, Tool
from ui.model.display import RGB_CHANNEL, DisplayModel, channel_choices
from ui.model.overlay import MAP_ROLES, MAP_SOURCES, MapRole, MapSource, OverlayModel
from ui.model.viewer import ViewerState

__all__ = [
    "MAP_ROLES", "MAP_SOURCES", "RGB_CHANNEL", "TOOLS", "AnnotationModel", "DisplayModel", "MapRole",
    "MapSource", "OverlayModel", "Tool", "ViewerState", "channel_choices",
]
