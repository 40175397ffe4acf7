"""``ViewerState``: what the reader is looking at, the single source of truth of the viewer.

A plain object with psygnal signals and no Qt (napari's model/view split): widgets subscribe
to ``state.events.<name>`` and write back through the setters, which clamp and validate. Tests
drive it without a display.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

import numpy as np
from psygnal import Signal, SignalGroup

from engine.imaging.volume import ImageVolume
from engine.models.classes import finding_class
from ui.backend import AnnotationDraft, Analysis
from engine.imaging.render import COLORMAPS, OverlaySpec, colormap
from engine.explain.summary import MapRange, NormalisationScope, colour_range, map_range

RGB_CHANNEL = "RGB (colour)"  # the channel choice that shows an RGB volume's three channels as colour
Tool = Literal["navigate", "point", "box"]
TOOLS: tuple[Tool, ...] = ("navigate", "point", "box")
MapSource = Literal["cam", "probability"]  # the CAM, or a slide's tile-probability heatmap
MAP_SOURCES: tuple[MapSource, ...] = get_args(MapSource)
MapRole = Literal["main", "compare"]  # which analysis a view shows: the first, or the one compared
MAP_ROLES: tuple[MapRole, ...] = get_args(MapRole)
_MIN_WINDOW_WIDTH = 1e-6


class ViewerEvents(SignalGroup):
    """Signals of ``ViewerState``; each fires after the value changed, with the new value."""

    volume = Signal(object)  # ImageVolume | None; slice, window, analysis and draft reset with it
    channel = Signal(str)
    slice_index = Signal(int)
    window = Signal(float, float)  # centre, width
    analysis = Signal(object)  # Analysis | None; drops the comparison
    compare_analysis = Signal(object)  # Analysis | None: a second CAM method shown side by side
    overlay = Signal()  # visibility, opacity, class, normalisation, negatives or colour map
    tool = Signal(str)
    annotation_label = Signal(str)
    annotations = Signal(tuple)  # tuple[AnnotationDraft, ...]


class ViewerState:
    """The viewer's state: volume, channel, slice, window, CAM overlay, tool and drawn marks.

    Setters clamp to valid values (slice index into the volume, opacity into [0, 1], window
    width above zero) and raise ``ValueError`` for names that do not exist (channel, tool,
    normalisation scope, colour map). Each change fires its signal in ``events`` once.
    """

    def __init__(self) -> None:
        self.events = ViewerEvents()
        self._volume: ImageVolume | None = None
        self._channel = ""
        self._slice_index = 0
        self._window = (0.0, 1.0)
        self._analysis: Analysis | None = None
        self._compare_analysis: Analysis | None = None
        self._overlay_visible = True
        self._overlay_opacity = 0.6
        self._overlay_class = 0
        self._normalisation: NormalisationScope = "volume"
        self._show_negative = False
        self._colormap = "inferno"
        self._map_source: MapSource = "cam"
        self._tool: Tool = "navigate"
        self._annotation_label = ""
        self._annotations: tuple[AnnotationDraft, ...] = ()
        self._range_cache: dict[tuple, MapRange] = {}

    # -- image -------------------------------------------------------------------------------
    @property
    def volume(self) -> ImageVolume | None:
        return self._volume

    def set_volume(self, volume: ImageVolume | None, channel: str | None = None) -> None:
        """Show a new volume at its middle slice with its default window; drops the analysis
        and the drawn marks of the previous case.

        Args:
            volume: the volume, or None to show nothing.
            channel: channel to show; when None, ``RGB_CHANNEL`` for an RGB volume, else the
                first channel.
        """
        if volume is not None and channel is not None and channel not in channel_choices(volume):
            raise ValueError(f"no channel {channel!r}; channels are {channel_choices(volume)}")
        self._volume = volume
        self._analysis = None
        self._compare_analysis = None
        self._annotations = ()
        self._range_cache.clear()
        if volume is not None:
            self._channel = channel or channel_choices(volume)[0]
            self._slice_index = volume.n_slices // 2
            self._window = _valid_window(*volume.default_window())
        else:
            self._channel, self._slice_index = "", 0
        self.events.volume.emit(volume)
        self.events.channel.emit(self._channel)
        self.events.slice_index.emit(self._slice_index)
        self.events.window.emit(*self._window)
        self.events.analysis.emit(None)
        self.events.compare_analysis.emit(None)
        self.events.annotations.emit(())

    @property
    def channel(self) -> str:
        return self._channel

    @channel.setter
    def channel(self, name: str) -> None:
        available = channel_choices(self._volume)
        if name not in available:
            raise ValueError(f"no channel {name!r}; channels are {available}")
        if name != self._channel:
            self._channel = name
            self.events.channel.emit(name)

    @property
    def slice_index(self) -> int:
        return self._slice_index

    @slice_index.setter
    def slice_index(self, index: int) -> None:
        last = self._volume.n_slices - 1 if self._volume is not None else 0
        index = int(min(max(int(index), 0), last))
        if index != self._slice_index:
            self._slice_index = index
            self.events.slice_index.emit(index)

    def step_slice(self, delta: int) -> None:
        """Move ``delta`` slices (negative goes back), stopping at the first and last slice."""
        self.slice_index = self._slice_index + delta

    @property
    def window(self) -> tuple[float, float]:
        """``(centre, width)`` of the grey-level window."""
        return self._window

    @window.setter
    def window(self, centre_width: tuple[float, float]) -> None:
        window = _valid_window(*centre_width)
        if window != self._window:
            self._window = window
            self.events.window.emit(*window)

    def reset_window(self) -> None:
        """Back to the volume's default window (``ImageVolume.default_window``)."""
        if self._volume is not None:
            self.window = self._volume.default_window()

    def current_image(self) -> np.ndarray | None:
        """Pixels of the shown channel at the shown slice: ``(H, W)``, or ``(H, W, 3)`` when the
        channel is ``RGB_CHANNEL``; None without a volume."""
        if self._volume is None:
            return None
        if self._channel == RGB_CHANNEL:
            return np.moveaxis(self._volume.array[:, self._slice_index], 0, -1)
        return self._volume.channel(self._channel)[self._slice_index]

    # -- analysis and overlay ----------------------------------------------------------------
    @property
    def analysis(self) -> Analysis | None:
        return self._analysis

    def set_analysis(self, analysis: Analysis | None) -> None:
        """Show a model's output; its maps cover the volume's slices, on the volume's own grid or a
        coarser one over the same field of view (clips). Closes any comparison,
        which was made against the analysis replaced here.

        Raises:
            ValueError: the maps or probabilities do not match the volume or the class list.
        """
        if analysis is not None:
            _check_analysis(analysis, self._volume)
            self._overlay_class = finding_class(
                analysis.class_names, analysis.probabilities
            )
        had_comparison = self._compare_analysis is not None
        if analysis is None or analysis.probability_maps is None:
            self._map_source = "cam"
        self._analysis = analysis
        self._compare_analysis = None
        self._range_cache.clear()
        self.events.analysis.emit(analysis)
        if had_comparison:
            self.events.compare_analysis.emit(None)
        self.events.overlay.emit()

    @property
    def compare_analysis(self) -> Analysis | None:
        """A second analysis of the same case (another CAM method) shown beside the first."""
        return self._compare_analysis

    def set_compare_analysis(self, analysis: Analysis | None) -> None:
        """Open a side-by-side comparison with ``analysis``, or close it with None.

        Both views then follow the same slice, window, overlay class, opacity and normalisation
        scope; each map is normalised over its own values (methods differ in raw scale).

        Raises:
            ValueError: there is no first analysis, or the second does not fit the volume or
                has other classes than the first.
        """
        if analysis is not None:
            if self._analysis is None:
                raise ValueError("a comparison needs a first analysis to compare with")
            _check_analysis(analysis, self._volume)
            if tuple(analysis.class_names) != tuple(self._analysis.class_names):
                raise ValueError(f"classes {analysis.class_names} differ from the first "
                                 f"analysis's {self._analysis.class_names}")
        self._compare_analysis = analysis
        self._range_cache = {key: value for key, value in self._range_cache.items()
                             if key[0] == "main"}
        self.events.compare_analysis.emit(analysis)

    def analysis_for(self, role: MapRole) -> Analysis | None:
        """The first analysis (``"main"``) or the compared one (``"compare"``)."""
        if role not in MAP_ROLES:
            raise ValueError(f"no map role {role!r}; roles are {MAP_ROLES}")
        return self._analysis if role == "main" else self._compare_analysis

    @property
    def overlay_visible(self) -> bool:
        return self._overlay_visible

    @overlay_visible.setter
    def overlay_visible(self, visible: bool) -> None:
        self._set_overlay("_overlay_visible", bool(visible))

    def toggle_overlay(self) -> None:
        self.overlay_visible = not self._overlay_visible

    @property
    def overlay_opacity(self) -> float:
        return self._overlay_opacity

    @overlay_opacity.setter
    def overlay_opacity(self, opacity: float) -> None:
        if math.isnan(opacity):
            raise ValueError("overlay opacity must be a number in [0, 1]")
        self._set_overlay("_overlay_opacity", float(min(max(opacity, 0.0), 1.0)))

    @property
    def overlay_class(self) -> int:
        """Index of the class whose map is shown (and whose probability the strip plots)."""
        return self._overlay_class

    @overlay_class.setter
    def overlay_class(self, index: int) -> None:
        count = len(self._analysis.class_names) if self._analysis is not None else 1
        self._set_overlay("_overlay_class", int(min(max(int(index), 0), count - 1)))

    @property
    def map_source(self) -> MapSource:
        """What the overlay shows: the CAM, or (when the analysis has one) the tile probabilities."""
        return self._map_source

    @map_source.setter
    def map_source(self, source: MapSource) -> None:
        if source not in MAP_SOURCES:
            raise ValueError(f"map source must be one of {MAP_SOURCES}, got {source!r}")
        if source == "probability" and (self._analysis is None or self._analysis.probability_maps is None):
            raise ValueError("this analysis has no tile probabilities to show")
        self._set_overlay("_map_source", source)

    @property
    def normalisation(self) -> NormalisationScope:
        return self._normalisation

    @normalisation.setter
    def normalisation(self, scope: NormalisationScope) -> None:
        if scope not in ("volume", "slice", "study"):
            raise ValueError(f"normalisation must be 'volume', 'slice' or 'study', got {scope!r}")
        self._set_overlay("_normalisation", scope)

    @property
    def show_negative(self) -> bool:
        return self._show_negative

    @show_negative.setter
    def show_negative(self, show: bool) -> None:
        self._set_overlay("_show_negative", bool(show))

    @property
    def colormap(self) -> str:
        return self._colormap

    @colormap.setter
    def colormap(self, name: str) -> None:
        if name not in COLORMAPS:
            raise ValueError(f"no colour map {name!r}; choose from {sorted(COLORMAPS)}")
        self._set_overlay("_colormap", name)

    def _set_overlay(self, attribute: str, value: object) -> None:
        if getattr(self, attribute) != value:
            setattr(self, attribute, value)
            self.events.overlay.emit()

    def overlay_spec(self, role: MapRole = "main") -> OverlaySpec | None:
        """The map to blend over the shown slice, or None when hidden or not analysed.

        Args:
            role: ``"main"`` for the first analysis, ``"compare"`` for the compared one; both
                use the same class, opacity, colour map and normalisation scope, each
                normalised over its own map.
        """
        analysis = self.analysis_for(role)
        if analysis is None or not self._overlay_visible or self._volume is None:
            return None
        value_range = self.overlay_range(role)
        return OverlaySpec(
            saliency=self._shown_maps(analysis)[self._overlay_class][self._slice_index],
            value_range=value_range,
            lut=colormap(self._colormap),
            opacity=self._overlay_opacity,
        )

    def overlay_range(self, role: MapRole = "main") -> MapRange | None:
        """The raw map values that span the colour map for ``role`` at the shown slice."""
        analysis = self.analysis_for(role)
        if analysis is None:
            return None
        if self._map_source == "probability" and role == "main":
            return MapRange(0.0, 1.0)  # probabilities share one scale: a colour means the same everywhere
        if self._normalisation == "study" and analysis.study_ranges is not None:
            low, high = analysis.study_ranges[self._overlay_class]
            return colour_range(float(low), float(high), self._show_negative)
        slice_key = self._slice_index if self._normalisation == "slice" else -1
        scope = "slice" if self._normalisation == "slice" else "volume"  # study without ranges: volume
        key = (role, self._overlay_class, scope, slice_key, self._show_negative)
        if key not in self._range_cache:
            self._range_cache[key] = map_range(analysis.maps[self._overlay_class],
                                               self._slice_index, scope, self._show_negative)
        return self._range_cache[key]

    def _shown_maps(self, analysis: Analysis) -> np.ndarray:
        """The maps the overlay draws for ``analysis``: its CAMs or its tile probabilities."""
        if self._map_source == "probability" and analysis is self._analysis and analysis.probability_maps is not None:
            return analysis.probability_maps
        return analysis.maps

    def method_caption(self, role: MapRole) -> str:
        """The label a view prints on its image while comparing: method, class and how the map
        is normalised (over its own volume or slice, up to which raw value); "" otherwise."""
        analysis = self.analysis_for(role)
        if self._compare_analysis is None or analysis is None:
            return ""
        value_range = self.overlay_range(role)
        scope = {"slice": "this slice", "study": "its study's stored maps"}.get(self._normalisation, "its own volume")
        if self._normalisation == "study" and analysis.study_ranges is None:
            scope = "its own volume"
        return (f"{analysis.method} \u00b7 {analysis.class_names[self._overlay_class]}\n"
                f"normalised over {scope} (max {value_range.high:.3g})")

    def item_word(self) -> str:
        """What one step along the volume's second axis is called: "slice", "frame" or "image"."""
        kind = self._volume.kind if self._volume is not None else "volume"
        return {"clip": "frame", "image": "image", "slide": "view"}.get(kind, "slice")

    def current_probabilities(self) -> dict[str, float]:
        """Class name to probability at the shown slice; empty without an analysis."""
        if self._analysis is None:
            return {}
        row = self._analysis.probabilities[self._slice_index]
        return {name: float(p) for name, p in zip(self._analysis.class_names, row)}

    # -- drawing -----------------------------------------------------------------------------
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
    def annotation_label(self) -> str:
        """The label given to the next point or box."""
        return self._annotation_label

    @annotation_label.setter
    def annotation_label(self, label: str) -> None:
        if label != self._annotation_label:
            self._annotation_label = str(label)
            self.events.annotation_label.emit(self._annotation_label)

    @property
    def annotations(self) -> tuple[AnnotationDraft, ...]:
        """Points and boxes drawn on this case and not yet saved."""
        return self._annotations

    def add_point(self, row: float, col: float) -> AnnotationDraft:
        """Drop a point at image ``(row, col)`` of the shown slice, with the current label."""
        self._require_inside(row, col)
        point = AnnotationDraft("point", self._slice_index, ((row, col),), self._annotation_label)
        return self._append(point)

    def add_box(
        self, corner_a: tuple[float, float], corner_b: tuple[float, float]
    ) -> AnnotationDraft:
        """Draw a box between two image ``(row, col)`` corners, stored top-left then bottom-right."""
        for corner in (corner_a, corner_b):
            self._require_inside(*corner)
        top_left = (min(corner_a[0], corner_b[0]), min(corner_a[1], corner_b[1]))
        bottom_right = (max(corner_a[0], corner_b[0]), max(corner_a[1], corner_b[1]))
        corners = (top_left, bottom_right)
        return self._append(AnnotationDraft("box", self._slice_index, corners, self._annotation_label))

    def remove_annotation(self, index: int) -> None:
        if not 0 <= index < len(self._annotations):
            raise IndexError(f"no annotation {index}; there are {len(self._annotations)}")
        self._annotations = self._annotations[:index] + self._annotations[index + 1 :]
        self.events.annotations.emit(self._annotations)

    def relabel_annotation(self, index: int, label: str) -> None:
        old = self._annotations[index]
        if old.label != label:
            new = AnnotationDraft(old.kind, old.slice_index, old.points, label)
            self._annotations = self._annotations[:index] + (new,) + self._annotations[index + 1 :]
            self.events.annotations.emit(self._annotations)

    def clear_annotations(self) -> None:
        if self._annotations:
            self._annotations = ()
            self.events.annotations.emit(())

    def _append(self, draft: AnnotationDraft) -> AnnotationDraft:
        self._annotations = self._annotations + (draft,)
        self.events.annotations.emit(self._annotations)
        return draft

    def _require_inside(self, row: float, col: float) -> None:
        if self._volume is None:
            raise ValueError("no image is open to draw on")
        _, rows, cols = self._volume.shape
        if not (-0.5 <= row <= rows - 0.5 and -0.5 <= col <= cols - 0.5):
            raise ValueError(f"({row:.1f}, {col:.1f}) lies outside the {rows} x {cols} image")


