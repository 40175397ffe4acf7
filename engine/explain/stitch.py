"""Maps larger than one model input: whole-slide heatmaps from tiles, clip explanations from frames.

A whole-slide image is classified tile by tile; ``stitch_tiles`` puts the tiles' CAMs back in
slide coordinates (at any pyramid level) and averages where tiles overlap, and
``probability_heatmap`` draws one value per tile on the tile grid. A clip is classified frame by
frame; ``clip_explanation`` keeps the frame maps and names the key frames a reader should look at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engine.explain.summary import MapSummary, as_numpy, map_summary


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    pair = (int(value), int(value)) if isinstance(value, (int, np.integer)) else tuple(int(v) for v in value)
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{name} must be one positive size or (rows, cols), got {value!r}")
    return pair


def _resize(tile_map: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resample a 2-D map to ``shape``: area averaging to shrink, bilinear to enlarge."""
    if tile_map.shape == shape:
        return tile_map
    tensor = torch.from_numpy(np.ascontiguousarray(tile_map, dtype=np.float64))[None, None]
    shrinking = shape[0] <= tile_map.shape[0] and shape[1] <= tile_map.shape[1]
    if shrinking:
        resized = F.interpolate(tensor, size=shape, mode="area")
    else:
        resized = F.interpolate(tensor, size=shape, mode="bilinear", align_corners=False)
    return resized[0, 0].numpy()


def feather_window(shape: tuple[int, int]) -> np.ndarray:
    """Separable triangular weights, 1 at the centre and small but positive at the edges."""
    axes = []
    for n in shape:
        position = np.arange(n, dtype=np.float64)
        axes.append(np.minimum(position + 1, n - position) / math.ceil(n / 2))
    return np.outer(axes[0], axes[1])


def stitch_tiles(
    tiles: Sequence[tuple[int, int, np.ndarray]],
    slide_shape: tuple[int, int],
    tile_size: int | Sequence[int],
    *,
    downsample: float = 1.0,
    blend: str = "mean",
    fill: float = np.nan,
) -> np.ndarray:
    """A slide heatmap from tile maps, averaged where tiles overlap.

    Args:
        tiles: ``(row0, col0, tile_map)`` per tile; ``row0, col0`` are the tile's top-left corner
            in level-0 slide pixels and ``tile_map`` is a 2-D map of any resolution covering the
            tile (a CAM at the layer's or the input's resolution).
        slide_shape: slide size ``(rows, cols)`` at level 0.
        tile_size: tile size in level-0 pixels, one int or ``(rows, cols)``.
        downsample: level-0 pixels per heatmap pixel (a pyramid level's downsample).
        blend: "mean" (every covering tile weighs the same) or "feather" (tile centres weigh more,
            which hides seams between overlapping tiles).
        fill: value of heatmap pixels no tile covers.

    Returns:
        float32 heatmap of ``ceil(slide_shape / downsample)`` pixels.

    Raises:
        ValueError: for a bad tile size, downsample, blend or tile map.
    """
    tile_rows, tile_cols = _pair(tile_size, "tile_size")
    if downsample <= 0:
        raise ValueError(f"downsample must be positive, got {downsample}")
    if blend not in ("mean", "feather"):
        raise ValueError(f"blend must be 'mean' or 'feather', got {blend!r}")
    shape = (math.ceil(slide_shape[0] / downsample), math.ceil(slide_shape[1] / downsample))
    weighted = np.zeros(shape, dtype=np.float64)
    weights = np.zeros(shape, dtype=np.float64)
    for row0, col0, tile_map in tiles:
        tile_map = np.asarray(tile_map, dtype=np.float64)
        if tile_map.ndim != 2:
            raise ValueError(f"tile map at ({row0}, {col0}) must be 2-D, got shape {tile_map.shape}")
        top, left = round(row0 / downsample), round(col0 / downsample)
        bottom, right = round((row0 + tile_rows) / downsample), round((col0 + tile_cols) / downsample)
        if bottom <= top or right <= left:
            continue
        footprint = _resize(tile_map, (bottom - top, right - left))
        window = np.ones(footprint.shape) if blend == "mean" else feather_window(footprint.shape)
        rows = slice(max(top, 0), min(bottom, shape[0]))
        cols = slice(max(left, 0), min(right, shape[1]))
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue
        local = (slice(rows.start - top, rows.stop - top), slice(cols.start - left, cols.stop - left))
        weighted[rows, cols] += window[local] * footprint[local]
        weights[rows, cols] += window[local]
    heatmap = np.full(shape, fill, dtype=np.float64)
    covered = weights > 0
    heatmap[covered] = weighted[covered] / weights[covered]
    return heatmap.astype(np.float32)


