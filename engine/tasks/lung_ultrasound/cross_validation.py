"""K-fold cross-validation of the lung-ultrasound recipe, split by clip or by patient group.

Born et al. ("Accelerating Detection of Lung Pathologies with Explainable Ultrasound Image
Analysis", Applied Sciences 2021) report POCOVID-Net by 5-fold cross-validation with the folds
split by clip, stratified by class. Clips of one patient (or one recording set) look alike, so a
split by clip lets a model see the test patient's other clips; the stricter scheme here keeps each
patient group in one fold. Each fold's model is the shipped recipe (``train.fit_model``) trained on
the other folds, with an inner validation part of the same unit (clip or group) choosing the epoch
and fitting the temperature; the held-out fold's frames give out-of-fold logits and map records.

The result file (``docs/cross_validation_<scheme>.json`` in the bundle) holds every clip's fold
and findings, each fold's run, and per frame its raw logits and where its true-class Grad-CAM
points (``map_regions``); ``salience evaluate lung-ultrasound`` computes every figure from it.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.errors import SalienceError
from engine.progress import NullProgress, Progress, ScaledProgress
from engine.tasks.lung_ultrasound.data import CLASS_NAMES, Item, assign_groups, split_items
from engine.tasks.lung_ultrasound.frame_cache import cached_frames, select
from engine.tasks.lung_ultrasound.preprocess import DEFAULT_PARAMS
from engine.tasks.lung_ultrasound.train import (
    EDGE_BAND, EPOCHS, EVAL_FRAMES_PER_CLIP, FRAMES_PER_CLIP, INPUT_SIZE, MEASURED_EDGE_BAND, NETWORK_DEF, VAL_FRACTION,
    clip_table, fit_model, frame_records, usable_items,
)
from engine.training.loop import FitSettings

#: The two ways of cutting folds: each clip a unit (the paper), or each patient group a unit.
SCHEMES = ("clip", "patient")


def cv_file(scheme: str) -> str:
    """Where a scheme's result lies inside the bundle."""
    return f"docs/cross_validation_{scheme}.json"


def fold_units(items: list[Item] | tuple[Item, ...], fold_by: str) -> list[Item]:
    """The items with ``group`` set to the unit folds are cut by: the item itself (``clip``) or its patient group.

    Raises:
        SalienceError: an unknown scheme.
    """
    if fold_by == "clip":
        return [replace(item, group=item.path) for item in items]
    if fold_by == "patient":
        return list(items)
    raise SalienceError(f"unknown fold scheme {fold_by!r}; use one of {', '.join(SCHEMES)}")


def assign_folds(items: list[Item] | tuple[Item, ...], folds: int, fold_by: str, seed: int = 0) -> dict[str, int]:
    """Each item's fold: whole units, stratified by class (``data.assign_groups`` with equal shares).

    Returns:
        ``{path: fold}`` with folds ``0 .. folds - 1``; every item of a unit shares its fold.

    Raises:
        SalienceError: fewer than 2 folds, an unknown scheme, or a fold without a clip of a class.
    """
    if folds < 2:
        raise SalienceError(f"cross-validation needs at least 2 folds, got {folds}")
    units = fold_units(items, fold_by)
    assignment, counts = assign_groups(units, (1.0,) * folds, seed)
    empty = [(f, CLASS_NAMES[k]) for f in range(folds) for k in range(len(CLASS_NAMES)) if counts[f, k] == 0]
    if empty:
        raise SalienceError(f"{folds} folds by {fold_by} (seed {seed}) leave folds without clips of a class: {empty}")
    return {unit.path: assignment[unit.group] for unit in units}


