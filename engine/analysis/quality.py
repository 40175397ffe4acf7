"""The quality measures a reviewer reads next to a map, for one item (slice) of a volume.

Faithfulness (deletion and insertion AUC: does removing what the map highlights change the
model's score? average drop and increase in confidence: does what it highlights suffice?), localisation against a mask when the image has one (pointing game, energy
inside the mask), and the parameter-randomisation sanity check (does the map depend on what the
model learned at all?).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import ndimage

from engine.explain import quality, upsample
from engine.imaging.volume import ImageVolume
from engine.models.inference import explain_with
from engine.progress import NullProgress, Progress, ScaledProgress

if TYPE_CHECKING:
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
) -> dict:
    """Quality of one item's map for one class.

    Args:
        bundle: the model that produced ``cam``.
        volume: the image; its ``labels`` (if any) are the reference mask.
        cam: the raw ``(H, W)`` map of ``item`` on the volume grid.
        method: the CAM method's name, recomputed on randomised copies for the sanity check.
        class_index: the class the map explains.
        item: the slice (or frame) index.
        progress: told as the three measures finish.
        score: what ``cam`` explains ("logit", "probability", None: the method's default); the
            sanity check recomputes the map the same way.

    Returns:
        A JSON-ready dict: ``deletion``, ``insertion``, ``confidence`` (average drop and
        increase in confidence), ``sanity`` and, with a mask,
        ``pointing_game`` and ``energy_inside_mask``.
    """
    progress = progress or NullProgress()
    x = bundle.preprocess(volume)[item : item + 1]
    saliency = upsample(torch.as_tensor(cam, dtype=torch.float32)[None], tuple(x.shape[2:]))[0]
    positive = torch.clamp(saliency, min=0)  # rank by evidence for the class, as the papers do
    report: dict = {"item": item, "class": bundle.class_names[class_index], "method": method}
    report["deletion"] = quality.deletion_curve(bundle.network, x, positive, class_index).to_dict()
    report["insertion"] = quality.insertion_curve(bundle.network, x, positive, class_index).to_dict()
    report["confidence"] = quality.confidence_change(bundle.network, x, positive[None], class_index).to_dict()
    progress.report(0.3, "deletion and insertion")
    if volume.labels is not None and volume.labels[item].any():
        mask = volume.labels[item] > 0
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
    """Pixels of a preprocessed input ``(C, h, w)`` that are not its dark, flat background.

    The background is the value of the image's four corner pixels when they agree on every
    channel to within ``tolerance`` of the channel's range (MRI outside the head, which carries
    faint noise; the black around an ultrasound sector). Foreground is where any channel differs
    from it by more than that, with holes filled (dark structures inside the head belong to it).

    Returns:
        A boolean ``(h, w)`` mask, or None when the image has no flat background or when the
        foreground covers more than ``max_share`` of it (a tissue patch): then the sanity check
        ranks the whole map.
    """
    image = x.detach().float().numpy()
    corners = image[:, [0, 0, -1, -1], [0, -1, 0, -1]]  # (C, 4)
    span = np.ptp(image.reshape(image.shape[0], -1), axis=1)
    limit = tolerance * np.where(span > 0, span, 1.0)
    if (np.ptp(corners, axis=1) > limit).any():
        return None
    background = np.median(corners, axis=1)
    inside = ndimage.binary_fill_holes((np.abs(image - background[:, None, None]) > limit[:, None, None]).any(axis=0))
    share = float(inside.mean())
    return inside if 0.0 < share <= max_share and inside.sum() >= 2 else None
