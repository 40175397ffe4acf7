"""Item-wise analysis: a volume's slices, a clip's frames, a still image or a patch.

The volume is preprocessed once. One ``CamCapture`` per batch gives the logits (hence the
probabilities) and the gradients of every requested class, from which every gradient-family
method's maps are computed; perturbation methods (Score-CAM, occlusion) then run their own
forward passes on the same preprocessed inputs. A clip adds its verdict (the mean frame
probability) and the key frames of each explained class. A whole-volume (3-D) model's volume is
one item: its row is the verdict, its map is put on every slice, and each explained class gets
its key slices (``engine.analysis.whole_volume``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np
import torch

from engine.analysis import clip, whole_volume
from engine.analysis.result import CaseAnalysis, MapSet, model_fields
from engine.analysis.uncertainty import DEFAULT_SAMPLES, PROGRESS_SHARE, estimate_uncertainty
from engine.imaging.volume import ImageVolume
from engine.models.bundle import Bundle
from engine.models.crop_box import MapGrid
from engine.models.inference import (
    SMOOTH_SAMPLES,
    batches,
    calibrated_probabilities,
    capture_pass,
    maps_from_capture,
    method_score,
    on_grid,
    perturb_items,
    predict_items,
)
from engine.models.task_registry import task_spec
from engine.models.volume_box import VolumeGrid
from engine.progress import NullProgress, Progress, ScaledProgress

#: ``classes`` value that explains only the class a reviewer looks at first (``class_to_show``).
SHOWN = "shown"

#: Share of the progress bar the capture pass takes when perturbation methods follow it.
CAPTURE_SHARE = 0.2


def split_methods(methods: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(gradient family, perturbation)`` method names, each in the order given."""
    from engine.explain.perturbation import PERTURBATION_METHODS

    perturbation = [m for m in methods if m in PERTURBATION_METHODS]
    return [m for m in methods if m not in perturbation], perturbation


