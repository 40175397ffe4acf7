"""``OverlayModel``: the analysis shown over the image and how its map is drawn.

It holds the model's output (and up to three more CAM methods', while comparing) and the look of the
overlay: visibility, opacity, shown class, map source, normalisation scope, negative values and
colour map. Each has its own event carrying the new value (``overlay.events.opacity(float)``,
``overlay.events.visible(bool)``, ...), fired once and only when the value changed. No Qt.

The overlay belongs to the shown volume: it checks analyses against ``DisplayModel.volume``,
draws at ``DisplayModel.slice_index``, and drops its analyses when the volume changes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np
from psygnal import Signal, SignalGroup

from engine.explain.names import display_name
from engine.explain.summary import MapRange, NormalisationScope, colour_range, map_range
from engine.imaging.render import COLORMAPS, OverlaySpec, colormap
from engine.imaging.volume import ImageVolume
from engine.models.classes import finding_class
from ui.backend import Analysis
from ui.model.display import DisplayModel
from ui.model.map_check import map_verdict

MapSource = Literal["cam", "probability"]  # the CAM, or a slide's tile-probability heatmap
MAP_SOURCES: tuple[MapSource, ...] = get_args(MapSource)
# Which analysis a view shows: the first, or the first, second or third compared with it.
MapRole = Literal["main", "compare", "compare2", "compare3"]
MAP_ROLES: tuple[MapRole, ...] = get_args(MapRole)
#: The most methods shown at once (the first analysis and three compared): a 2 x 2 grid.
MAX_METHODS = len(MAP_ROLES)
NORMALISATION_SCOPES: tuple[NormalisationScope, ...] = ("volume", "slice", "study")


def default_colormap(volume: ImageVolume) -> str:
    """The colour map a case starts with until the reader picks one.

    Over H&E microscopy (modality "SM": pink and purple stains) inferno's purples and reds vanish
    into the tissue; viridis' teals, greens and yellows stand out on it. Grey images keep
    inferno, whose dark-to-bright ramp reads as "more" on any grey level.
    """
    return "viridis" if volume.modality == "SM" else "inferno"


class OverlayEvents(SignalGroup):
    """Signals of ``OverlayModel``, each with the new value."""

    analysis = Signal(object)  # Analysis | None; drops the comparison
    compared = Signal(object)  # tuple[Analysis, ...]: the methods shown beside the first, in view order
    compare_analysis = Signal(object)  # Analysis | None: the first of them (a pairwise comparison's other map)
    visible = Signal(bool)
    opacity = Signal(float)
    class_index = Signal(int)
    map_source = Signal(str)
    normalisation = Signal(str)
    show_negative = Signal(bool)
    colormap = Signal(str)
    threshold = Signal(float)
    contour = Signal(bool)
    map_checks = Signal(object)  # Mapping[(method, class index, item), quality report]


class OverlayModel:
    """The CAM overlay of the shown volume.

    Setters clamp (opacity into [0, 1], class index into the analysis's classes) and raise
    ``ValueError`` for names that do not exist (map source, normalisation scope, colour map).

    Args:
        display: the display model whose volume and slice the overlay covers.
    """

    def __init__(self, display: DisplayModel) -> None:
        self.events = OverlayEvents()
        self._display = display
        self._analysis: Analysis | None = None
        self._compared: tuple[Analysis, ...] = ()
        self._visible = True
        self._opacity = 0.6
        self._class_index = 0
        self._map_source: MapSource = "cam"
        self._normalisation: NormalisationScope = "volume"
        self._show_negative = False
        self._colormap = "inferno"
        self._colormap_chosen = False  # True once the reader picks a colour map: it then stays
        self._threshold = 0.0
        self._contour = False
        self._range_cache: dict[tuple, MapRange] = {}
        self._map_checks: dict[tuple[str, int, int], dict] = {}
        # Before any widget hears of the new volume, the old case's maps are gone.
        display.events.volume.connect(self._on_volume, priority=1)

    # -- analyses ----------------------------------------------------------------------------
    @property
    def analysis(self) -> Analysis | None:
        return self._analysis

    def set_analysis(self, analysis: Analysis | None) -> None:
        """Show a model's output; its maps cover the volume's slices, on the volume's own grid or a
        coarser one over the same field of view (clips). Shows the class ``first_class`` picks
        (a verdict's winner, else the likeliest finding), and closes any comparison, which was
        made against the analysis replaced here.

        Raises:
            ValueError: the maps or probabilities do not match the volume or the class list.
        """
        if analysis is self._analysis:
            return
        if analysis is not None:
            _check_analysis(analysis, self._display.volume)
        self._replace(analysis)

    @property
    def compare_analysis(self) -> Analysis | None:
        """The first analysis compared with the first one (the right view of a pair), or None."""
        return self._compared[0] if self._compared else None

    @property
    def compared(self) -> tuple[Analysis, ...]:
        """The analyses of the same case (other CAM methods) shown beside the first, in view order."""
        return self._compared

    @property
    def shown_analyses(self) -> tuple[Analysis, ...]:
        """The first analysis and the compared ones, in view order (empty without an analysis)."""
        return () if self._analysis is None else (self._analysis, *self._compared)

    def set_compare_analysis(self, analysis: Analysis | None) -> None:
        """Compare the first analysis with ``analysis`` alone (side by side), or close the
        comparison with None. See ``set_compared``."""
        self.set_compared(() if analysis is None else (analysis,))

    def set_compared(self, analyses: Sequence[Analysis]) -> None:
        """Show ``analyses`` beside the first one (at most ``MAX_METHODS - 1``), in this order.

        Every view then follows the same slice, window, class, opacity, colour map, threshold and
        normalisation scope; each map is normalised over its own values (methods differ in raw
        scale).

        Raises:
            ValueError: there is no first analysis, too many analyses, a method shown twice, or an
                analysis that does not fit the volume or has other classes than the first.
        """
        analyses = tuple(analyses)
        if len(analyses) == len(self._compared) and all(a is b for a, b in zip(analyses, self._compared)):
            return
        if analyses:
            if self._analysis is None:
                raise ValueError("a comparison needs a first analysis to compare with")
            if len(analyses) > MAX_METHODS - 1:
                raise ValueError(f"at most {MAX_METHODS} methods are shown at once, not {len(analyses) + 1}")
            methods = [self._analysis.method, *(a.method for a in analyses)]
            if len(set(methods)) != len(methods):
                raise ValueError(f"a method is shown once: {', '.join(display_name(m) for m in methods)}")
            for analysis in analyses:
                _check_analysis(analysis, self._display.volume)
                if tuple(analysis.class_names) != tuple(self._analysis.class_names):
                    raise ValueError(f"classes {analysis.class_names} differ from the first "
                                     f"analysis's {self._analysis.class_names}")
        first_before = self.compare_analysis
        self._compared = analyses
        self._range_cache = {key: value for key, value in self._range_cache.items() if key[0] == "main"}
        new_checks = {(a.method, int(k), int(item)): report
                      for a in analyses for k, item, report in a.map_checks
                      if (a.method, int(k), int(item)) not in self._map_checks}
        self._map_checks.update(new_checks)
        self.events.compared.emit(analyses)
        if self.compare_analysis is not first_before:
            self.events.compare_analysis.emit(self.compare_analysis)
        if new_checks:
            self.events.map_checks.emit(dict(self._map_checks))

    def add_compared(self, analysis: Analysis) -> None:
        """Show ``analysis`` in the next free view. Raises ``ValueError`` as ``set_compared``."""
        self.set_compared((*self._compared, analysis))

    def remove_method(self, method: str) -> None:
        """Stop showing ``method``'s map. Removing the first analysis's method while others are
        compared makes the first compared one the first analysis (the same prediction, so the
        class shown and the map checks stay); the views close up either way.

        Raises:
            ValueError: ``method`` is not shown, or it is the only one shown.
        """
        shown = [a.method for a in self.shown_analyses]
        if method not in shown:
            raise ValueError(f"{display_name(method)} is not shown")
        if len(shown) == 1:
            raise ValueError(f"{display_name(method)} is the only map shown; analyse again to change it")
        if method != self._analysis.method:
            self.set_compared(tuple(a for a in self._compared if a.method != method))
            return
        promoted, rest = self._compared[0], self._compared[1:]
        self._compared = ()  # set without ceremony: the same case, the same prediction
        self._analysis = promoted
        self._range_cache.clear()
        self.events.analysis.emit(promoted)
        self.set_compared(rest)
        if not rest:  # set_compared saw no change; the views still must close up
            self.events.compared.emit(())
            self.events.compare_analysis.emit(None)

    def analysis_for(self, role: MapRole) -> Analysis | None:
        """The first analysis (``"main"``) or a compared one (``"compare"``, ``"compare2"``,
        ``"compare3"``: the first, second, third compared), None when that view is empty."""
        if role not in MAP_ROLES:
            raise ValueError(f"no map role {role!r}; roles are {MAP_ROLES}")
        if role == "main":
            return self._analysis
        index = MAP_ROLES.index(role) - 1
        return self._compared[index] if index < len(self._compared) else None

    def _on_volume(self, volume: ImageVolume | None) -> None:
        if self._analysis is not None or self._compared:
            self._replace(None)
        if volume is not None and not self._colormap_chosen:
            self._set("colormap", default_colormap(volume))

    def _replace(self, analysis: Analysis | None) -> None:
        """Swap the analysis, drop the comparison, then announce every value that changed."""
        had_comparison = bool(self._compared)
        before = (self._class_index, self._map_source)
        if analysis is not None:
            self._class_index = first_class(analysis)
        if analysis is None or analysis.probability_maps is None:
            self._map_source = "cam"
        self._analysis = analysis
        self._compared = ()
        self._range_cache.clear()
        had_checks = bool(self._map_checks)
        self._map_checks = {} if analysis is None else {
            (analysis.method, int(k), int(item)): report for k, item, report in analysis.map_checks}
        self.events.analysis.emit(analysis)
        if had_checks or self._map_checks:
            self.events.map_checks.emit(dict(self._map_checks))
        if had_comparison:
            self.events.compared.emit(())
            self.events.compare_analysis.emit(None)
        if self._class_index != before[0]:
            self.events.class_index.emit(self._class_index)
        if self._map_source != before[1]:
            self.events.map_source.emit(self._map_source)

    # -- map checks --------------------------------------------------------------------------
    def record_check(self, method: str, class_index: int, item: int, report: dict) -> None:
        """Keep the quality report of one map (method, class, slice) of the shown analyses, so the
        panels can warn whenever that map is on screen."""
        if self._analysis is None:
            raise ValueError("a map check needs the analysis it was made on")
        self._map_checks[(method, int(class_index), int(item))] = report
        self.events.map_checks.emit(dict(self._map_checks))

    def check_for(self, role: MapRole = "main") -> dict | None:
        """The quality report of the map on screen (``role``'s method, the shown class and slice),
        or None when that map was not checked."""
        analysis = self.analysis_for(role)
        if analysis is None:
            return None
        return self._map_checks.get((analysis.method, self._class_index, self._display.slice_index))

    # -- look --------------------------------------------------------------------------------
    @property
    def visible(self) -> bool:
        return self._visible

    @visible.setter
    def visible(self, visible: bool) -> None:
        self._set("visible", bool(visible))

    def toggle_visible(self) -> None:
        self.visible = not self._visible

    @property
    def opacity(self) -> float:
        return self._opacity

    @opacity.setter
    def opacity(self, opacity: float) -> None:
        if math.isnan(opacity):
            raise ValueError("overlay opacity must be a number in [0, 1]")
        self._set("opacity", float(min(max(opacity, 0.0), 1.0)))

    @property
    def class_index(self) -> int:
        """Index of the class whose map is shown (and whose probability the strip plots)."""
        return self._class_index

    @class_index.setter
    def class_index(self, index: int) -> None:
        count = len(self._analysis.class_names) if self._analysis is not None else 1
        self._set("class_index", int(min(max(int(index), 0), count - 1)))

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
        self._set("map_source", source)

    @property
    def normalisation(self) -> NormalisationScope:
        return self._normalisation

    @normalisation.setter
    def normalisation(self, scope: NormalisationScope) -> None:
        if scope not in NORMALISATION_SCOPES:
            raise ValueError(f"normalisation must be 'volume', 'slice' or 'study', got {scope!r}")
        self._set("normalisation", scope)

    @property
    def show_negative(self) -> bool:
        return self._show_negative

    @show_negative.setter
    def show_negative(self, show: bool) -> None:
        self._set("show_negative", bool(show))

    @property
    def colormap(self) -> str:
        return self._colormap

    @colormap.setter
    def colormap(self, name: str) -> None:
        if name not in COLORMAPS:
            raise ValueError(f"no colour map {name!r}; choose from {sorted(COLORMAPS)}")
        self._colormap_chosen = True
        self._set("colormap", name)

    @property
    def threshold(self) -> float:
        """Share of the colour range below which the map is hidden, in ``[0, 0.95]``."""
        return self._threshold

    @threshold.setter
    def threshold(self, share: float) -> None:
        if math.isnan(share):
            raise ValueError("overlay threshold must be a number in [0, 0.95]")
        self._set("threshold", float(min(max(share, 0.0), 0.95)))

    @property
    def contour(self) -> bool:
        """True to draw iso-lines of the map only, leaving the anatomy between them untouched."""
        return self._contour

    @contour.setter
    def contour(self, contour: bool) -> None:
        self._set("contour", bool(contour))

    def _set(self, name: str, value: object) -> None:
        """Store ``value`` in ``_<name>`` and fire ``events.<name>(value)`` when it changed."""
        if getattr(self, f"_{name}") != value:
            setattr(self, f"_{name}", value)
            getattr(self.events, name).emit(value)

    # -- what to draw ------------------------------------------------------------------------
    def spec(self, role: MapRole = "main") -> OverlaySpec | None:
        """The map to blend over the shown slice, or None when hidden or not analysed.

        Args:
            role: ``"main"`` for the first analysis, a compare role for a compared one; all
                use the same class, opacity, colour map and normalisation scope, each
                normalised over its own map.
        """
        analysis = self.analysis_for(role)
        if analysis is None or not self._visible or self._display.volume is None:
            return None
        return OverlaySpec(
            saliency=self._shown_maps(analysis)[self._class_index][self._display.slice_index],
            value_range=self.value_range(role),
            lut=colormap(self._colormap),
            opacity=self._opacity,
            threshold=self._threshold,
            contour=self._contour,
        )

    def value_range(self, role: MapRole = "main") -> MapRange | None:
        """The raw map values that span the colour map for ``role`` at the shown slice."""
        analysis = self.analysis_for(role)
        if analysis is None:
            return None
        if self._map_source == "probability" and role == "main":
            return MapRange(0.0, 1.0)  # probabilities share one scale: a colour means the same everywhere
        if self._normalisation == "study" and analysis.study_ranges is not None:
            low, high = analysis.study_ranges[self._class_index]
            return colour_range(float(low), float(high), self._show_negative)
        slice_index = self._display.slice_index
        scope = "slice" if self._normalisation == "slice" else "volume"  # study without ranges: volume
        key = (role, self._class_index, scope, slice_index if scope == "slice" else -1, self._show_negative)
        if key not in self._range_cache:
            self._range_cache[key] = map_range(analysis.maps[self._class_index], slice_index, scope,
                                               self._show_negative)
        return self._range_cache[key]

    def shown_maps(self, role: MapRole = "main") -> np.ndarray | None:
        """The ``(N, h, w)`` raw maps of the shown class and source for ``role`` (every slice: the
        three planes reslice them); None when not analysed."""
        analysis = self.analysis_for(role)
        return None if analysis is None else self._shown_maps(analysis)[self._class_index]

    def _shown_maps(self, analysis: Analysis) -> np.ndarray:
        """The maps the overlay draws for ``analysis``: its CAMs or its tile probabilities."""
        if self._map_source == "probability" and analysis is self._analysis and analysis.probability_maps is not None:
            return analysis.probability_maps
        return analysis.maps

    def scope_text(self, role: MapRole = "main") -> str:
        """How the colours were scaled, for the colour bar: "normalised over the volume", ..."""
        analysis = self.analysis_for(role)
        if analysis is None:
            return ""
        if self._map_source == "probability" and role == "main":
            return "tile probability, 0 to 1 on every slide"
        if self._normalisation == "study" and analysis.study_ranges is not None:
            return "normalised over every stored map of this model and method (study)"
        return "normalised over this slice" if self._normalisation == "slice" else "normalised over the whole volume"

    def method_caption(self, role: MapRole) -> str:
        """The label a view prints on its image while comparing: method and class, then how the
        map is normalised (over its own volume or slice, up to which raw value), then the verdict
        of its map check when the map on screen was checked; "" when not comparing."""
        analysis = self.analysis_for(role)
        if not self._compared or analysis is None:
            return ""
        value_range = self.value_range(role)
        scope = {"slice": "this slice", "study": "its study's stored maps"}.get(self._normalisation, "its own volume")
        if self._normalisation == "study" and analysis.study_ranges is None:
            scope = "its own volume"
        caption = (f"{display_name(analysis.method)} \u00b7 {analysis.class_names[self._class_index]}\n"
                   f"normalised over {scope} (max {value_range.high:.3g})")
        report = self.check_for(role)
        if report is not None:
            verdict = map_verdict(report)
            caption += f"\nmap check: {verdict.symbol} {verdict.level}"
        return caption

    def current_probabilities(self) -> dict[str, float]:
        """Class name to probability at the shown slice; empty without an analysis."""
        if self._analysis is None:
            return {}
        row = self._analysis.probabilities[self._display.slice_index]
        return {name: float(p) for name, p in zip(self._analysis.class_names, row)}


def first_class(analysis: Analysis) -> int:
    """The class whose map is shown first: the verdict's winner for a clip or a slide (the map
    then explains the answer the panel names), else the most likely finding on any slice
    (``engine.models.classes.finding_class``)."""
    if analysis.verdict is not None:
        return analysis.verdict.winner
    return finding_class(analysis.class_names, analysis.probabilities)


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
