"""A whole-slide image through a patch classifier: tissue tiles, tile probabilities, a slide score
and stitched class-activation maps on the thumbnail grid the viewer shows.

Tiles are cut where ``engine.imaging.tissue`` finds tissue, at the magnification the bundle was
trained at (``metadata["slide"]["tile_mpp"]``, overridable). Each batch of tiles is ONE
``CamCapture``: its forward pass gives the tile logits (hence probabilities) and its partial
backward the gradients every gradient-family CAM method needs. The slide score of a class is the
mean tile probability over tissue tiles (the ``SlideScore(k, reduce="mean", score="probability")``
convention); tile maps are put back in slide coordinates with ``stitch_tiles``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from engine.errors import BundleError
from engine.imaging.slide import THUMBNAIL_SIZE, SlideReader
from engine.imaging.tissue import Tile, detect_tissue, read_tile, tile_grid
from engine.models.bundle import Bundle
from engine.models.inference import batches, capture_maps, method_names, perturb_items, predict_items
from engine.models.task_registry import task_spec
from engine.progress import NullProgress, Progress, ScaledProgress, check_cancelled

#: Used when a bundle's metadata has no ``slide`` section: LC25000-like 224-px patches at 0.5 um/px.
DEFAULT_TILE_SIZE = 224
DEFAULT_TILE_MPP = 0.5
DEFAULT_MIN_TISSUE = 0.25


@dataclass
class SlideAnalysis:
    """What a classifier says about a slide, tile by tile and as a whole.

    Attributes:
        tiles: the tissue tiles read, in row order (``engine.imaging.tissue.Tile``).
        tile_boxes: ``(n, 4)`` int ``(row0, col0, rows, cols)`` of each tile in level-0 pixels.
        tile_probabilities: ``(n, K)`` calibrated class probabilities per tile.
        class_names: the ``K`` class names.
        slide_scores: ``(K,)`` mean tile probability per class (NaN when there are no tiles).
        classes: the class indices the maps explain, in the order of ``maps``.
        maps: ``(K', H, W)`` raw signed stitched CAMs on the grid; NaN where no tile lies.
        probability_maps: ``(K, H, W)`` each pixel's tile probability; NaN off tissue tiles.
        tile_maps: ``(K', n, h, w)`` raw maps of each tile at the target layer's resolution.
        method: the CAM method.
        layer: the explained layer.
        grid_downsample: level-0 pixels per grid pixel (columns).
        level: the pyramid level tiles were read from.
        tile_mpp: microns per pixel of a tile as the model sees it (None: the slide gives no size).
        tile_size0: tile side in level-0 pixels.
        notes: assumptions made (e.g. an unknown pixel size).
    """

    tiles: list[Tile]
    tile_boxes: np.ndarray
    tile_probabilities: np.ndarray
    class_names: tuple[str, ...]
    slide_scores: np.ndarray
    classes: list[int]
    maps: np.ndarray
    probability_maps: np.ndarray
    tile_maps: np.ndarray
    method: str
    layer: str
    grid_downsample: float
    level: int
    tile_mpp: float | None
    tile_size0: int
    notes: list[str] = field(default_factory=list)

    def top_tiles(self, k: int, count: int = 5) -> list[dict]:
        """The ``count`` tiles most likely to show class ``k``: level-0 box and probability."""
        order = np.argsort(-self.tile_probabilities[:, k], kind="stable")[:count] if len(self.tiles) else []
        return [
            {"row0": int(self.tile_boxes[i, 0]), "col0": int(self.tile_boxes[i, 1]), "rows": int(self.tile_boxes[i, 2]),
             "cols": int(self.tile_boxes[i, 3]), "probability": float(self.tile_probabilities[i, k])}
            for i in order
        ]


def thumbnail_grid(slide: SlideReader, max_size: int = THUMBNAIL_SIZE) -> tuple[int, int]:
    """``(rows, cols)`` of the thumbnail ``read_slide`` makes of this slide (same rounding)."""
    width0, height0 = slide.dimensions[0]
    downsample = max(1.0, max(width0, height0) / max_size)
    return max(1, round(height0 / downsample)), max(1, round(width0 / downsample))


def plan_tiles(slide: SlideReader, tile_size: int, tile_mpp: float) -> tuple[dict, float | None, list[str]]:
    """How to cut tiles that show what a ``tile_size`` patch at ``tile_mpp`` showed in training.

    Returns:
        ``(tile_grid keyword arguments, the tile's microns per pixel or None, notes)``.
    """
    if slide.mpp is None:
        note = f"slide has no pixel size: {tile_size}-px tiles read at level 0, assumed to be {tile_mpp} um/px"
        return {"tile_size": tile_size, "level": 0}, None, [note]
    if tile_mpp >= slide.mpp[0] * (1 - 1e-3):
        return {"tile_size": tile_size, "target_mpp": tile_mpp}, tile_mpp, []
    # The slide is coarser than the training patches: cover the same area at level 0, enlarge later.
    size0 = max(8, round(tile_size * tile_mpp / slide.mpp[0]))
    note = f"slide ({slide.mpp[0]:.3f} um/px) is coarser than {tile_mpp} um/px: {size0}-px level-0 tiles enlarged"
    return {"tile_size": size0, "level": 0}, tile_mpp, [note]


def _fit(heatmap: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Crop or NaN-pad a ``(..., h, w)`` heatmap to ``shape`` (rounding differs by a pixel at most)."""
    out = np.full(heatmap.shape[:-2] + tuple(shape), np.nan, dtype=np.float32)
    rows, cols = min(shape[0], heatmap.shape[-2]), min(shape[1], heatmap.shape[-1])
    out[..., :rows, :cols] = heatmap[..., :rows, :cols]
    return out


def _stitch(boxes: np.ndarray, tile_values: np.ndarray, slide_shape: tuple[int, int], grid: tuple[int, int]) -> np.ndarray:
    """``(K, H, W)`` heatmaps from ``(K, n, h, w)`` tile maps placed at ``boxes``."""
    from engine.explain.stitch import stitch_tiles

    downsample = slide_shape[1] / grid[1]
    size = (int(boxes[0, 2]), int(boxes[0, 3])) if len(boxes) else 1
    stitched = [
        stitch_tiles([(int(b[0]), int(b[1]), m) for b, m in zip(boxes, per_class)], slide_shape, size, downsample=downsample)
        for per_class in tile_values
    ]
    return _fit(np.stack(stitched), grid) if stitched else np.zeros((0,) + tuple(grid), np.float32)


def _explain_batch(bundle: Bundle, inputs: torch.Tensor, method: str, classes: list[int], progress: Progress,
                   score: str | None = None):
    """Logits ``(b, K)`` and raw maps ``(K', b, h, w)`` of one batch of tiles."""
    from engine.explain import METHODS

    if method in METHODS:
        logits, maps = capture_maps(bundle.network, inputs, bundle.target_layer, method, classes, score)
        return logits.float().numpy(), maps.float().numpy()
    from engine.explain.perturbation import PERTURBATION_METHODS

    logits, _ = predict_items(bundle.network, inputs, batch_size=len(inputs))
    maps = perturb_items(bundle.network, inputs, bundle.target_layer, PERTURBATION_METHODS[method], classes,
                         tuple(bundle.input_size), len(inputs), progress, score)
    return logits, maps


def analyse_slide(
    bundle: Bundle,
    path: str | Path,
    method: str = "gradcam",
    classes: Sequence[int] | None = None,
    progress: Progress | None = None,
    grid_shape: tuple[int, int] | None = None,
    tile_mpp: float | None = None,
    batch_size: int = 32,
    score: str | None = None,
) -> SlideAnalysis:
    """Classify and explain every tissue tile of a slide and stitch the results.

    Args:
        bundle: a patch classifier (histopathology task) from ``load_bundle``.
        path: the slide file (any pyramid ``SlideReader`` opens).
        method: a CAM method (``engine.models.inference.method_names()``).
        classes: class indices to explain; None means every class.
        progress: told after each batch of tiles; cancellation raises ``engine.progress.Cancelled``.
        grid_shape: ``(H, W)`` of the maps; None means the thumbnail grid ``read_slide`` makes.
        tile_mpp: microns per pixel the model's patches are taken to have; None means the
            bundle's ``slide.tile_mpp`` (an assumption for LC25000, see the model card).
        batch_size: tiles per capture.
        score: "logit" (the default for gradient methods) or "probability"; the slide score is
            the mean tile probability, so "probability" maps explain it tile by tile.

    Returns:
        A ``SlideAnalysis``.

    Raises:
        ValueError: unknown method or class index.
        engine.errors.ImageReadError: the file is not a readable slide.
    """
    if method not in method_names():
        raise ValueError(f"unknown CAM method {method!r}; available: {method_names()}")
    k_all = len(bundle.class_names)
    chosen = list(range(k_all)) if classes is None else [int(c) for c in classes]
    if any(not 0 <= c < k_all for c in chosen):
        raise ValueError(f"class indices {chosen} out of range for {k_all} classes")
    progress = progress or NullProgress()
    settings = bundle.metadata.get("slide", {})
    tile_size = int(settings.get("tile_size", DEFAULT_TILE_SIZE))
    wanted_mpp = float(tile_mpp if tile_mpp is not None else settings.get("tile_mpp", DEFAULT_TILE_MPP))
    spec = task_spec(bundle.task)
    if spec.prepare_tiles is None:
        raise BundleError(bundle.name, f"a {bundle.task} model does not read slide tiles")
    prepare_tiles = spec.prepare_tiles
    parameters = {k: v for k, v in bundle.metadata["preprocessing"].items() if k in spec.parameters}
    with SlideReader(path) as slide:
        grid = tuple(grid_shape) if grid_shape is not None else thumbnail_grid(slide)
        progress.report(0.0, "finding tissue")
        check_cancelled(progress)
        plan, used_mpp, notes = plan_tiles(slide, tile_size, wanted_mpp)
        tiles = tile_grid(slide, tissue=detect_tissue(slide),
                          min_tissue_fraction=float(settings.get("min_tissue_fraction", DEFAULT_MIN_TISSUE)), **plan)
        boxes = np.array([t.footprint(slide) for t in tiles], dtype=np.int64).reshape(-1, 4)
        logits, maps = [], []
        chunks = batches(len(tiles), batch_size)
        for done, chunk in enumerate(chunks, start=1):
            check_cancelled(progress)
            rgb = np.stack([read_tile(slide, tiles[i]) for i in chunk])
            inputs = prepare_tiles(rgb, bundle.input_size, **parameters)
            sub = ScaledProgress(progress, 0.05 + 0.9 * (done - 1) / len(chunks), 0.05 + 0.9 * done / len(chunks))
            batch_logits, batch_maps = _explain_batch(bundle, inputs, method, chosen, sub, score)
            logits.append(batch_logits)
            maps.append(batch_maps)
            progress.report(0.05 + 0.9 * done / len(chunks), f"explained {chunk.stop} of {len(tiles)} tiles")
        slide_shape = (slide.dimensions[0][1], slide.dimensions[0][0])
        level = tiles[0].level if tiles else int(plan.get("level", 0))
        tile_size0 = int(boxes[0, 2]) if len(boxes) else int(round(plan["tile_size"]))
    raw_logits = np.concatenate(logits) if logits else np.zeros((0, k_all), np.float32)
    probabilities = torch.softmax(torch.from_numpy(raw_logits) / bundle.temperature, dim=1).numpy()
    tile_maps = np.concatenate(maps, axis=1) if maps else np.zeros((len(chosen), 0, 1, 1), np.float32)
    scores = probabilities.mean(axis=0) if len(tiles) else np.full(k_all, math.nan)
    probability_tiles = probabilities.T[:, :, None, None]  # (K, n, 1, 1): one value per tile
    if not tiles:
        notes = notes + ["no tissue tiles found"]
    result = SlideAnalysis(
        tiles=list(tiles),
        tile_boxes=boxes,
        tile_probabilities=probabilities.astype(np.float32),
        class_names=bundle.class_names,
        slide_scores=np.asarray(scores, dtype=np.float32),
        classes=chosen,
        maps=_stitch(boxes, tile_maps, slide_shape, grid) if tiles else np.full((len(chosen),) + grid, np.nan, np.float32),
        probability_maps=_stitch(boxes, probability_tiles, slide_shape, grid) if tiles else np.full((k_all,) + grid, np.nan, np.float32),
        tile_maps=tile_maps.astype(np.float32),
        method=method,
        layer=bundle.target_layer,
        grid_downsample=slide_shape[1] / grid[1],
        level=level,
        tile_mpp=used_mpp,
        tile_size0=tile_size0,
        notes=notes,
    )
    progress.report(1.0, f"{len(tiles)} tissue tiles")
    return result