def chunks(inputs: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    """Consecutive batches of ``inputs``."""
    for chunk in batches(inputs.shape[0], batch_size):
        yield inputs[chunk.start : chunk.stop]


def over_budget_note(capture_bytes: int, budget: int) -> str:
    """The note said when a capture is too large to keep."""
    return (f"The capture ({capture_bytes / 2**20:.0f} MB) exceeds its {budget / 2**20:.0f} MB budget and was not "
            "kept: another method needs another forward pass per batch.")


def analyse_items(
    volume: ImageVolume,
    bundle: Bundle,
    methods: Sequence[str],
    classes: Sequence[int] | str | None,
    *,
    score: str | None,
    progress: Progress | None,
    batch_size: int,
    max_map_side: int | None,
    keep_bytes: int,
    top_k: int,
    uncertainty: str | None = None,
    samples: int = DEFAULT_SAMPLES,
) -> CaseAnalysis:
    """``analyse_case`` for every kind but slides (see there for the arguments; ``uncertainty``
    is a method resolved by ``engine.analysis.uncertainty.resolve_method``, or None)."""
    outer = progress or NullProgress()
    progress = ScaledProgress(outer, 0.0, 1 - PROGRESS_SHARE) if uncertainty else outer
    inputs = bundle.preprocess(volume)
    grid = bundle.map_grid(volume, max_map_side)
    gradient, perturbation = split_methods(methods)
    shown = isinstance(classes, str)  # SHOWN, checked by analyse_case
    captured = bundle.class_indices(None if shown else classes)  # type: ignore[arg-type]
    share = CAPTURE_SHARE if perturbation else 1.0
    notes = []
    layer_maps: dict[str, torch.Tensor] = {}
    capture = None
    if methods or keep_bytes > 0:
        item_pass = capture_pass(
            bundle.network, bundle.target_layer, chunks(inputs, batch_size), inputs.shape[0], gradient, captured,
            score=score, progress=ScaledProgress(progress, 0.0, share), keep_bytes=keep_bytes,
        )
        logits, capture, layer_maps = item_pass.logits, item_pass.capture, item_pass.layer_maps
        if keep_bytes > 0 and capture is None:
            notes.append(over_budget_note(item_pass.capture_bytes, keep_bytes))
    else:
        logits, _ = predict_items(bundle.network, inputs, batch_size=batch_size,
                                  progress=ScaledProgress(progress, 0.0, share))
    probabilities = calibrated_probabilities(logits, bundle.temperature)
    whole = bundle.whole_volume
    is_clip = volume.kind == "clip" and not whole
    if whole:
        notes.append(whole_volume.volume_note(grid.box, bundle.input_size))
    elif grid.box is not None:
        notes.append("The model sees a window of each frame only (its crop box, e.g. an ultrasound's scan region); "
                     "the map is zero outside it.")
    verdict = None
    if whole:
        verdict = whole_volume.volume_verdict(probabilities, volume.n_slices)
    elif is_clip and len(probabilities):
        verdict = clip.clip_verdict(probabilities)
    analysis = CaseAnalysis(
        **model_fields(bundle),
        kind=volume.kind,
        item_axis="frame" if is_clip else task_spec(bundle.task).item_axis,
        logits=logits,
        probabilities=probabilities,
        maps={},
        verdict=verdict,
        crop_box=None if whole else grid.box,
        volume_box=grid.box if whole else None,
        frame_times_ms=clip.frame_times(volume) if is_clip else None,
        notes=tuple(notes),
        source=volume.source,
        content_hash=volume.content_hash,
        score=score,
        max_map_side=max_map_side,
        batch_size=batch_size,
        top_k=top_k,
        capture=capture,
    )
    chosen = [analysis.class_to_show()] if shown else captured
    rows = [captured.index(k) for k in chosen]
    layer_maps = {m: maps[rows] for m, maps in layer_maps.items()}
    maps = _map_sets(analysis, bundle, methods, chosen, layer_maps, inputs, grid, ScaledProgress(progress, share, 1.0))
    progress.report(1.0, f"analysed {inputs.shape[0]} items")
    analysis = replace(analysis, maps=maps)
    if uncertainty and len(probabilities):
        k = analysis.class_to_show()
        case_item = int(np.argmax(probabilities[:, k]))
        shown_case = analysis.verdict.probabilities if analysis.verdict is not None else probabilities[case_item]
        estimate = estimate_uncertainty(
            bundle, chunks(inputs, batch_size), inputs.shape[0], shown_case, method=uncertainty,
            pooled=analysis.verdict is not None, case_item=case_item, samples=samples, batch_size=batch_size,
            progress=ScaledProgress(outer, 1 - PROGRESS_SHARE, 1.0),
        )
        analysis = replace(analysis, uncertainty=estimate)
    return analysis


def plan_added(analysis: CaseAnalysis, methods: Sequence[str]) -> tuple[list[int], list[str], list[str], list[str]]:
    """How ``add_methods`` makes each new method: ``(classes, from the kept capture, by a new
    capture pass, by perturbation)``. The kept capture serves every gradient-family method but
    Smooth Grad-CAM++ when it holds the explained classes' gradients of the analysis's score."""
    classes = list(analysis.explained_classes)
    gradient, perturbation = split_methods(methods)
    stored = analysis.capture
    usable = stored is not None and stored.covers(classes, method_score("gradcam", analysis.score))
    reused = [m for m in gradient if usable and m != "smoothgradcampp"]
    return classes, reused, [m for m in gradient if m not in reused], perturbation


def add_item_methods(
    analysis: CaseAnalysis, volume: ImageVolume, bundle: Bundle, methods: Sequence[str], progress: Progress | None
) -> CaseAnalysis:
    """``add_methods`` for every kind but slides (see there)."""
    progress = progress or NullProgress()
    classes, reused, forward, perturbation = plan_added(analysis, methods)
    notes = list(analysis.notes)
    layer_maps = maps_from_capture(analysis.capture, bundle.network, reused, classes, analysis.batch_size) if reused else {}
    inputs = bundle.preprocess(volume) if forward or perturbation else None
    share = CAPTURE_SHARE if perturbation else 1.0
    if forward:
        recaptured = [m for m in forward if m != "smoothgradcampp"]
        if recaptured:
            notes.append(f"No capture was kept for {', '.join(recaptured)}: recaptured with one forward pass per batch.")
        item_pass = capture_pass(
            bundle.network, analysis.target_layer, chunks(inputs, analysis.batch_size), inputs.shape[0], forward,
            classes, score=analysis.score, progress=ScaledProgress(progress, 0.0, share),
        )
        layer_maps.update(item_pass.layer_maps)
    grid = bundle.map_grid(volume, analysis.max_map_side)
    added = _map_sets(analysis, bundle, methods, classes, layer_maps, inputs, grid, ScaledProgress(progress, share, 1.0))
    progress.report(1.0, f"added {', '.join(methods)}")
    return replace(analysis, maps={**analysis.maps, **added}, notes=tuple(notes))


def _map_sets(
    analysis: CaseAnalysis,
    bundle: Bundle,
    methods: Sequence[str],
    classes: Sequence[int],
    layer_maps: dict[str, torch.Tensor],
    inputs: torch.Tensor | None,
    grid: MapGrid | VolumeGrid,
    progress: Progress,
) -> dict[str, MapSet]:
    """One ``MapSet`` per method: gradient maps from ``layer_maps`` (rows = ``classes``) put on the
    grid, perturbation maps computed on ``inputs``."""
    from engine.explain.perturbation import PERTURBATION_METHODS

    _, perturbation = split_methods(methods)
    sets: dict[str, MapSet] = {}
    for method in methods:
        if method in layer_maps:
            window_maps = on_grid(layer_maps[method], grid.window)
        else:
            step = perturbation.index(method)
            window_maps = perturb_items(
                bundle.network, inputs, analysis.target_layer, PERTURBATION_METHODS[method], classes, grid.window,
                analysis.batch_size, ScaledProgress(progress, step / len(perturbation), (step + 1) / len(perturbation)),
                analysis.score,
            )
        sets[method] = _map_set(analysis, method, tuple(int(k) for k in classes), grid.place(window_maps))
    return sets


def _map_set(analysis: CaseAnalysis, method: str, classes: tuple[int, ...], maps: np.ndarray) -> MapSet:
    box, volume_box = analysis.crop_box, analysis.volume_box
    score = method_score(method, analysis.score)
    params: dict = {
        "reduction": f"per {analysis.item_axis}",
        "upsampling": "bilinear" if volume_box is None else "trilinear",
        "score": score,
        "map_grid": list(maps.shape[2:]),
        "crop_box": None if box is None else {"top": box.top, "left": box.left, "height": box.height, "width": box.width},
    }
    if volume_box is not None:
        params["volume_box"] = {"start": list(volume_box.start), "size": list(volume_box.size)}
    if method == "smoothgradcampp":
        params["noise_samples"] = SMOOTH_SAMPLES
    explanations = {}
    if volume_box is not None:
        explanations = whole_volume.key_slices(maps, classes, analysis.top_k)
        params["key_slices"] = {str(k): list(e.key_frames) for k, e in explanations.items()}
    elif analysis.kind == "clip" and len(analysis.probabilities):
        explanations = clip.key_frames(maps, analysis.probabilities, classes, analysis.top_k)
        params["key_frames"] = {str(k): list(e.key_frames) for k, e in explanations.items()}
    return MapSet(method=method, score=score, classes=classes, maps=maps, params=params, key_frames=explanations)
