"""What a whole-volume (3-D) model's analysis adds: its one answer as the case's verdict, the note a
reader needs, and the key slices of each explained class.

A 3-D bundle (``Bundle.whole_volume``) reads the volume once, as one item: its one row of
probabilities is the verdict, and its one 3-D map is resampled onto every slice of the volume
(``engine.models.volume_box``). The slices that hold most of a class's positive map energy are
its key slices, where a reader looks first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.analysis.result import CaseVerdict
from engine.explain.stitch import ClipExplanation, clip_explanation
from engine.models.volume_box import VolumeBox

#: How a whole-volume model's verdict is made.
VERDICT_RULE = "one prediction for the whole volume"


def volume_verdict(probabilities: np.ndarray, n_slices: int) -> CaseVerdict | None:
    """The verdict of a whole-volume model: its one row of probabilities (None without a row)."""
    rows = np.asarray(probabilities, dtype=np.float64)
    if not len(rows):
        return None
    return CaseVerdict(probabilities=rows[0], rule=VERDICT_RULE,
                       label=f"Volume verdict: one 3-D reading of all {n_slices} slices")


def volume_note(box: VolumeBox, input_size: Sequence[int]) -> str:
    """What a reader should know about a whole-volume model's output, in one sentence."""
    whole = tuple(box.size) == tuple(box.volume_shape)
    region = "the whole volume" if whole else (
        f"a box of {box.size[0]} x {box.size[1]} x {box.size[2]} voxels of the volume (zero map outside it)")
    size = " x ".join(str(n) for n in input_size)
    return (f"The model reads {region} at once, resampled to {size}: one probability for the whole volume "
            "(the per-slice strip repeats it); its 3-D map is resampled onto every slice.")


def key_slices(
    maps: np.ndarray, classes: Sequence[int], top_k: int
) -> dict[int, ClipExplanation]:
    """Per explained class, the slices ranked by their share of the map's positive energy.

    Args:
        maps: ``(K', N, h, w)`` raw maps of ``classes`` on every slice.
        classes: the ``K'`` class indices of ``maps``.
        top_k: key slices named per class.
    """
    if maps.shape[1] == 0:
        return {}
    flat = np.ones(maps.shape[1])  # one probability for every slice: only the map ranks them
    return {int(k): clip_explanation(maps[i], flat, top_k=top_k, score_weight=0.0) for i, k in enumerate(classes)}
