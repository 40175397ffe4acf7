"""A whole-slide image through a patch classifier: tissue tiles, tile probabilities, a slide verdict
and stitched class-activation maps on the thumbnail grid the viewer shows.

Tiles are cut where ``engine.imaging.tissue`` finds tissue, at the magnification the bundle was
trained at (``metadata["slide"]["tile_mpp"]``, overridable). Each batch of tiles is ONE
``CamCapture``: its forward pass gives the tile logits (hence probabilities) and its partial
backward the gradients every gradient-family CAM method needs. Perturbation methods read the
tiles again and run their own forward passes. The slide's verdict is a finding present in
enough tissue tiles (``engine.analysis.slide_verdict``: tumour burden, not the mean tile
probability, which lets benign tissue hide a focal tumour); tile maps are put back in slide
coordinates with ``stitch_tiles``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from engine.analysis.items import CAPTURE_SHARE, over_budget_note, plan_added, split_methods
from engine.analysis.result import CaseAnalysis, MapSet, SlideDetails, model_fields
from engine.analysis.slide_verdict import sample_calls, slide_verdict
from engine.analysis.uncertainty import DEFAULT_SAMPLES, PROGRESS_SHARE, estimate_uncertainty
from engine.errors import BundleError
from engine.imaging.slide import THUMBNAIL_SIZE, SlideReader
from engine.imaging.tissue import Tile, detect_tissue, read_tile, tile_grid
from engine.models.bundle import Bundle
from engine.models.inference import (
    batches,
    calibrated_probabilities,
    capture_pass,
    check_methods,
    maps_from_capture,
    method_score,
    perturb_items,
)
from engine.models.task_registry import task_spec
from engine.progress import NullProgress, Progress, ScaledProgress, check_cancelled

#: Used when a bundle's metadata has no ``slide`` section: LC25000-like 224-px patches at 0.5 um/px.
DEFAULT_TILE_SIZE = 224
DEFAULT_TILE_MPP = 0.5
DEFAULT_MIN_TISSUE = 0.25

STITCHING = "mean where tiles overlap, NaN off tissue"

#: The part of the progress bar the tile passes take (tissue detection before, stitching after).
TILES_START, TILES_END = 0.05, 0.95


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


def stitch(details: SlideDetails, tile_values: np.ndarray) -> np.ndarray:
    """``(K, 1, H, W)`` heatmaps on the details' grid from ``(K, n, h, w)`` tile maps; NaN off tiles."""
    from engine.explain.stitch import stitch_tiles

    boxes, grid = details.tile_boxes, details.grid_shape
    if not len(boxes):
        return np.full((len(tile_values), 1) + tuple(grid), np.nan, np.float32)
    size = (int(boxes[0, 2]), int(boxes[0, 3]))
    stitched = [
        stitch_tiles([(int(b[0]), int(b[1]), m) for b, m in zip(boxes, per_class)], details.slide_shape, size,
                     downsample=details.grid_downsample)
        for per_class in tile_values
    ]
    return _fit(np.stack(stitched), grid)[:, None] if stitched else np.zeros((0, 1) + tuple(grid), np.float32)


def tile_probability_maps(
    params: dict, tile_probabilities: np.ndarray, grid_shape: tuple[int, int]
) -> np.ndarray | None:
    """A stored slide analysis's ``(K, 1, H, W)`` tile-probability heatmap, drawn again from the
    tile places its map parameters keep (``tile_boxes``, ``slide_shape``) exactly as
    ``analyse_slide`` drew it; None when the parameters do not say where the ``(n, K)`` rows lie
    (maps stored before they did)."""
    boxes, slide_shape = params.get("tile_boxes"), params.get("slide_shape")
    rows = np.asarray(tile_probabilities, dtype=np.float32)
    if boxes is None or slide_shape is None or len(boxes) != len(rows):
        return None
    details = SlideDetails(
        tiles=(), tile_boxes=np.asarray(boxes, dtype=np.int64).reshape(-1, 4),
        probability_maps=np.zeros((0, 1) + tuple(grid_shape), np.float32), grid_shape=tuple(grid_shape),
        slide_shape=tuple(int(v) for v in slide_shape), level=int(params.get("level", 0)),
        tile_mpp=params.get("tile_mpp"), tile_size0=int(params.get("tile_size_level0", 0)),
    )
    return stitch(details, rows.T[:, :, None, None])


