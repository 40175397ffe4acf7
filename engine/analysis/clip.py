"""A clip's verdict and its explanation: frame probabilities, the clip verdict, maps and key frames.

The bundle classifies every frame; the clip verdict is the mean of the frame probabilities (the
rule the lung-ultrasound bundle was evaluated with). Each explained class gets one raw, signed map
per frame on the full frame (zeros outside the scan region the network saw), and
``engine.explain.stitch.clip_explanation`` names the key frames a reader should look at first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.explain.stitch import ClipExplanation, clip_explanation
from engine.imaging.volume import ImageVolume
from engine.models.bundle import Bundle, BundlePrediction
from engine.models.crop_box import CropBox
from engine.progress import NullProgress, Progress, ScaledProgress

#: Share of the progress bar given to prediction (the rest goes to the maps).
PREDICT_SHARE = 0.2


@dataclass(frozen=True, eq=False)
class ClipAnalysis:
    """What a bundle says about a clip, and where it looked.

    Attributes:
        prediction: the per-frame ``BundlePrediction`` (``(T, K)`` probabilities).
        verdict: ``(K,)`` the clip verdict, the mean frame probability of each class.
        verdict_class: index of the verdict's most probable class.
        maps: ``(K', T, h, w)`` float32 raw signed maps of the explained classes over the full frame
            (zero outside the scan region), ``h, w`` the frame's size or smaller (``max_map_side``).
        classes: the ``K'`` explained class indices, in the order of ``maps``.
        key_frames: for each explained class index, its ``ClipExplanation`` (key frames, importance).
        method: the CAM method.
        layer: the explained layer.
        crop_box: the window of each frame the network saw (frame pixels), or None for the whole frame.
        frame_times_ms: ``(T,)`` time of each frame from the first one.
    """

    prediction: BundlePrediction
    verdict: np.ndarray
    verdict_class: int
    maps: np.ndarray
    classes: tuple[int, ...]
    key_frames: dict[int, ClipExplanation]
    method: str
    layer: str
    crop_box: CropBox | None
    frame_times_ms: np.ndarray

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.prediction.class_names

    def maps_of(self, class_index: int) -> np.ndarray:
        """``(T, h, w)`` maps of one explained class.

        Raises:
            KeyError: the class was not explained.
        """
        if class_index not in self.classes:
            raise KeyError(f"class {class_index} was not explained (explained: {list(self.classes)})")
        return self.maps[self.classes.index(class_index)]


def frame_times(volume: ImageVolume) -> np.ndarray:
    """Each frame's time in ms from the first: the reader's timestamps, else the mean interval."""
    times = volume.extras.get("frame_times_ms")
    if times is not None and len(times) == volume.n_slices:
        return np.asarray(times, dtype=np.float64)
    return np.arange(volume.n_slices, dtype=np.float64) * float(volume.frame_time_ms or 0.0)


def analyse_clip(
    bundle: Bundle,
    volume: ImageVolume,
    method: str = "gradcam",
    classes: Sequence[int] | None = None,
    progress: Progress | None = None,
    max_map_side: int | None = None,
    top_k: int = 3,
    score: str | None = None,
) -> ClipAnalysis:
    """Classify every frame of a clip, form the clip verdict, and explain it frame by frame.

    Args:
        bundle: a frame classifier (e.g. the lung-ultrasound bundle).
        volume: the clip (a still image works too: one frame).
        method: a CAM method name (``Bundle.explain``).
        classes: class indices to explain; None explains every class.
        progress: told the fraction done; cancellation raises ``engine.progress.Cancelled``.
        max_map_side: longest side of the maps' grid (None: the frame's own size).
        top_k: key frames named per class.
        score: "logit" (the default for gradient methods) or "probability". The clip verdict is
            the mean frame probability, so with "probability" each frame's map is the frame's
            share of the verdict's explanation times the number of frames.

    Returns:
        The ``ClipAnalysis``.

    Raises:
        ValueError: unknown method or class index.
        engine.errors.BundleError: the clip lacks a channel the model needs.
    """
    progress = progress or NullProgress()
    prediction = bundle.predict(volume, progress=ScaledProgress(progress, 0.0, PREDICT_SHARE))
    probabilities = np.asarray(prediction.probabilities, dtype=np.float64)
    verdict = probabilities.mean(axis=0)
    chosen = tuple(range(len(bundle.class_names))) if classes is None else tuple(int(c) for c in classes)
    maps = bundle.explain(
        volume, method=method, classes=chosen, progress=ScaledProgress(progress, PREDICT_SHARE, 1.0),
        max_map_side=max_map_side, score=score,
    )
    key_frames = {k: clip_explanation(maps[i], probabilities[:, k], top_k=top_k) for i, k in enumerate(chosen)}
    progress.report(1.0, f"explained {volume.n_slices} frames")
    return ClipAnalysis(
        prediction=prediction,
        verdict=verdict,
        verdict_class=int(np.argmax(verdict)),
        maps=maps,
        classes=chosen,
        key_frames=key_frames,
        method=method,
        layer=bundle.target_layer,
        crop_box=bundle.crop_box(volume),
        frame_times_ms=frame_times(volume),
    )
