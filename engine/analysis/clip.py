"""What a clip adds to item-wise analysis: a verdict pooled from its frames, frame times and key frames.

The bundle classifies every frame; the clip verdict is the mean of the frame probabilities (the
rule the lung-ultrasound bundle was evaluated with). ``engine.explain.stitch.clip_explanation``
names, for each explained class, the key frames a reader should look at first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engine.analysis.result import CaseVerdict
from engine.explain.stitch import ClipExplanation, clip_explanation
from engine.imaging.volume import ImageVolume

#: How a clip's verdict is pooled from its frames.
VERDICT_RULE = "mean of the frame probabilities"


def frame_times(volume: ImageVolume) -> np.ndarray:
    """Each frame's time in ms from the first: the reader's timestamps, else the mean interval."""
    times = volume.extras.get("frame_times_ms")
    if times is not None and len(times) == volume.n_slices:
        return np.asarray(times, dtype=np.float64)
    return np.arange(volume.n_slices, dtype=np.float64) * float(volume.frame_time_ms or 0.0)


def clip_verdict(probabilities: np.ndarray) -> CaseVerdict:
    """The clip verdict: the mean frame probability of each class."""
    frames = np.asarray(probabilities, dtype=np.float64)
    return CaseVerdict(
        probabilities=frames.mean(axis=0),
        rule=VERDICT_RULE,
        label=f"Clip verdict: mean of {len(frames)} frames",
    )


def key_frames(
    maps: np.ndarray, probabilities: np.ndarray, classes: Sequence[int], top_k: int
) -> dict[int, ClipExplanation]:
    """Per explained class, its frames ranked by probability share and map energy.

    Args:
        maps: ``(K', T, h, w)`` raw maps of ``classes``.
        probabilities: ``(T, K)`` frame probabilities.
        classes: the ``K'`` class indices of ``maps``.
        top_k: key frames named per class.
    """
    return {int(k): clip_explanation(maps[i], probabilities[:, k], top_k=top_k) for i, k in enumerate(classes)}