def probability_heatmap(
    grid_coords: np.ndarray | Sequence[tuple[int, int]],
    probabilities: np.ndarray | Sequence[float],
    grid_shape: tuple[int, int] | None = None,
    fill: float = np.nan,
) -> np.ndarray:
    """One value per tile on the tile grid: a coarse map of tile probabilities.

    Args:
        grid_coords: ``(N, 2)`` tile grid indices ``(row, col)`` (tile units, not pixels).
        probabilities: ``(N,)`` probability of one class per tile, or ``(N, K)`` for every class.
        grid_shape: ``(rows, cols)`` of the grid; default: just large enough for the coordinates.
        fill: value of grid cells with no tile.

    Returns:
        ``(rows, cols)`` float32 map, or ``(K, rows, cols)`` for ``(N, K)`` probabilities. Tiles
        listed twice are averaged.

    Raises:
        ValueError: when coordinates and probabilities disagree or a coordinate is off the grid.
    """
    coords = np.asarray(grid_coords, dtype=np.int64).reshape(-1, 2)
    values = np.asarray(probabilities, dtype=np.float64)
    per_class = values.ndim == 2
    values = values.reshape(len(values), -1)
    if len(values) != len(coords):
        raise ValueError(f"{len(coords)} tile coordinates but {len(values)} probabilities")
    if grid_shape is None:
        grid_shape = tuple(int(n) + 1 for n in coords.max(axis=0)) if len(coords) else (0, 0)
    if len(coords) and (coords.min() < 0 or (coords >= np.asarray(grid_shape)).any()):
        raise ValueError(f"tile coordinates fall outside the grid {tuple(grid_shape)}")
    totals = np.zeros((values.shape[1],) + tuple(grid_shape))
    counts = np.zeros(tuple(grid_shape))
    np.add.at(counts, (coords[:, 0], coords[:, 1]), 1)
    for k in range(values.shape[1]):
        np.add.at(totals[k], (coords[:, 0], coords[:, 1]), values[:, k])
    heatmap = np.full(totals.shape, fill)
    seen = np.broadcast_to(counts > 0, totals.shape)
    heatmap[seen] = (totals / np.maximum(counts, 1))[seen]
    return (heatmap if per_class else heatmap[0]).astype(np.float32)


@dataclass
class ClipExplanation:
    """Frame maps of a clip with the frames that matter most.

    Attributes:
        maps: ``(T, H, W)`` raw frame maps.
        key_frames: indices of the ``top_k`` most important frames, most important first.
        importance: per frame, ``score_weight * score share + (1 - score_weight) * energy share``.
        score_share: each frame's share of the clip's summed class score.
        energy_share: each frame's share of the clip's positive map energy.
        frame_stats: ``MapSummary`` of each frame map.
    """

    maps: np.ndarray
    key_frames: list[int]
    importance: list[float]
    score_share: list[float]
    energy_share: list[float]
    frame_stats: list[MapSummary]

    def to_dict(self) -> dict:
        """JSON-ready summary (without the maps themselves)."""
        return {
            "key_frames": self.key_frames,
            "importance": self.importance,
            "score_share": self.score_share,
            "energy_share": self.energy_share,
            "frame_stats": [s.to_dict() for s in self.frame_stats],
        }


def _shares(values: np.ndarray) -> np.ndarray:
    total = values.sum()
    return values / total if total > 0 else np.full(values.shape, 1.0 / len(values))


def clip_explanation(
    frame_maps: np.ndarray | torch.Tensor,
    frame_scores: np.ndarray | torch.Tensor | Sequence[float],
    top_k: int = 3,
    score_weight: float = 0.5,
) -> ClipExplanation:
    """Explain a clip verdict made from frame scores: which frames matter, and their maps.

    A frame's score contribution is its share of the clip's summed class score (scores are
    shifted to be non-negative first, so logits work too); its map energy is its share of the
    clip's positive map energy. Key frames rank frames by the weighted sum of both shares (ties:
    earlier frame first).

    Args:
        frame_maps: ``(T, H, W)`` raw maps, one per frame.
        frame_scores: ``(T,)`` class score of each frame (probability or logit).
        top_k: number of key frames (at most T).
        score_weight: weight of the score share against the energy share, in [0, 1].

    Raises:
        ValueError: when maps and scores disagree in length, or for a bad ``top_k`` or weight.
    """
    maps = as_numpy(frame_maps)
    scores = as_numpy(frame_scores).astype(np.float64).reshape(-1)
    if maps.ndim != 3 or len(maps) != len(scores) or len(scores) == 0:
        raise ValueError(f"need (T, H, W) maps and T scores, got maps {maps.shape} and {len(scores)} scores")
    if top_k < 1 or not 0.0 <= score_weight <= 1.0:
        raise ValueError(f"top_k must be >= 1 and score_weight in [0, 1], got {top_k}, {score_weight}")
    score_share = _shares(scores - min(scores.min(), 0.0))
    energy = np.clip(maps.astype(np.float64), 0.0, None).reshape(len(maps), -1).sum(axis=1)
    energy_share = _shares(energy)
    importance = score_weight * score_share + (1.0 - score_weight) * energy_share
    order = np.argsort(-importance, kind="stable")[: min(top_k, len(scores))]
    return ClipExplanation(
        maps=maps,
        key_frames=[int(i) for i in order],
        importance=importance.tolist(),
        score_share=score_share.tolist(),
        energy_share=energy_share.tolist(),
        frame_stats=[map_summary(frame) for frame in maps],
    )
