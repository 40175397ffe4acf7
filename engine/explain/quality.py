"""Measures a reviewer reads next to a map: is it faithful to the model, does it point at the lesion?

* ``deletion_curve`` / ``insertion_curve``: causal curves of Petsiuk et al. (RISE, 2018).
* ``confidence_change``: average drop and increase in confidence (Chattopadhay et al. 2018).
* ``pointing_game``: does the map's peak fall in the expert mask (Zhang et al. 2018)?
* ``energy_inside_mask``: share of positive map energy inside the mask (Wang et al. 2020).
* ``randomisation_check``: does the map change when the model's weights are randomised
  (Adebayo et al. 2018)? A map that does not is flagged as not trustworthy.

Everything works on any number of spatial axes and returns small dataclasses with ``to_dict()``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy import ndimage, stats
from torch import nn

from engine.explain.summary import as_numpy
from engine.explain.perturbation import (
    DEFAULT_MAX_BATCH_BYTES,
    Target,
    class_indices,
    class_scores,
    evaluating,
    items_per_chunk,
)
from engine.progress import NullProgress, Progress, check_cancelled


@dataclass
class CurveResult:
    """A deletion or insertion curve: class probability against the fraction of pixels changed.

    Attributes:
        kind: "deletion" (lower AUC is better) or "insertion" (higher AUC is better).
        class_index: the class whose probability was followed.
        fractions: fraction of pixels removed or inserted at each step, from 0 to 1.
        scores: softmax probability of the class at each step.
        auc: trapezoidal area under the curve over [0, 1], in [0, 1].
    """

    kind: str
    class_index: int
    fractions: list[float]
    scores: list[float]
    auc: float

    def to_dict(self) -> dict:
        return asdict(self)


def _baseline_image(x: torch.Tensor, baseline: float | str, blur_sigma: float) -> torch.Tensor:
    if baseline == "blur":
        sigma = (0.0, 0.0) + (blur_sigma,) * (x.ndim - 2)
        blurred = ndimage.gaussian_filter(as_numpy(x).astype(np.float64), sigma)
        return torch.from_numpy(blurred).to(device=x.device, dtype=x.dtype)
    if isinstance(baseline, (int, float)):
        return torch.full_like(x, float(baseline))
    raise ValueError(f"baseline must be a number or 'blur', got {baseline!r}")


def _causal_curve(
    kind: str,
    model: nn.Module,
    x: torch.Tensor,
    saliency: np.ndarray | torch.Tensor,
    target: Target,
    n_steps: int,
    baseline: float | str,
    blur_sigma: float,
    chunk_size: int,
    max_batch_bytes: int,
    progress: Progress | None,
) -> CurveResult:
    progress = progress or NullProgress()
    if x.ndim < 3 or x.shape[0] != 1:
        raise ValueError(f"{kind} curve explains one image (1, C, *spatial), got {tuple(x.shape)}")
    spatial = tuple(x.shape[2:])
    saliency = as_numpy(saliency).astype(np.float64).reshape(-1)
    if saliency.size != int(np.prod(spatial)):
        raise ValueError(f"saliency has {saliency.size} values for an image of spatial shape {spatial}")
    if n_steps < 1:
        raise ValueError(f"n_steps must be at least 1, got {n_steps}")
    order = np.argsort(-saliency, kind="stable")
    rank = torch.empty(saliency.size, dtype=torch.long)
    rank[torch.from_numpy(order)] = torch.arange(saliency.size)
    rank = rank.reshape(spatial).to(x.device)
    counts = torch.from_numpy(np.round(np.linspace(0, saliency.size, n_steps + 1)).astype(np.int64))
    reference = _baseline_image(x, baseline, blur_sigma)
    start, end = (x, reference) if kind == "deletion" else (reference, x)
    per_chunk = items_per_chunk(x.numel(), x.dtype, chunk_size, max_batch_bytes)
    scores: list[float] = []
    with evaluating(model), torch.no_grad():
        classes = class_indices(target, model(x))
        for first in range(0, n_steps + 1, per_chunk):
            check_cancelled(progress)
            steps = counts[first : first + per_chunk].to(x.device)
            changed = (rank.unsqueeze(0) < steps.reshape((-1,) + (1,) * len(spatial))).unsqueeze(1)
            batch = torch.where(changed, end, start)
            chosen = classes.expand(len(steps))
            scores.extend(class_scores(model(batch), chosen, "softmax").tolist())
            progress.report(len(scores) / (n_steps + 1), f"{kind} curve")
    fractions = (counts.double() / saliency.size).tolist()
    auc = float(np.trapezoid(scores, fractions))
    return CurveResult(kind, int(classes[0]), fractions, scores, auc)


def deletion_curve(
    model: nn.Module,
    x: torch.Tensor,
    saliency: np.ndarray | torch.Tensor,
    target: Target = None,
    *,
    n_steps: int = 32,
    baseline: float | str = 0.0,
    blur_sigma: float = 5.0,
    chunk_size: int = 16,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    progress: Progress | None = None,
) -> CurveResult:
    """Deletion: remove the most salient pixels first; a faithful map makes the score fall fast.

    Petsiuk, Das and Saenko, "RISE: Randomized Input Sampling for Explanation of Black-box
    Models", BMVC 2018. Pixels (all channels at once) are ranked by saliency, highest first, and
    replaced by the baseline in ``n_steps`` equal steps; the steps are forwarded in batches.

    Args:
        model: classifier returning ``(B, K)`` logits.
        x: one image ``(1, C, *spatial)``.
        saliency: map with ``prod(spatial)`` values (``(*spatial)`` or ``(1, *spatial)``).
        target: class index, or None for the predicted class.
        n_steps: number of steps between "nothing removed" and "everything removed".
        baseline: constant value, or "blur" for a Gaussian-blurred copy of the image.
        blur_sigma: Gaussian sigma in pixels for the blur baseline.
        chunk_size: most steps per forward pass.
        max_batch_bytes: most bytes of perturbed images per forward pass.
        progress: optional progress sink.

    Returns:
        ``CurveResult`` (lower AUC is better).
    """
    return _causal_curve(
        "deletion", model, x, saliency, target, n_steps, baseline, blur_sigma, chunk_size, max_batch_bytes, progress
    )


def insertion_curve(
    model: nn.Module,
    x: torch.Tensor,
    saliency: np.ndarray | torch.Tensor,
    target: Target = None,
    *,
    n_steps: int = 32,
    baseline: float | str = "blur",
    blur_sigma: float = 5.0,
    chunk_size: int = 16,
    max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
    progress: Progress | None = None,
) -> CurveResult:
    """Insertion: reveal the most salient pixels first on a baseline; the score should rise fast.

    Petsiuk, Das and Saenko, BMVC 2018 (see ``deletion_curve``; arguments are the same, the default
    baseline is the blurred image as in the paper). Higher AUC is better.
    """
    return _causal_curve(
        "insertion", model, x, saliency, target, n_steps, baseline, blur_sigma, chunk_size, max_batch_bytes, progress
    )


@dataclass
class ConfidenceChange:
    """Average drop and increase in confidence over a batch, both in percent.

    Attributes:
        average_drop: ``100 * mean(max(0, Y - O) / Y)``; lower is better.
        increase_in_confidence: ``100 * mean(O > Y)``; higher is better.
        full_scores: ``Y``, class probability on each full image.
        masked_scores: ``O``, class probability on each image multiplied by its map.
    """

    average_drop: float
    increase_in_confidence: float
    full_scores: list[float]
    masked_scores: list[float]

    def to_dict(self) -> dict:
        return asdict(self)


def confidence_change(
    model: nn.Module, x: torch.Tensor, maps: np.ndarray | torch.Tensor, target: Target = None
) -> ConfidenceChange:
    """Average drop and increase in confidence when only what the map shows is kept.

    Chattopadhay et al., "Grad-CAM++: Generalized Gradient-based Visual Explanations for Deep
    Convolutional Networks", WACV 2018. Each map is rectified and divided by its maximum (0 stays
    0, so the map is never inverted) and multiplies its image.

    Args:
        model: classifier returning ``(B, K)`` logits.
        x: images ``(B, C, *spatial)``.
        maps: raw maps ``(B, *spatial)`` at the input resolution.
        target: class index, per-image indices, or None for the predicted class.
    """
    weights = torch.as_tensor(as_numpy(maps), dtype=x.dtype, device=x.device).clamp_min(0)
    if tuple(weights.shape) != (x.shape[0],) + tuple(x.shape[2:]):
        raise ValueError(f"maps of shape {tuple(weights.shape)} do not match images {tuple(x.shape)}")
    peak = weights.reshape(x.shape[0], -1).amax(dim=1).reshape((-1,) + (1,) * (weights.ndim - 1))
    weights = torch.where(peak > 0, weights / peak.clamp_min(torch.finfo(x.dtype).tiny), 0.0)
    with evaluating(model), torch.no_grad():
        logits = model(x)
        classes = class_indices(target, logits)
        full = class_scores(logits, classes, "softmax").double()
        masked = class_scores(model(x * weights.unsqueeze(1)), classes, "softmax").double()
    drop = (full - masked).clamp_min(0) / full.clamp_min(1e-12)
    return ConfidenceChange(
        average_drop=float(100.0 * drop.mean()),
        increase_in_confidence=float(100.0 * (masked > full).double().mean()),
        full_scores=full.tolist(),
        masked_scores=masked.tolist(),
    )


@dataclass
class PointingResult:
    """Outcome of the pointing game for one map and mask.

    Attributes:
        hit: the map's peak lies in the mask or within ``tolerance`` of it.
        peak: index of the map's maximum (the first one in C order when tied).
        distance: distance from the peak to the nearest mask pixel (0 inside), in pixels or in the
            units of ``spacing``.
        tolerance: the tolerance used.
        tied_peaks: how many pixels share the maximum value.
    """

    hit: bool
    peak: tuple[int, ...]
    distance: float
    tolerance: float
    tied_peaks: int

    def to_dict(self) -> dict:
        return asdict(self)


def _matching_mask(saliency: np.ndarray, mask: np.ndarray | torch.Tensor) -> np.ndarray:
    mask = as_numpy(mask).astype(bool)
    if mask.shape != saliency.shape:
        raise ValueError(f"mask of shape {mask.shape} does not match the map of shape {saliency.shape}")
    return mask


def pointing_game(
    saliency: np.ndarray | torch.Tensor,
    mask: np.ndarray | torch.Tensor,
    tolerance: float = 0.0,
    spacing: Sequence[float] | None = None,
) -> PointingResult:
    """Pointing game: a hit when the map's maximum falls on the object.

    Zhang et al., "Top-down Neural Attention by Excitation Backprop", IJCV 2018 (the paper allows
    a 15-pixel tolerance).

    Args:
        saliency: map ``(*spatial)``.
        mask: object mask of the same shape (non-zero inside).
        tolerance: largest distance from the mask that still counts as a hit.
        spacing: size of a pixel along each axis, so distances are in those units (default 1).

    Raises:
        ValueError: when the mask is empty or its shape differs from the map's.
    """
    values = as_numpy(saliency).astype(np.float64)
    inside = _matching_mask(values, mask)
    if not inside.any():
        raise ValueError("the pointing game needs a non-empty mask")
    peak = tuple(int(i) for i in np.unravel_index(int(np.nanargmax(values)), values.shape))
    distance = float(ndimage.distance_transform_edt(~inside, sampling=spacing)[peak])
    tied = int(np.count_nonzero(values == values[peak]))
    return PointingResult(distance <= tolerance, peak, distance, float(tolerance), tied)


@dataclass
class EnergyResult:
    """Share of the map's positive energy that lies inside a mask.

    Attributes:
        fraction: ``inside / total`` in [0, 1]; 0 when the map has no positive part.
        inside: sum of the positive map inside the mask.
        total: sum of the positive map.
    """

    fraction: float
    inside: float
    total: float

    def to_dict(self) -> dict:
        return asdict(self)


def energy_inside_mask(saliency: np.ndarray | torch.Tensor, mask: np.ndarray | torch.Tensor) -> EnergyResult:
    """Energy-based pointing game: ``sum(relu(map) * mask) / sum(relu(map))``.

    Wang et al., "Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
    Networks", CVPR Workshops 2020, section 5.2.
    """
    positive = np.clip(as_numpy(saliency).astype(np.float64), 0.0, None)
    inside_mask = _matching_mask(positive, mask)
    total = float(positive.sum())
    inside = float(positive[inside_mask].sum())
    return EnergyResult(inside / total if total > 0 else 0.0, inside, total)



def spearman_similarity(first: np.ndarray | torch.Tensor, second: np.ndarray | torch.Tensor) -> float:
    """Spearman rank correlation of two maps' values (1.0 if both are constant, 0.0 if one is)."""
    a, b = as_numpy(first).astype(np.float64).ravel(), as_numpy(second).astype(np.float64).ravel()
    constant_a, constant_b = np.ptp(a) == 0, np.ptp(b) == 0
    if constant_a or constant_b:
        return 1.0 if constant_a and constant_b else 0.0
    return float(stats.spearmanr(a, b).statistic)