def check_reads_tiles(bundle: Bundle) -> None:
    """Raise ``BundleError`` unless the bundle's task prepares slide tiles (``TaskSpec.prepare_tiles``)."""
    if task_spec(bundle.task).prepare_tiles is None:
        raise BundleError(bundle.name, f"a {bundle.task} model does not read slide tiles")


def _tile_inputs(bundle: Bundle, path: str | Path, tiles: Sequence[Tile], batch_size: int) -> Iterator[torch.Tensor]:
    """The network inputs of ``tiles``, one batch at a time, through the task's tile preprocessing."""
    check_reads_tiles(bundle)
    spec = task_spec(bundle.task)
    parameters = {k: v for k, v in bundle.metadata["preprocessing"].items() if k in spec.parameters}
    with SlideReader(path) as slide:
        for chunk in batches(len(tiles), batch_size):
            rgb = np.stack([read_tile(slide, tiles[i]) for i in chunk])
            yield spec.prepare_tiles(rgb, bundle.input_size, **parameters)


def _find_tiles(bundle: Bundle, path: str | Path, grid_shape, tile_mpp, progress: Progress):
    """Tissue tiles at the bundle's magnification: ``(SlideDetails without probabilities, notes)``."""
    settings = bundle.metadata.get("slide", {})
    tile_size = int(settings.get("tile_size", DEFAULT_TILE_SIZE))
    wanted_mpp = float(tile_mpp if tile_mpp is not None else settings.get("tile_mpp", DEFAULT_TILE_MPP))
    with SlideReader(path) as slide:
        grid = tuple(grid_shape) if grid_shape is not None else thumbnail_grid(slide)
        progress.report(0.0, "finding tissue")
        check_cancelled(progress)
        plan, used_mpp, notes = plan_tiles(slide, tile_size, wanted_mpp)
        tiles = tile_grid(slide, tissue=detect_tissue(slide),
                          min_tissue_fraction=float(settings.get("min_tissue_fraction", DEFAULT_MIN_TISSUE)), **plan)
        boxes = np.array([t.footprint(slide) for t in tiles], dtype=np.int64).reshape(-1, 4)
        details = SlideDetails(
            tiles=tuple(tiles),
            tile_boxes=boxes,
            probability_maps=np.zeros((0, 1) + grid, np.float32),
            grid_shape=grid,
            slide_shape=(slide.dimensions[0][1], slide.dimensions[0][0]),
            level=tiles[0].level if tiles else int(plan.get("level", 0)),
            tile_mpp=used_mpp,
            tile_size0=int(boxes[0, 2]) if len(boxes) else int(round(plan["tile_size"])),
        )
    return details, notes


