"""``salience explain`` for whole-slide images (and single patches written as PNG overlays).

A slide is explained as a whole: every tissue tile is classified and explained
(``engine.analysis.slide.analyse_slide``), the slide score of a class is its mean tile
probability, and the tile maps are stitched on the thumbnail grid. ``OUT.npy`` receives the raw
signed stitched map(s); ``OUT.png`` a colour overlay of the chosen class's map on the thumbnail
that a reviewer can open in any image viewer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from engine.errors import SalienceError
from engine.explain.summary import map_summary
from engine.imaging import ImageVolume
from engine.models.bundle import Bundle
from engine.models.classes import class_index
from engine.imaging.render import blend_overlay, colormap

OUTPUT_SUFFIXES = (".npy", ".png")
#: Overlay opacity at the map's strongest positive evidence.
PNG_OPACITY = 0.6
#: The map's positive part is scaled by this percentile of its positive values (robust to a few hot pixels).
PNG_PERCENTILE = 99.0
TOP_TILES = 5


def _check_output(output: Path, all_classes: bool) -> str:
    suffix = output.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise SalienceError(f"{output}: a slide or patch map is written as .npy (raw) or .png (overlay)")
    if all_classes and suffix != ".npy":
        raise SalienceError(f"{output}: --all-classes writes (classes, rows, cols) and needs .npy")
    if not output.parent.exists():
        raise SalienceError(f"{output.parent}: output folder does not exist")
    return suffix


def overlay_rgb(rgb: np.ndarray, cam: np.ndarray) -> np.ndarray:
    """The map's positive evidence in the 'jet' colours over an RGB image.

    Args:
        rgb: ``(H, W, 3)`` uint8 image (thumbnail or patch).
        cam: ``(H, W)`` raw signed map on the same grid; NaN (no tile) and negative values are
            drawn as no evidence.

    Returns:
        ``(H, W, 3)`` uint8.
    """
    positive = np.clip(np.nan_to_num(np.asarray(cam, dtype=np.float64), nan=0.0), 0.0, None)
    scale = float(np.percentile(positive[positive > 0], PNG_PERCENTILE)) if (positive > 0).any() else 1.0
    normalised = np.clip(positive / scale, 0.0, 1.0).astype(np.float32)
    return blend_overlay(rgb, normalised, colormap("jet"), PNG_OPACITY)[..., :3]


def write_overlay_png(rgb: np.ndarray, cam: np.ndarray, output: Path) -> None:
    """Write ``overlay_rgb(rgb, cam)`` as a PNG."""
    Image.fromarray(overlay_rgb(rgb, cam)).save(output, format="PNG")


def _payload_head(volume: ImageVolume, bundle: Bundle, method: str, output: Path, class_label: str,
                  score: str | None) -> dict:
    return {
        "source": volume.source,
        "output": str(output),
        "bundle": {"name": bundle.name, "version": bundle.version},
        "method": method,
        "score": score or "method default",
        "layer": bundle.target_layer,
        "class": class_label,
    }


def _thumbnail_rgb(volume: ImageVolume) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(np.asarray(volume.array[:, 0]), 0, 2)).astype(np.uint8)


def explain(
    path: str | Path,
    volume: ImageVolume,
    bundle: Bundle,
    method: str,
    output: Path,
    class_name: str | None = None,
    all_classes: bool = False,
    with_quality: bool = False,
    score: str | None = None,
) -> dict:
    """Explain a whole slide and write its stitched map(s); the JSON payload of ``salience explain``.

    Args:
        path: the slide file.
        volume: the slide as ``read_image`` returned it (kind "slide", the thumbnail as array).
        bundle: a histopathology (patch) bundle.
        method: CAM method name.
        output: ``.npy`` (raw signed maps on the thumbnail grid) or ``.png`` (overlay on the thumbnail).
        class_name: class to explain; None means the most likely finding over the tiles.
        all_classes: write every class's map (``(K, H, W)``, .npy only).
        with_quality: not available for slides (the quality measures work on one item).

    Returns:
        JSON-ready dict: source, bundle, method, layer, class, slide scores, tile count, top tiles,
        map stats, output.

    Raises:
        SalienceError: bad output name, unknown class or method, no tissue, or ``with_quality``.
    """
    from engine.analysis.slide import analyse_slide

    suffix = _check_output(output, all_classes)
    if with_quality:
        raise SalienceError(f"{path}: --quality measures one patch or slice; it is not available for whole slides")
    if volume.kind != "slide":
        raise SalienceError(f"{path}: is a {volume.kind}, not a whole slide")
    grid = tuple(volume.shape[1:])
    try:
        analysis = analyse_slide(bundle, path, method=method, grid_shape=grid, score=score)  # every class: one capture
    except ValueError as exc:
        raise SalienceError(str(exc)) from None
    if not analysis.tiles:
        raise SalienceError(f"{path}: no tissue tiles found; nothing to explain")
    k = class_index(bundle.class_names, class_name, analysis.tile_probabilities)
    written = analysis.maps if all_classes else analysis.maps[k]
    if suffix == ".npy":
        np.save(output, written.astype(np.float32))
    else:
        write_overlay_png(_thumbnail_rgb(volume), analysis.maps[k], output)
    return {
        **_payload_head(volume, bundle, method, output, "all" if all_classes else bundle.class_names[k], score),
        "slide_score": {name: float(s) for name, s in zip(bundle.class_names, analysis.slide_scores)},
        "slide_score_rule": "mean tile probability over tissue tiles",
        "tiles": len(analysis.tiles),
        "tile_level": analysis.level,
        "tile_size_level0": analysis.tile_size0,
        "tile_mpp": analysis.tile_mpp,
        "notes": analysis.notes,
        "top_tiles": analysis.top_tiles(k, TOP_TILES),
        "shape": list(written.shape) if suffix == ".npy" else [grid[0], grid[1], 3],
        "axes": ("class, " if all_classes else "") + "row, col (thumbnail grid)" if suffix == ".npy" else "row, col, RGB",
        "grid_downsample": analysis.grid_downsample,
        "stats": map_summary(analysis.maps[k]).to_dict(),
        "raw": "signed, not normalised; NaN off tissue" if suffix == ".npy" else "positive part drawn, scaled to its 99th percentile",
    }


def explain_patch_png(
    volume: ImageVolume, bundle: Bundle, method: str, output: Path, class_name: str | None = None,
    score: str | None = None,
) -> dict:
    """Explain one patch (kind "image") and write the map as a colour overlay PNG on the patch.

    For ``headless.explain`` to call when a patch's output ends in ``.png``.

    Returns:
        JSON-ready dict: source, output, bundle, method, layer, class, probabilities, map stats.

    Raises:
        SalienceError: bad output name, unknown class or method, or a volume with several items.
    """
    if output.suffix.lower() != ".png":
        raise SalienceError(f"{output}: a patch overlay is written as .png")
    _check_output(output, False)
    if volume.n_slices != 1 or not volume.is_rgb:
        raise SalienceError(f"{volume.source}: a PNG overlay needs one RGB patch")
    prediction = bundle.predict(volume)
    k = class_index(bundle.class_names, class_name, prediction.probabilities)
    try:
        cam = np.asarray(bundle.explain(volume, method=method, classes=[k], score=score), dtype=np.float32)[0, 0]
    except ValueError as exc:
        raise SalienceError(str(exc)) from None
    write_overlay_png(_thumbnail_rgb(volume), cam, output)
    return {
        **_payload_head(volume, bundle, method, output, bundle.class_names[k], score),
        "probabilities": {name: float(p) for name, p in zip(bundle.class_names, prediction.probabilities[0])},
        "shape": [int(volume.shape[1]), int(volume.shape[2]), 3],
        "stats": map_summary(cam).to_dict(),
        "raw": "positive part drawn, scaled to its 99th percentile",
    }