def structural_similarity(
    first: np.ndarray | torch.Tensor, second: np.ndarray | torch.Tensor, window: int = 7
) -> float:
    """Mean windowed SSIM of two maps, each min-max scaled to [0, 1] first (any number of axes).

    Wang et al., "Image Quality Assessment: From Error Visibility to Structural Similarity", IEEE
    TIP 2004, with a uniform window of ``window`` pixels per axis (clipped to the map size).
    """
    maps = []
    for array in (first, second):
        values = as_numpy(array).astype(np.float64)
        span = np.ptp(values)
        maps.append((values - values.min()) / span if span > 0 else np.zeros_like(values))
    a, b = maps
    size = [max(1, min(window, n)) for n in a.shape]
    mean_a, mean_b = ndimage.uniform_filter(a, size), ndimage.uniform_filter(b, size)
    var_a = ndimage.uniform_filter(a * a, size) - mean_a**2
    var_b = ndimage.uniform_filter(b * b, size) - mean_b**2
    covariance = ndimage.uniform_filter(a * b, size) - mean_a * mean_b
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mean_a * mean_b + c1) * (2 * covariance + c2)) / (
        (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2)
    )
    return float(ssim.mean())


@dataclass
class RandomisationStep:
    """One step of a randomisation check: which layers were random, how similar the map stayed.

    ``spearman_in_region`` ranks only the pixels inside the check's region (None without one).
    """

    layers: list[str]
    spearman: float
    ssim: float
    spearman_in_region: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class SanityResult:
    """Outcome of a model-parameter randomisation check.

    Attributes:
        trustworthy: False when the map stays similar to the original although the weights it
            should depend on were randomised.
        reason: one line saying why, for the reader.
        mode: "cascading" or "independent".
        threshold: Spearman correlation at or above which a map counts as unchanged.
        steps: one ``RandomisationStep`` per randomised state, top layer first.
        decided_on: "whole map" or "region" (the pixels the decision ranked).
        region_fraction: share of the map inside the region (None without one).
    """

    trustworthy: bool
    reason: str
    mode: str
    threshold: float
    steps: list[RandomisationStep] = field(default_factory=list)
    decided_on: str = "whole map"
    region_fraction: float | None = None

    def to_dict(self) -> dict:
        return {
            "trustworthy": self.trustworthy,
            "reason": self.reason,
            "mode": self.mode,
            "threshold": self.threshold,
            "decided_on": self.decided_on,
            "region_fraction": self.region_fraction,
            "steps": [step.to_dict() for step in self.steps],
        }


