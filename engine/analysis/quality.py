"""The quality measures a reviewer reads next to a map, for one item (slice) of a volume.

``check_map`` measures one map of a ``CaseAnalysis``: on its slice or frame (a clip's map on the
window of the frame the network saw), for a slide on the tissue tile the model finds likeliest
to show the class, with that tile's own map, and for a whole-volume (3-D) model on the one volume
it reads, within the box of it the network saw. ``quality_report`` does the measuring.

Faithfulness (deletion and insertion AUC: does removing what the map highlights change the
model's score? average drop and increase in confidence: does what it highlights suffice?), localisation against a mask when the image has one (pointing game, energy
inside the mask), and the parameter-randomisation sanity check (does the map depend on what the
model learned at all?).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import itertools

import numpy as np
import torch
from scipy import ndimage

from engine.explain import quality, upsample
from engine.imaging.volume import ImageVolume
from engine.models.inference import explain_with
from engine.progress import NullProgress, Progress, ScaledProgress

if TYPE_CHECKING:
    from engine.analysis.result import CaseAnalysis, MapSet
    from engine.models.bundle import Bundle


def quality_report(
    bundle: "Bundle",
    volume: ImageVolume,
    cam: np.ndarray,
    *,
    method: str,
    class_index: int,
    item: int,
    progress: Progress | None = None,
    score: str | None = None,
    mask: np.ndarray | None = None,
) -> dict:
    """Quality of one item's map for one class.

    Args:
        bundle: the model that produced ``cam``.
        volume: the image; its ``labels`` (if any) are the reference mask.
        cam: the raw ``(H, W)`` map of ``item`` on the volume grid (a whole-volume model's
            ``(d, h, w)`` map of the one item, on the box of the volume it read).
        method: the CAM method's name, recomputed on randomised copies for the sanity check.
        class_index: the class the map explains.
        item: the slice (or frame) index.
        progress: told as the three measures finish.
        score: what ``cam`` explains ("logit", "probability", None: the method's default); the
            sanity check recomputes the map the same way.
        mask: the reference mask on ``cam``'s grid; None takes ``volume.labels`` of ``item``.

    Returns:
        A JSON-ready dict: ``deletion``, ``insertion``, ``confidence`` (average drop and
        increase in confidence), ``sanity`` and, with a mask,
        ``pointing_game`` and ``energy_inside_mask``.
    """
    progress = progress or NullProgress()
    x = bundle.preprocess(volume)[item : item + 1].to(bundle.device)
    saliency = upsample(torch.as_tensor(cam, dtype=torch.float32, device=x.device)[None], tuple(x.shape[2:]))[0]
    positive = torch.clamp(saliency, min=0)  # rank by evidence for the class, as the papers do
    report: dict = {"item": item, "class": bundle.class_names[class_index], "method": method}
    report["deletion"] = quality.deletion_curve(bundle.network, x, positive, class_index).to_dict()
    report["insertion"] = quality.insertion_curve(bundle.network, x, positive, class_index).to_dict()
    report["confidence"] = quality.confidence_change(bundle.network, x, positive[None], class_index).to_dict()
    progress.report(0.3, "deletion and insertion")
    if mask is None and volume.labels is not None:
        mask = volume.labels[item]
    if mask is not None and mask.any():
        mask = mask > 0
        evidence = np.clip(cam, 0, None)
        report["pointing_game"] = quality.pointing_game(evidence, mask).to_dict()
        report["energy_inside_mask"] = quality.energy_inside_mask(evidence, mask).to_dict()
        report["mask_area_fraction"] = float(mask.mean())

    def explain(model: torch.nn.Module, image: torch.Tensor) -> np.ndarray:
        return explain_with(
            model, image, bundle.target_layer, method, [class_index], tuple(image.shape[2:]), score=score
        )[0, 0]

    report["sanity"] = quality.randomisation_check(
        bundle.network, x, explain, region=foreground(x[0]), progress=ScaledProgress(progress, 0.3, 1.0)
    ).to_dict()
    return report


def foreground(x: torch.Tensor, max_share: float = 0.98, tolerance: float = 0.03) -> np.ndarray | None:
    """Pixels of a preprocessed input ``(C, h, w)`` (or voxels of ``(C, d, h, w)``) that are not its
    dark, flat background.

    The background is the value of the image's corner pixels (four, or eight of a volume) when
    they agree on every channel to within ``tolerance`` of the channel's range (MRI outside the
    head, which carries faint noise; the black around an ultrasound sector). Foreground is where
    any channel differs from it by more than that, with holes filled (dark structures inside the
    head belong to it).

    Returns:
        A boolean ``(h, w)`` (or ``(d, h, w)``) mask, or None when the image has no flat background
        or when the foreground covers more than ``max_share`` of it (a tissue patch): then the
        sanity check ranks the whole map.
    """
    image = x.detach().float().cpu().numpy()
    spatial = image.ndim - 1
    corners = np.stack([image[(slice(None), *corner)] for corner in itertools.product((0, -1), repeat=spatial)], axis=1)
    span = np.ptp(image.reshape(image.shape[0], -1), axis=1)
    limit = tolerance * np.where(span > 0, span, 1.0)
    if (np.ptp(corners, axis=1) > limit).any():
        return None
    background = np.median(corners, axis=1)
    per_channel = (-1,) + (1,) * spatial
    inside = ndimage.binary_fill_holes(
        (np.abs(image - background.reshape(per_channel)) > limit.reshape(per_channel)).any(axis=0))
    share = float(inside.mean())
    return inside if 0.0 < share <= max_share and inside.sum() >= 2 else None


@dataclass(frozen=True)
class MapQuality:
    """What ``check_map`` measured, and where.

    Attributes:
        report: ``quality_report``'s JSON-ready dict (a slide's with the measured ``"tile"``).
        method: the CAM method of the measured map.
        class_index: the class the map explains.
        item: the row of the analysis's predictions measured: the slice or frame, or a slide's tile.
    """

    report: dict
    method: str
    class_index: int
    item: int


def _on_frame(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A map kept on a coarser grid over the frame, resampled onto the frame's pixels."""
    if cam.shape == tuple(shape):
        return cam
    return upsample(torch.as_tensor(cam, dtype=torch.float32)[None], tuple(shape))[0].numpy()


