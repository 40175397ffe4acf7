"""``analyse_case``: from an image and a bundle to predictions and maps in one call.

The kind of image decides how it is read by the model, here and nowhere else:

* item-wise images (a volume's slices, a still image, a patch) are preprocessed once and
  captured batch by batch (``engine.analysis.items``);
* a clip is analysed frame by frame like them and adds its verdict (the mean frame probability),
  its frame times and each explained class's key frames (``engine.analysis.clip``);
* a slide is cut into tissue tiles at the model's magnification, its score is the mean tile
  probability and its maps are stitched on the thumbnail grid (``engine.analysis.slide``).

Every batch is ONE ``CamCapture``: the forward pass gives the predictions (temperature-scaled as
``Bundle.predict`` does) and one partial backward gives every requested gradient-family method
for every requested class. The activations and gradients can be kept (within a memory budget) so
that ``add_methods`` adds gradient-family maps later with no forward pass.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.analysis.items import SHOWN, add_item_methods, analyse_items
from engine.analysis.result import CAPTURE_BUDGET_BYTES, CaseAnalysis
from engine.analysis.uncertainty import DEFAULT_SAMPLES, resolve_method
from engine.analysis.slide import add_slide_methods, analyse_slide
from engine.imaging.volume import ImageVolume
from engine.models.bundle import Bundle
from engine.models.inference import check_methods, method_score
from engine.progress import Progress


def _methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    """Method names in order, each once; one name may be given as a string.

    Raises:
        ValueError: an unknown method (the message lists the known ones).
    """
    names = (methods,) if isinstance(methods, str) else tuple(methods)
    check_methods(names)
    return tuple(dict.fromkeys(names))


def analyse_case(
    volume: ImageVolume,
    bundle: Bundle,
    methods: str | Sequence[str] = ("gradcam",),
    classes: Sequence[int] | str | None = None,
    score: str | None = None,
    progress: Progress | None = None,
    batch_size: int = 32,
    max_map_side: int | None = None,
    keep_capture: bool = True,
    *,
    capture_budget_bytes: int = CAPTURE_BUDGET_BYTES,
    top_k: int = 3,
    grid_shape: tuple[int, int] | None = None,
    tile_mpp: float | None = None,
    uncertainty: str | None = None,
    uncertainty_samples: int = DEFAULT_SAMPLES,
) -> CaseAnalysis:
    """Predict every item of a case and make the maps of every requested method.

    Cost: the volume is preprocessed once; each batch of ``batch_size`` items (tiles for a
    slide) runs the network forward once and backward once, from the logits to the target layer
    only, for all requested classes together; every gradient-family method comes from that one
    capture. Smooth Grad-CAM++ adds ``SMOOTH_SAMPLES`` noisy copies of each item to the same
    forward pass. Score-CAM and occlusion run many more forward passes of their own (chunked
    under a memory bound). With no methods, only the predictions are made.

    Args:
        volume: the image as ``engine.imaging.read_image`` returned it.
        bundle: the model (``engine.models.load_bundle``).
        methods: CAM method names (``engine.models.inference.method_names()``), or one name; may
            be empty.
        classes: class indices to explain; None explains every class; ``"shown"`` explains only
            the class a reviewer looks at first (``CaseAnalysis.class_to_show``), chosen after
            the predictions (gradients of every class are captured, maps made for that one).
        score: what the maps explain, "logit" or "probability"; None is each method's own
            default (the logit for gradient methods, the probability for Score-CAM and occlusion).
        progress: told after each batch; cancellation raises ``engine.progress.Cancelled``.
        batch_size: items (tiles) per forward pass.
        max_map_side: when given and smaller than the longer side of a frame, maps are drawn on a
            grid scaled down to that longer side (the viewer stretches them). Not used for
            slides, whose maps lie on ``grid_shape``.
        keep_capture: keep the activations and per-class gradients at the target layer
            (``CaseAnalysis.capture``) for ``add_methods``, if they fit ``capture_budget_bytes``;
            when they do not, a note says so.
        capture_budget_bytes: the most memory a kept capture may take.
        top_k: key frames named per class (clips).
        grid_shape: a slide's map grid ``(H, W)``; None: the volume's (its thumbnail's) grid.
        tile_mpp: microns per pixel a slide's tiles are taken to have (None: the bundle's).
        uncertainty: "mc_dropout", "tta", "auto" (MC dropout when the network has dropout, else
            test-time augmentation) or None (none): ``CaseAnalysis.uncertainty`` then holds how
            much each answer moves over ``uncertainty_samples`` draws (``engine.analysis.uncertainty``).
            Costs ``uncertainty_samples`` forward passes per item (a slide's tiles are read again).
        uncertainty_samples: draws per item.

    Returns:
        The ``CaseAnalysis``.

    Raises:
        ValueError: an unknown method, class index, score or ``classes`` word, a bad
            ``max_map_side``, CAM on a network without a pooling-then-linear head, an unknown
            uncertainty method, or MC dropout asked of a network without dropout.
        engine.errors.BundleError: the image lacks a channel the model needs, or a slide given
            to a model that does not read tiles.
        engine.progress.Cancelled: the user cancelled.
    """
    names = _methods(methods)
    method_score("gradcam", score)  # checks the word
    shown = isinstance(classes, str)
    if shown and classes != SHOWN:
        raise ValueError(f"classes must be class indices, None or {SHOWN!r}, got {classes!r}")
    keep_bytes = capture_budget_bytes if keep_capture else 0
    sampling = resolve_method(bundle.network, uncertainty)
    if sampling is not None and uncertainty_samples < 1:
        raise ValueError(f"uncertainty_samples must be at least 1, got {uncertainty_samples}")
    if volume.kind == "slide":
        return analyse_slide(
            bundle, volume.source, names, None if shown else classes, score=score, progress=progress,
            grid_shape=grid_shape if grid_shape is not None else tuple(volume.shape[1:]), tile_mpp=tile_mpp,
            batch_size=batch_size, keep_bytes=keep_bytes, shown_only=shown, content_hash=volume.content_hash,
            uncertainty=sampling, samples=uncertainty_samples,
        )
    return analyse_items(
        volume, bundle, names, classes, score=score, progress=progress, batch_size=batch_size,
        max_map_side=max_map_side, keep_bytes=keep_bytes, top_k=top_k, uncertainty=sampling,
        samples=uncertainty_samples,
    )


def add_methods(
    analysis: CaseAnalysis,
    volume: ImageVolume,
    bundle: Bundle,
    methods: str | Sequence[str],
    progress: Progress | None = None,
) -> CaseAnalysis:
    """The analysis with the maps of more methods, for the same classes, score and grid.

    Cost, per method: a gradient-family method (CAM, Grad-CAM, Grad-CAM++, XGrad-CAM, HiResCAM,
    LayerCAM, Eigen-CAM, EigenGrad-CAM, CF-CAM) is computed from ``analysis.capture`` with NO
    forward pass. Without a kept capture (over its budget, or ``keep_capture=False``) the items
    are captured again, one forward pass per batch, and a note says so. Smooth Grad-CAM++ always
    needs its noisy copies: one forward pass per batch over ``1 + SMOOTH_SAMPLES`` copies of each
    item. Score-CAM and occlusion run their own forward passes, as in ``analyse_case``. A slide
    without a kept capture reads its tissue tiles again (not searched anew).

    Args:
        analysis: from ``analyse_case``.
        volume: the image analysed (the same content).
        bundle: the model analysed with (the same weights).
        methods: method names, or one name; those already in the analysis are left as they are.
        progress: told after each batch; cancellation raises ``engine.progress.Cancelled``.

    Returns:
        A new ``CaseAnalysis``: the same predictions, the old maps and the new ones.

    Raises:
        ValueError: an unknown method, or a volume or bundle other than the analysed ones.
    """
    names = _methods(methods)
    if bundle.weights_sha256 != analysis.weights_sha256:
        raise ValueError(f"bundle {bundle.name} {bundle.version} is not the one this analysis was made with "
                         f"({analysis.bundle_name} {analysis.bundle_version})")
    if analysis.content_hash is not None and volume.content_hash != analysis.content_hash:
        raise ValueError(f"{volume.source} is not the image this analysis was made of ({analysis.source})")
    new = [m for m in names if m not in analysis.maps]
    if not new:
        return analysis
    if analysis.slide is not None:
        return add_slide_methods(analysis, bundle, new, progress)
    return add_item_methods(analysis, volume, bundle, new, progress)