def analyse_slide(
    bundle: Bundle,
    path: str | Path,
    methods: Sequence[str] = ("gradcam",),
    classes: Sequence[int] | None = None,
    *,
    score: str | None = None,
    progress: Progress | None = None,
    grid_shape: tuple[int, int] | None = None,
    tile_mpp: float | None = None,
    batch_size: int = 32,
    keep_bytes: int = 0,
    shown_only: bool = False,
    content_hash: str | None = None,
    uncertainty: str | None = None,
    samples: int = DEFAULT_SAMPLES,
) -> CaseAnalysis:
    """``analyse_case`` for a whole slide, from its file (see there for the common arguments).

    Args:
        grid_shape: ``(H, W)`` of the maps; None means the thumbnail grid ``read_slide`` makes.
        tile_mpp: microns per pixel the model's patches are taken to have; None means the
            bundle's ``slide.tile_mpp`` (an assumption for LC25000, see the model card).
        keep_bytes: keep the capture (``CaseAnalysis.capture``) when it takes at most this many
            bytes; 0 keeps none.
        shown_only: explain only the class ``CaseAnalysis.class_to_show`` picks.
        uncertainty: "mc_dropout" or "tta" (``engine.analysis.uncertainty.resolve_method``): the
            tiles are read again and sampled; the slide's uncertainty is how often its verdict
            changes when each sample's tiles are called by the same rule
            (``slide_verdict.sample_calls``), judged on the share of samples per answer; None: no
            uncertainty.
        samples: draws per tile for ``uncertainty``.

    Raises:
        ValueError: an unknown method or class index.
        engine.errors.BundleError: the bundle's task does not read slide tiles.
        engine.errors.ImageReadError: the file is not a readable slide.
    """
    check_methods(methods)
    outer = progress or NullProgress()
    progress = ScaledProgress(outer, 0.0, 1 - PROGRESS_SHARE) if uncertainty else outer
    check_reads_tiles(bundle)
    captured = bundle.class_indices(None if shown_only else classes)
    details, notes = _find_tiles(bundle, path, grid_shape, tile_mpp, progress)
    tiles = details.tiles
    gradient, perturbation = split_methods(methods)
    end = TILES_START + (TILES_END - TILES_START) * (CAPTURE_SHARE if perturbation else 1.0)
    with closing(_tile_inputs(bundle, path, tiles, batch_size)) as inputs:
        item_pass = capture_pass(
            bundle.network, bundle.target_layer, inputs, len(tiles), gradient, captured if methods or keep_bytes else (),
            score=score, progress=ScaledProgress(progress, TILES_START, end), keep_bytes=keep_bytes,
        )
    logits = item_pass.logits.reshape(len(tiles), len(bundle.class_names))
    probabilities = calibrated_probabilities(logits, bundle.temperature)
    if not tiles:
        notes.append("no tissue tiles found")
    elif keep_bytes > 0 and item_pass.capture is None:
        notes.append(over_budget_note(item_pass.capture_bytes, keep_bytes))
    details = replace(details, probability_maps=stitch(details, probabilities.T[:, :, None, None]))
    analysis = CaseAnalysis(
        **model_fields(bundle),
        kind="slide",
        item_axis="tile",
        logits=logits,
        probabilities=probabilities,
        maps={},
        verdict=slide_verdict(bundle.class_names, probabilities) if tiles else None,
        slide=details,
        notes=tuple(notes),
        source=str(path),
        content_hash=content_hash,
        score=score,
        batch_size=batch_size,
        capture=item_pass.capture,
    )
    chosen = [analysis.class_to_show()] if shown_only and tiles else captured
    rows = [captured.index(k) for k in chosen]
    tile_maps = {m: item_pass.layer_maps[m][rows].numpy() for m in gradient}
    tile_maps.update(_perturbation_pass(analysis, bundle, perturbation, chosen, ScaledProgress(progress, end, TILES_END)))
    maps = {m: _slide_map_set(analysis, m, chosen, tile_maps[m]) for m in methods}
    progress.report(1.0, f"{len(tiles)} tissue tiles")
    analysis = replace(analysis, maps=maps)
    if uncertainty and tiles:
        with closing(_tile_inputs(bundle, path, tiles, batch_size)) as inputs:
            estimate = estimate_uncertainty(
                bundle, inputs, len(tiles), None, method=uncertainty, pooled=True,
                pool=lambda draws: sample_calls(bundle.class_names, draws), samples=samples,
                batch_size=batch_size, progress=ScaledProgress(outer, 1 - PROGRESS_SHARE, 1.0),
            )
        words = f"Slide answer over {estimate.samples} samples: {estimate.judgement.words}"
        analysis = replace(analysis, uncertainty=replace(estimate, judgement=replace(estimate.judgement, words=words)))
    return analysis


