"""Where a lung-ultrasound map points inside the scan region: its edge band and its depth profile.

Two plain measures of a map's positive energy (the rectified Grad-CAM, Selvaraju et al., ICCV
2017), each relative to the scan region on the network's input grid:

* edge band: the region's pixels within ``band`` of its boundary (the frame border counts as
  outside). ``edge energy share / edge area share`` below 1 says the map puts less than its
  uniform share on the fan's outline; above 1, that it hugs the outline (a source shortcut).
* depth: each region pixel's depth is its row's distance below the region's top in its own column,
  as a fraction of that column's region height (0 at the probe, 1 at the deepest echo), so a convex
  fan's curved top counts as depth 0. Energy and area shares are taken in equal depth bins; the
  upper third is where the pleural line lies in these clips, with B-lines and consolidations
  starting from it (Lichtenstein, "Lung ultrasound in the critically ill", Ann Intensive Care 2014).

Energy in the black surround (the upsampled map spills past the region) is left out of the shares
and reported as the share of energy inside the region.
"""

from __future__ import annotations

import numpy as np

from engine.tasks.lung_ultrasound.preprocess import interior_mask

#: Equal depth bins of the depth profile; the upper third is the first ``DEPTH_BINS // 3``.
DEPTH_BINS = 6


def depth_fraction(region: np.ndarray) -> np.ndarray:
    """Each region pixel's depth in its column, 0 (top of the region) to below 1; NaN outside.

    Args:
        region: ``(h, w)`` bool scan region.

    Returns:
        ``(h, w)`` float64: ``(row - top) / (bottom - top + 1)`` per column.
    """
    rows = np.arange(region.shape[0], dtype=np.float64)[:, None]
    present = region.any(axis=0)
    top = np.where(present, region.argmax(axis=0), 0)
    bottom = np.where(present, region.shape[0] - 1 - region[::-1].argmax(axis=0), 0)
    depth = (rows - top[None]) / (bottom - top + 1)[None]
    return np.where(region, depth, np.nan)


def region_masks(region: np.ndarray, band_pixels: float, bins: int = DEPTH_BINS) -> tuple[np.ndarray, np.ndarray]:
    """The edge band and the depth bins of one scan region.

    Returns:
        ``(edge, depth_bins)``: ``(h, w)`` bool band, and ``(bins, h, w)`` bool masks of equal
        depth bins (together the region).
    """
    edge = region & ~interior_mask(region, band_pixels)
    depth = depth_fraction(region)
    which = np.clip(np.floor(np.nan_to_num(depth, nan=-1.0) * bins), -1, bins - 1).astype(np.int64)
    return edge, np.stack([region & (which == b) for b in range(bins)])


def map_shares(maps: np.ndarray, regions: np.ndarray, band_pixels: float, bins: int = DEPTH_BINS) -> dict[str, np.ndarray]:
    """Energy and area shares of each map in its region's edge band and depth bins.

    Args:
        maps: ``(N, h, w)`` maps on the input grid; only their positive part counts.
        regions: ``(N, h, w)`` bool scan regions (one per map).
        band_pixels: width of the edge band in input pixels.
        bins: number of equal depth bins.

    Returns:
        Per map (NaN where a map has no positive energy in its region): ``inside`` (share of the
        positive energy inside the region), ``edge_energy`` and ``edge_area`` (shares of the
        region's energy and area in the band), ``depth_energy`` and ``depth_area`` ``(N, bins)``.
    """
    positive = np.clip(np.asarray(maps, dtype=np.float64), 0, None)
    n = positive.shape[0]
    out = {key: np.full(n, np.nan) for key in ("inside", "edge_energy", "edge_area")}
    out["depth_energy"] = np.full((n, bins), np.nan)
    out["depth_area"] = np.full((n, bins), np.nan)
    for i in range(n):
        region = np.asarray(regions[i], dtype=bool)
        edge, depth = region_masks(region, band_pixels, bins)
        area = region.sum()
        total, inside = positive[i].sum(), positive[i][region].sum()
        if area:
            out["edge_area"][i] = edge.sum() / area
            out["depth_area"][i] = depth.reshape(bins, -1).sum(axis=1) / area
        if total > 0:
            out["inside"][i] = inside / total
        if inside > 0:
            out["edge_energy"][i] = positive[i][edge].sum() / inside
            out["depth_energy"][i] = (depth * positive[i][None]).reshape(bins, -1).sum(axis=1) / inside
    return out