def channel_choices(volume: ImageVolume | None) -> tuple[str, ...]:
    """The channels a reader can pick, the default first: ``RGB_CHANNEL`` then R, G and B for an
    RGB volume (``ImageVolume.is_rgb``), else the volume's channel names; empty without a volume."""
    if volume is None:
        return ()
    if volume.is_rgb:
        return (RGB_CHANNEL,) + volume.channel_names
    return volume.channel_names


def _valid_window(centre: float, width: float) -> tuple[float, float]:
    centre, width = float(centre), float(width)
    if not (math.isfinite(centre) and math.isfinite(width)):
        raise ValueError(f"window centre and width must be finite, got ({centre}, {width})")
    return centre, max(width, _MIN_WINDOW_WIDTH)


def _check_analysis(analysis: Analysis, volume: ImageVolume | None) -> None:
    if volume is None:
        raise ValueError("an analysis needs an open volume")
    classes = len(analysis.class_names)
    expected_maps = (classes, volume.n_slices)  # then (h, w): the image grid or a coarser one over it
    if analysis.maps.ndim != 4 or analysis.maps.shape[:2] != expected_maps or min(analysis.maps.shape[2:]) < 1:
        raise ValueError(f"CAM maps {analysis.maps.shape} do not match the volume {expected_maps + volume.shape[1:]}")
    tiles = analysis.probability_maps
    if tiles is not None and (tiles.ndim != 4 or tiles.shape[:2] != expected_maps or min(tiles.shape[2:]) < 1):
        raise ValueError(f"probability maps {tiles.shape} do not match the volume {expected_maps + volume.shape[1:]}")
    expected_probabilities = (volume.n_slices, classes)
    if analysis.probabilities.shape != expected_probabilities:
        raise ValueError(
            f"probabilities {analysis.probabilities.shape} do not match {expected_probabilities}"
        )