def add_slide_methods(
    analysis: CaseAnalysis, bundle: Bundle, methods: Sequence[str], progress: Progress | None
) -> CaseAnalysis:
    """``add_methods`` for a slide: from the stored capture when there is one, else the tiles are
    read again (the same tiles: tissue is not searched anew)."""
    progress = progress or NullProgress()
    classes, reused, forward, perturbation = plan_added(analysis, methods)
    tiles, notes = analysis.slide.tiles, list(analysis.notes)
    tile_maps = {m: maps.numpy() for m, maps in maps_from_capture(
        analysis.capture, bundle.network, reused, classes, analysis.batch_size).items()} if reused else {}
    end = TILES_START + (TILES_END - TILES_START) * (CAPTURE_SHARE if perturbation else 1.0)
    if forward and tiles:
        recaptured = [m for m in forward if m != "smoothgradcampp"]
        if recaptured:
            notes.append(f"No capture was kept for {', '.join(recaptured)}: the tiles were read and captured again.")
        with closing(_tile_inputs(bundle, analysis.source, tiles, analysis.batch_size)) as inputs:
            item_pass = capture_pass(
                bundle.network, analysis.target_layer, inputs, len(tiles), forward, classes, score=analysis.score,
                progress=ScaledProgress(progress, TILES_START, end),
            )
        tile_maps.update({m: maps.numpy() for m, maps in item_pass.layer_maps.items()})
    for m in forward:
        tile_maps.setdefault(m, np.zeros((len(classes), 0, 1, 1), np.float32))
    tile_maps.update(_perturbation_pass(analysis, bundle, perturbation, classes, ScaledProgress(progress, end, TILES_END)))
    added = {m: _slide_map_set(analysis, m, classes, tile_maps[m]) for m in methods}
    progress.report(1.0, f"added {', '.join(methods)}")
    return replace(analysis, maps={**analysis.maps, **added}, notes=tuple(notes))


def _perturbation_pass(
    analysis: CaseAnalysis, bundle: Bundle, methods: Sequence[str], classes: Sequence[int], progress: Progress
) -> dict[str, np.ndarray]:
    """Per perturbation method, ``(K', n, h, w)`` tile maps at the network's input size (one more
    read of the tiles; the methods' own forward passes on each batch)."""
    from engine.explain.perturbation import PERTURBATION_METHODS

    tiles = analysis.slide.tiles
    if not methods:
        return {}
    if not tiles:
        return {m: np.zeros((len(classes), 0, 1, 1), np.float32) for m in methods}
    parts: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    chunks = batches(len(tiles), analysis.batch_size)
    with closing(_tile_inputs(bundle, analysis.source, tiles, analysis.batch_size)) as inputs:
        for done, x in enumerate(inputs):
            for step, method in enumerate(methods):
                part = (done * len(methods) + step) / (len(chunks) * len(methods))
                sub = ScaledProgress(progress, part, part + 1 / (len(chunks) * len(methods)))
                parts[method].append(perturb_items(
                    bundle.network, x, analysis.target_layer, PERTURBATION_METHODS[method], classes,
                    tuple(bundle.input_size), len(x), sub, analysis.score))
            progress.report((done + 1) / len(chunks), f"explained {chunks[done].stop} of {len(tiles)} tiles")
    return {m: np.concatenate(p, axis=1) for m, p in parts.items()}


def _slide_map_set(analysis: CaseAnalysis, method: str, classes: Sequence[int], tile_maps: np.ndarray) -> MapSet:
    details = analysis.slide
    tile_maps = np.asarray(tile_maps, dtype=np.float32)
    if not len(details.tiles):
        tile_maps = np.zeros((len(classes), 0, 1, 1), np.float32)
    return MapSet(
        method=method,
        score=method_score(method, analysis.score),
        classes=tuple(int(k) for k in classes),
        maps=stitch(details, tile_maps),
        params={"tiles": len(details.tiles), "level": details.level, "tile_mpp": details.tile_mpp,
                "tile_size_level0": details.tile_size0, "stitching": STITCHING,
                "score": method_score(method, analysis.score),
                # where each tile (row of the probabilities) lies: a stored analysis redraws its
                # tile-probability heatmap from these (``tile_probability_maps``)
                "slide_shape": list(details.slide_shape), "tile_boxes": details.tile_boxes.tolist()},
        tile_maps=tile_maps,
    )