def check_map(
    analysis: "CaseAnalysis",
    volume: ImageVolume,
    bundle: "Bundle",
    method: str,
    class_index: int,
    item: int | None = None,
    progress: Progress | None = None,
) -> MapQuality:
    """Measure one map of an analysis (``quality_report``).

    Args:
        analysis: from ``engine.analysis.analyse_case``.
        volume: the image analysed.
        bundle: the model analysed with.
        method: a method of ``analysis.maps``.
        class_index: an explained class.
        item: the slice or frame of ``volume`` whose map is measured; None: the one that matters
            most (a clip's first key frame of the class, else the item most likely to show it).
            A slide's volume is its thumbnail (item 0 or None): its map is measured on the tissue
            tile most likely to show the class. A whole-volume model's one map is measured on the
            whole volume it read, whichever slice is given.
        progress: told as the measures finish.

    Raises:
        ValueError: the method or class was not explained, an item out of range, or a slide
            without tissue tiles.
    """
    if method not in analysis.maps:
        raise ValueError(f"no {method} maps in this analysis (it has {list(analysis.maps)})")
    map_set = analysis.maps[method]
    if class_index not in map_set.classes:
        raise ValueError(f"class {class_index} was not explained by {method} (explained: {list(map_set.classes)})")
    if item is not None and not 0 <= item < volume.n_slices:
        raise ValueError(f"item {item} out of range for {volume.n_slices} items of {volume.source}")
    if analysis.slide is not None:
        return _check_tile(analysis, map_set, bundle, class_index, progress)
    if analysis.volume_box is not None:
        return _check_whole_volume(analysis, map_set, volume, bundle, class_index, progress)
    key_frame = item is None and bool(map_set.key_frames)
    if item is None:
        item = map_set.key_frames[class_index].key_frames[0] if key_frame else \
            int(np.argmax(analysis.probabilities[:, class_index]))
    cam = _on_frame(map_set.of(class_index)[item], volume.shape[1:])
    window = cam if analysis.crop_box is None else analysis.crop_box.crop(cam)
    report = quality_report(bundle, volume, window, method=method, class_index=class_index, item=item,
                            progress=progress, score=map_set.score)
    if key_frame:
        report["key_frame_time_ms"] = float(analysis.frame_times_ms[item])
    return MapQuality(report, method, class_index, item)


def _check_whole_volume(
    analysis: "CaseAnalysis", map_set: "MapSet", volume: ImageVolume, bundle: "Bundle", class_index: int,
    progress: Progress | None,
) -> MapQuality:
    """A whole-volume model's map measured on the one input it explains: the map and the mask
    within the box of the volume the network read (the map is zero outside it), the map resampled
    to the network's input for deletion, insertion and the sanity check."""
    box = analysis.volume_box
    cam = map_set.of(class_index)
    if tuple(cam.shape[1:]) != tuple(volume.shape[1:]):  # kept on a coarser grid in-plane
        cam = upsample(torch.as_tensor(cam, dtype=torch.float32), tuple(volume.shape[1:])).numpy()
    mask = None if volume.labels is None else box.crop(volume.labels)
    report = quality_report(bundle, volume, box.crop(cam), method=map_set.method, class_index=class_index, item=0,
                            progress=progress, score=map_set.score, mask=mask)
    report["scope"] = (f"the whole volume: the box of {box.size[0]} x {box.size[1]} x {box.size[2]} voxels "
                       f"from (slice, row, col) {tuple(box.start)} the model read")
    return MapQuality(report, map_set.method, class_index, 0)


def _check_tile(
    analysis: "CaseAnalysis", map_set: "MapSet", bundle: "Bundle", class_index: int, progress: Progress | None
) -> MapQuality:
    """A slide's map measured where it matters most: on the tissue tile the model finds likeliest
    to show the class, with that tile's own map."""
    from engine.imaging.slide import SlideReader, rgb_volume
    from engine.imaging.tissue import read_tile

    if not len(analysis.probabilities):
        raise ValueError(f"{analysis.source}: no tissue tile to measure")
    best = int(np.argmax(analysis.probabilities[:, class_index]))
    with SlideReader(analysis.source) as reader:
        rgb = read_tile(reader, analysis.slide.tiles[best])
    top = analysis.top_tiles(class_index, 1)[0]
    tile = rgb_volume(f"{analysis.source} (tile at row {top['row0']}, col {top['col0']})", rgb)
    cam = _on_frame(map_set.tile_maps[map_set.classes.index(class_index), best], rgb.shape[:2])
    report = quality_report(bundle, tile, cam, method=map_set.method, class_index=class_index, item=0,
                            progress=progress, score=map_set.score)
    report["tile"] = top
    return MapQuality(report, map_set.method, class_index, best)
