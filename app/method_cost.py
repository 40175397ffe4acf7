"""What a CAM method will cost on a case, said before it runs.

Perturbation methods forward the network once per perturbed input: Score-CAM one masked input per
channel of the target layer (Wang et al., CVPR-W 2020), occlusion one per window position (Zeiler
& Fergus, ECCV 2014), for every item and every explained class (``perturb_items`` explains each
class in turn). The time per forward pass is measured on this machine with one batch of the
case's own preprocessed items, so the estimate follows the model, the image size and the CPU.
"""

from __future__ import annotations

import math
import time

from engine.errors import SalienceError
from engine.imaging.volume import ImageVolume
from engine.progress import Progress
from ui.backend import MethodCost

#: Inputs forwarded at once to time one pass: copies of the case's first item, as a perturbation
#: method forwards chunks of perturbed copies of one item (per-input cost falls with the batch).
TIMED_BATCH = 16


def forward_passes(method: str, items: int, classes: int, channels: int, spatial: tuple[int, ...]) -> int:
    """Forward passes ``method`` needs: per class and item, one per mask or window plus the
    unperturbed input; the gradient family needs one forward (and one partial backward) per item.

    Args:
        method: the method identifier.
        items: slices, frames or patches analysed.
        classes: classes explained.
        channels: channels of the target layer (Score-CAM's masks).
        spatial: the network input's spatial size (occlusion's windows slide over it).
    """
    from engine.explain.perturbation import window_starts

    if method == "scorecam":
        per_item = channels + 1
    elif method == "occlusion":
        patch = tuple(min(8, size) for size in spatial)  # occlusion's defaults: 8-pixel patches at half-patch stride
        windows = math.prod(len(window_starts(size, p, max(1, p // 2))) for size, p in zip(spatial, patch))
        per_item = windows + 1
    else:
        return items
    return items * classes * per_item


def estimate_cost(bundle, volume: ImageVolume, method: str, progress: Progress) -> MethodCost:
    """Time one forward batch of ``volume``'s items through ``bundle`` and scale it to ``method``.

    Raises:
        SalienceError: a slide (its tiles are read while it is analysed, not before).
    """
    import torch

    if volume.kind == "slide":
        raise SalienceError(f"{volume.source}: the cost of a slide is known once its tiles are found; "
                            "analyse it to see the tile count")
    progress.report(0.1, "preparing the images")
    inputs = bundle.preprocess(volume)
    layer = dict(bundle.network.named_modules()).get(bundle.target_layer)
    if layer is None:
        raise SalienceError(f"{bundle.name}: no layer {bundle.target_layer!r} to explain")
    shapes: list[tuple[int, ...]] = []
    handle = layer.register_forward_hook(lambda _module, _inputs, output: shapes.append(tuple(output.shape)))
    sample = inputs[:1].expand((TIMED_BATCH,) + tuple(inputs.shape[1:])).contiguous()
    was_training = bundle.network.training
    try:
        bundle.network.eval()
        with torch.no_grad():
            bundle.network(sample)  # warm-up: first calls allocate
            started = time.perf_counter()
            bundle.network(sample)
            seconds_per_item = (time.perf_counter() - started) / sample.shape[0]
    finally:
        handle.remove()
        bundle.network.train(was_training)
    progress.report(1.0, "timed")
    classes = len(bundle.class_names)
    passes = forward_passes(method, inputs.shape[0], classes, shapes[-1][1], tuple(inputs.shape[2:]))
    return MethodCost(method, passes, passes * seconds_per_item)