def cross_validate(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    folds: int = 5,
    fold_by: str = "patient",
    epochs: int = EPOCHS,
    seed: int = 0,
    split_seed: int = 0,
    progress: Progress | None = None,
    val_fraction: float = VAL_FRACTION,
    frames_per_clip: int = FRAMES_PER_CLIP,
    eval_frames: int = EVAL_FRAMES_PER_CLIP,
    cache: Path | None = None,
    network_def: dict[str, Any] | None = None,
    batch_size: int = 32,
    learning_rate: float = 3e-3,
    limit_items: int | None = None,
    edge_band: float = EDGE_BAND,
) -> dict[str, Any]:
    """Run the recipe once per fold and write the out-of-fold records to ``out_dir/docs/cross_validation_<scheme>.json``.

    Args:
        data_dir: the ``lung-ultrasound`` folder.
        out_dir: the bundle folder (only the result file is written into it).
        folds: number of folds.
        fold_by: ``clip`` or ``patient`` (``fold_units``).
        epochs, seed, batch_size, learning_rate: the recipe's settings (``FitSettings``), the same in every fold.
        split_seed: seeds the fold assignment and each fold's inner validation split.
        progress: told the fraction done.
        val_fraction: share of the training folds' clips (whole units) in the inner validation part.
        frames_per_clip: frames per clip for training and the inner validation.
        eval_frames: frames per clip prepared (cached) and judged out of fold.
        cache: the prepared-frame cache file; None reads the clips.
        network_def: the network config; ``NETWORK_DEF`` by default.
        limit_items: only the smallest clips of each class (smoke tests).
        edge_band: the blanked boundary band.

    Returns:
        The result written (see the module's description), with ``file`` its path.

    Raises:
        SalienceError: unreadable data, or folds that leave a class out.
    """
    progress = progress or NullProgress()
    started = (time.perf_counter(), time.process_time())
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    items, excluded = usable_items(data_dir, limit_items)
    fold_of = assign_folds(items, folds, fold_by, split_seed)
    params = {**DEFAULT_PARAMS, "edge_band": float(edge_band)}
    progress.report(0.0, "reading clips")
    frames = cached_frames(data_dir, tuple(items), INPUT_SIZE, params, eval_frames, cache)
    loaded = (time.perf_counter(), time.process_time())
    settings = FitSettings(epochs, seed, batch_size, learning_rate)
    clips = tuple(item for item in items if item.is_clip)
    runs, records = [], {"clip": [], "owner": [], "logits": [], "map_shares": {}}
    for fold in range(folds):
        fold_started = (time.perf_counter(), time.process_time())
        sub = ScaledProgress(progress, fold / folds, (fold + 1) / folds)
        outer = [item for item in fold_units(items, fold_by) if fold_of[item.path] != fold]
        inner = split_items(outer, (1 - val_fraction, val_fraction), split_seed + fold, parts=("train", "val"))
        val_items = tuple(item for item in inner["val"] if item.is_clip)
        test_items = tuple(item for item in clips if fold_of[item.path] == fold)
        train = select(frames, inner["train"], frames_per_clip)
        fitted = fit_model(train, select(frames, val_items, frames_per_clip), settings, network_def or NETWORK_DEF, sub)
        test = select(frames, test_items, None)
        fold_records = frame_records(fitted.network, test)
        offset = len(records["clip"])
        records["clip"] += [item.path for item in test_items]
        records["owner"] += [offset + o for o in fold_records["owner"]]
        records["logits"] += fold_records["logits"]
        for key, values in fold_records["map_shares"].items():
            records["map_shares"].setdefault(key, []).extend(values)
        runs.append({
            "fold": fold, "temperature": fitted.temperature, "best_epoch": fitted.best_epoch, "history": fitted.history,
            "train_items": len(inner["train"]), "train_frames": len(train.labels),
            "val_clips": [item.path for item in val_items], "test_clips": len(test_items), "test_frames": len(test.labels),
            "seconds": time.perf_counter() - fold_started[0], "cpu_seconds": time.process_time() - fold_started[1],
        })
        sub.report(1.0, f"fold {fold + 1}/{folds} by {fold_by}: epoch {fitted.best_epoch}, T {fitted.temperature:.2f}")
    result = {
        "scheme": fold_by, "folds": folds, "split_seed": split_seed, "seed": seed, "epochs": epochs,
        "batch_size": batch_size, "learning_rate": learning_rate, "val_fraction": val_fraction,
        "frames_per_clip": frames_per_clip, "eval_frames_per_clip": eval_frames, "edge_band": edge_band,
        "measured_edge_band": MEASURED_EDGE_BAND, "network_def": network_def or NETWORK_DEF,
        "torch_threads": torch.get_num_threads(), "pytorch_version": torch.__version__,
        "clips": clip_table(clips, data_dir, fold={item.path: fold_of[item.path] for item in clips}),
        "stills": [{"path": item.path, "fold": fold_of[item.path]} for item in items if not item.is_clip],
        "excluded": [{"path": path, "reason": reason} for path, reason in excluded],
        "runs": runs,
        "frames": records,
        "seconds_loading": loaded[0] - started[0],
        "seconds_total": time.perf_counter() - started[0],
        "cpu_seconds_total": time.process_time() - started[1],
    }
    target = out_dir / cv_file(fold_by)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result) + "\n", encoding="utf-8")
    return {**result, "file": str(target)}


def out_of_fold_accuracy(result: dict[str, Any]) -> tuple[int, int]:
    """Clips whose out-of-fold verdict (mean of calibrated frame probabilities) is right, and all clips."""
    temperatures = {clip["path"]: result["runs"][clip["fold"]]["temperature"] for clip in result["clips"]}
    paths = result["frames"]["clip"]
    owners = np.asarray(result["frames"]["owner"])
    logits = np.asarray(result["frames"]["logits"], dtype=np.float64)
    scale = np.array([temperatures[paths[o]] for o in owners])[:, None]
    z = logits / scale
    probs = np.exp(z - z.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    sums = np.zeros((len(paths), probs.shape[1]))
    np.add.at(sums, owners, probs)
    label = {clip["path"]: clip["label"] for clip in result["clips"]}
    correct = sum(int(np.argmax(sums[i]) == label[p]) for i, p in enumerate(paths))
    return correct, len(paths)


def summary_line(result: dict[str, Any]) -> str:
    """The line ``salience train lung-ultrasound --folds`` ends with."""
    correct, n = out_of_fold_accuracy(result)
    return (f"wrote {result['file']}: {result['folds']} folds by {result['scheme']}, out-of-fold clip accuracy "
            f"{correct / n:.3f} ({correct} of {n}); {result['seconds_total'] / 60:.1f} min")