def layers_in_forward_order(model: nn.Module, x: torch.Tensor) -> list[str]:
    """Names of the modules that own parameters directly, in the order a forward pass calls them."""
    owners = {name: module for name, module in model.named_modules() if any(True for _ in module.parameters(False))}
    called: list[str] = []
    handles = [
        module.register_forward_hook(lambda m, i, o, name=name: called.append(name) if name not in called else None)
        for name, module in owners.items()
    ]
    try:
        with evaluating(model), torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return called


def _randomise(module: nn.Module, generator: torch.Generator) -> None:
    """Re-draw every parameter of ``module`` from N(0, s), s = the parameter's own spread."""
    with torch.no_grad():
        for parameter in module.parameters():
            spread = float(parameter.std()) if parameter.numel() > 1 else 0.0
            scale = spread if spread > 0 else max(abs(float(parameter.mean())), 1e-2)
            noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float64)
            parameter.copy_((noise * scale).to(parameter.dtype))


def randomisation_check(
    model: nn.Module,
    x: torch.Tensor,
    explain: Callable[[nn.Module, torch.Tensor], np.ndarray | torch.Tensor],
    *,
    layers: Sequence[str] | None = None,
    mode: str = "cascading",
    threshold: float = 0.5,
    seed: int = 0,
    region: np.ndarray | torch.Tensor | None = None,
    progress: Progress | None = None,
) -> SanityResult:
    """Sanity check by model parameter randomisation.

    Adebayo et al., "Sanity Checks for Saliency Maps", NeurIPS 2018. On a deep copy of ``model``
    (the model itself is never touched) layers are randomised from the top (output side) down,
    either cumulatively ("cascading") or one at a time with the others left trained
    ("independent"), and the map is recomputed each time and compared with the original by
    Spearman rank correlation and SSIM. A map that does not depend on what the model learned
    stays similar. It is flagged ``trustworthy=False`` when the Spearman correlation is still at
    or above ``threshold`` after every layer is randomised (cascading), or for every single layer
    randomised alone (independent).

    Ranking the whole map rewards a map for following the image's outline: where the input is
    black background, a randomised network's map is flat too, and those pixels rank alike before
    and after (Adebayo et al. show random networks acting as edge detectors). With a ``region``
    (the image's foreground: brain, scan sector, tissue) the decision ranks only the pixels inside
    it; the whole-map figures are still reported beside it.

    Args:
        model: the classifier the map explains.
        x: the input the map was computed for.
        explain: ``explain(model, x) -> map``; called on the original and on each randomised copy
            (fix its class, so that randomisation does not change what is explained).
        layers: dotted module names in forward order; default: every module that owns
            parameters, in the order a forward pass calls it.
        mode: "cascading" or "independent".
        threshold: Spearman correlation at or above which a map counts as unchanged.
        seed: seed of the random weights, so a check can be repeated.
        region: boolean mask of the map's shape; the decision then ranks only the pixels inside.
        progress: optional progress sink.

    Raises:
        ValueError: for an unknown mode, a model with no parameters, or a region that does not
            match the map or holds fewer than 2 pixels.
        KeyError: for a layer name that does not exist.
    """
    if mode not in ("cascading", "independent"):
        raise ValueError(f"mode must be 'cascading' or 'independent', got {mode!r}")
    progress = progress or NullProgress()
    original = as_numpy(explain(model, x)).astype(np.float64)
    inside = None if region is None else as_numpy(region).astype(bool)
    if inside is not None and (inside.shape != original.shape or inside.sum() < 2):
        raise ValueError(f"region {inside.shape} with {int(inside.sum())} pixels does not fit the map {original.shape}")
    trial = copy.deepcopy(model)
    names = list(layers) if layers is not None else layers_in_forward_order(trial, x)
    if not names:
        raise ValueError("the model has no parameters to randomise")
    modules = dict(trial.named_modules())
    missing = [name for name in names if name not in modules]
    if missing:
        raise KeyError(f"layers {missing} are not in {type(model).__name__}")
    generator = torch.Generator().manual_seed(seed)
    steps: list[RandomisationStep] = []
    for position, name in enumerate(reversed(names)):
        check_cancelled(progress)
        module = modules[name]
        saved = copy.deepcopy(module.state_dict()) if mode == "independent" else None
        _randomise(module, generator)
        randomised = as_numpy(explain(trial, x)).astype(np.float64)
        done = list(reversed(names))[: position + 1] if mode == "cascading" else [name]
        similarity = spearman_similarity(original, randomised), structural_similarity(original, randomised)
        in_region = None if inside is None else spearman_similarity(original[inside], randomised[inside])
        steps.append(RandomisationStep(done, *similarity, spearman_in_region=in_region))
        if saved is not None:
            module.load_state_dict(saved)
        progress.report((position + 1) / len(names), f"randomised {name}")
    decided_on = "whole map" if inside is None else "region"
    scores = [step.spearman if inside is None else step.spearman_in_region for step in steps]
    deciding = scores[-1] if mode == "cascading" else min(scores)
    where = "" if inside is None else " inside the image's foreground"
    region_fraction = None if inside is None else float(inside.mean())
    if deciding >= threshold:
        what = "all layers are randomised" if mode == "cascading" else "any single layer is randomised"
        reason = (
            f"the map stays similar to the original{where} (Spearman {deciding:.2f} >= {threshold:.2f}) when {what}: "
            "it does not depend on what the model learned"
        )
        return SanityResult(False, reason, mode, threshold, steps, decided_on, region_fraction)
    reason = (
        f"the map changes{where} when the weights are randomised (Spearman falls to {deciding:.2f} < {threshold:.2f})"
    )
    return SanityResult(True, reason, mode, threshold, steps, decided_on, region_fraction)
