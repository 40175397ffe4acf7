"""What ``analyse_case`` returns: a model's predictions on one case and every map asked for.

All arrays are numpy on the CPU; maps are raw and signed (no ReLU, no normalisation). The
dataclasses are frozen: ``add_methods`` returns a new ``CaseAnalysis`` holding the old maps and
the new ones.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

import numpy as np

from engine.analysis.uncertainty import Uncertainty
from engine.explain.stitch import ClipExplanation
from engine.imaging.tissue import Tile
from engine.models.classes import class_index
from engine.models.crop_box import CropBox
from engine.models.inference import StoredCapture
from engine.models.volume_box import VolumeBox

if TYPE_CHECKING:
    from engine.models.bundle import Bundle

#: Bytes of activations and gradients ``analyse_case`` keeps for later methods by default.
CAPTURE_BUDGET_BYTES = 512 * 2**20


@dataclass(frozen=True, eq=False)
class MapSet:
    """One CAM method's raw maps of a case, one per explained class.

    Attributes:
        method: the method's name ("gradcam", ...).
        score: what the maps explain: "logit" or "probability".
        classes: the explained class indices, in the order of ``maps``.
        maps: float32 ``(K', N, h, w)``: per class, one map per item of the analysed volume, on
            its grid or on a coarser grid over the same field of view (``max_map_side``). A slide's
            volume is its thumbnail (``N`` = 1), its maps stitched from tiles, NaN off tissue. A
            whole-volume model's one 3-D map is given on every slice (``N`` slices).
        params: JSON-ready, how the maps were made (stored with each map).
        key_frames: a clip's: per explained class, its ``ClipExplanation`` (key frames first).
        tile_maps: a slide's: ``(K', n_tiles, h, w)`` raw maps of each tile before stitching.
    """

    method: str
    score: str
    classes: tuple[int, ...]
    maps: np.ndarray
    params: dict
    key_frames: dict[int, ClipExplanation] = field(default_factory=dict)
    tile_maps: np.ndarray | None = None

    def of(self, class_index: int) -> np.ndarray:
        """``(N, h, w)`` maps of one explained class.

        Raises:
            KeyError: the class was not explained.
        """
        if class_index not in self.classes:
            raise KeyError(f"class {class_index} was not explained by {self.method} (explained: {list(self.classes)})")
        return self.maps[self.classes.index(class_index)]

    @property
    def key_items(self) -> dict[int, tuple[int, ...]]:
        """Per explained class, the items (frames) that matter most, most important first."""
        return {k: tuple(explanation.key_frames) for k, explanation in self.key_frames.items()}


@dataclass(frozen=True)
class CaseVerdict:
    """One answer for the whole case, pooled from its items (a clip's frames, a slide's tiles), or
    a whole-volume model's one answer.

    Attributes:
        probabilities: ``(K,)`` pooled class probabilities (a slide's: the share of its tissue
            tiles called each class, ``engine.analysis.slide_verdict``).
        rule: how they were pooled, e.g. "mean of the frame probabilities".
        label: what a reader is shown, e.g. "Clip verdict: mean of 120 frames", or the answer
            itself when the rule names it ("Slide: Adenocarcinoma in 10 of 48 tissue tiles (21%)").
        answer: the class the rule names when it is not simply the most probable pooled class
            (a slide's finding may be present in a minority of its tiles); None: the argmax.
        details: further figures in words, e.g. a slide's mean tile probability per class.
    """

    probabilities: np.ndarray
    rule: str
    label: str
    answer: int | None = None
    details: tuple[str, ...] = ()

    @property
    def class_index(self) -> int:
        """The verdict's class: ``answer``, else the most probable pooled class."""
        return int(np.argmax(self.probabilities)) if self.answer is None else int(self.answer)


@dataclass(frozen=True, eq=False)
class SlideDetails:
    """How a slide was cut into tiles and where each tile's answer lies on the thumbnail grid.

    Attributes:
        tiles: the tissue tiles read, in row order (rows of the analysis's probabilities).
        tile_boxes: ``(n, 4)`` int ``(row0, col0, rows, cols)`` of each tile in level-0 pixels.
        probability_maps: ``(K, 1, H, W)`` each grid pixel's tile probability; NaN off tissue tiles.
        grid_shape: ``(H, W)`` of the maps (the thumbnail's grid unless asked otherwise).
        slide_shape: ``(rows, cols)`` of level 0.
        level: the pyramid level tiles were read from.
        tile_mpp: microns per pixel of a tile as the model sees it (None: the slide gives no size).
        tile_size0: tile side in level-0 pixels.
    """

    tiles: tuple[Tile, ...]
    tile_boxes: np.ndarray
    probability_maps: np.ndarray
    grid_shape: tuple[int, int]
    slide_shape: tuple[int, int]
    level: int
    tile_mpp: float | None
    tile_size0: int

    @property
    def grid_downsample(self) -> float:
        """Level-0 pixels per grid pixel (columns)."""
        return self.slide_shape[1] / self.grid_shape[1]


@dataclass(frozen=True, eq=False)
class CaseAnalysis:
    """A bundle's predictions on one case and its raw maps, from one capture per batch.

    Attributes:
        bundle_name, bundle_version, weights_sha256: which model (its weights' hash).
        target_layer: the explained layer.
        calibrated: whether ``probabilities`` were temperature-scaled on held-out data.
        class_names: the ``K`` classes, in output order.
        kind: the analysed image's kind ("volume", "image", "clip" or "slide").
        item_axis: what a row of ``probabilities`` is: "slice", "frame", "patch", "tile", or
            "volume" for a model that reads the whole volume at once (one row).
        logits: ``(N, K)`` float32 raw network outputs, one row per item.
        probabilities: ``(N, K)`` float32, softmax of ``logits / temperature`` (``Bundle.predict``'s).
        maps: per method name, its ``MapSet`` (read-only).
        verdict: the pooled whole-case answer of a clip or a slide, or a whole-volume model's one
            row; None for item-wise images.
        crop_box: the window of each frame the network saw, or None for the whole frame.
        frame_times_ms: a clip's ``(N,)`` frame times from the first frame; else None.
        slide: a slide's tiling and tile probability maps; else None.
        volume_box: a whole-volume model's: the box of the volume it read; else None.
        notes: assumptions and costs a reviewer should know, one sentence each.
        source: the image's path.
        content_hash: the image's content hash (``ImageVolume.content_hash``), to match it again.
        score: the score asked for ("logit", "probability", or None: each method's default).
        max_map_side: the longest side maps were drawn at (None: the frame's own size).
        batch_size: items per forward pass.
        top_k: key frames named per explained class (clips).
        capture: the activations and per-class gradients at ``target_layer`` kept on the CPU, so
            that ``add_methods`` computes more gradient-family maps with no forward pass; None
            when none was asked for or it exceeded its memory budget (see ``notes``).
        uncertainty: how much the answers move under MC dropout or test-time augmentation
            (``engine.analysis.uncertainty``), with the case's answer judged in words; None when
            not asked for.
    """

    bundle_name: str
    bundle_version: str
    weights_sha256: str
    target_layer: str
    calibrated: bool
    class_names: tuple[str, ...]
    kind: str
    item_axis: str
    logits: np.ndarray
    probabilities: np.ndarray
    maps: Mapping[str, MapSet]
    verdict: CaseVerdict | None = None
    crop_box: CropBox | None = None
    frame_times_ms: np.ndarray | None = None
    slide: SlideDetails | None = None
    volume_box: VolumeBox | None = None
    notes: tuple[str, ...] = ()
    source: str = ""
    content_hash: str | None = None
    score: str | None = None
    max_map_side: int | None = None
    batch_size: int = 32
    top_k: int = 3
    capture: StoredCapture | None = None
    uncertainty: Uncertainty | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "maps", MappingProxyType(dict(self.maps)))  # frozen all the way down

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods whose maps this analysis holds, in the order they were made."""
        return tuple(self.maps)

    @property
    def explained_classes(self) -> tuple[int, ...]:
        """The classes the maps explain (those of the first method; every class if none)."""
        for map_set in self.maps.values():
            return map_set.classes
        return tuple(range(len(self.class_names)))

    @property
    def item_probabilities(self) -> np.ndarray:
        """``(n, K)`` probabilities per item of the analysed volume, as a viewer shows them beside
        the maps: the rows themselves, for a slide (whose rows are tiles and whose volume is
        its thumbnail) the slide verdict's tile shares as its one row, and for a whole-volume model its one row
        on every slice."""
        if self.slide is not None and self.verdict is not None:
            return np.asarray(self.verdict.probabilities, dtype=np.float32)[None, :]
        if self.volume_box is not None:
            return np.repeat(self.probabilities, self.volume_box.volume_shape[0], axis=0)
        return self.probabilities

    @property
    def probability_maps(self) -> np.ndarray | None:
        """A slide's ``(K, 1, H, W)`` tile probability per grid pixel; None for other kinds."""
        return None if self.slide is None else self.slide.probability_maps

    def class_to_show(self, wanted: str | None = None) -> int:
        """The class a user asked for (name or index as text), or the one a reviewer looks at first:
        a clip's or a slide's verdict class, else the most likely finding over the items
        (``engine.models.classes.finding_class``).

        Raises:
            engine.errors.SalienceError: ``wanted`` names no class of the model.
        """
        if wanted is None and self.kind in ("clip", "slide") and self.verdict is not None:
            return self.verdict.class_index
        rows = self.probabilities
        return class_index(self.class_names, wanted, rows if len(rows) else None)

    def top_tiles(self, class_index: int, count: int = 5) -> list[dict]:
        """A slide's ``count`` tiles most likely to show the class: level-0 box and probability.

        Raises:
            ValueError: the analysis is not of a slide.
        """
        if self.slide is None:
            raise ValueError(f"{self.source}: top tiles exist only for a whole slide")
        boxes, column = self.slide.tile_boxes, self.probabilities[:, class_index] if len(self.probabilities) else []
        order = np.argsort(-np.asarray(column), kind="stable")[:count]
        return [
            {"row0": int(boxes[i, 0]), "col0": int(boxes[i, 1]), "rows": int(boxes[i, 2]), "cols": int(boxes[i, 3]),
             "probability": float(column[i])}
            for i in order
        ]


def model_fields(bundle: "Bundle") -> dict:
    """The ``CaseAnalysis`` fields that say which model made it."""
    return {
        "bundle_name": bundle.name,
        "bundle_version": bundle.version,
        "weights_sha256": bundle.weights_sha256,
        "target_layer": bundle.target_layer,
        "calibrated": bundle.calibrated,
        "class_names": bundle.class_names,
    }
