"""``salience evaluate lung-ultrasound``: the cross-validated figures and the model card.

The shipped model is trained on (nearly) every group, so its recipe is judged by K-fold
cross-validation (``cross_validation``): every clip once out of fold. From the out-of-fold frame
logits of both split schemes (by clip, as Born et al. 2021; by patient group) this module computes,
per class, frame- and clip-level sensitivity and specificity (one class against the rest, argmax
decisions) as mean ± SD over folds (the paper's form) and pooled with Wilson intervals; clip
accuracy; one-vs-rest clip AUC with a bootstrap over patient groups; confusion matrices; the
expected calibration error before and after each fold's temperature (Guo et al., ICML 2017); and
where the true-class Grad-CAM points (``map_regions``). Bundles of the same recipe run with other
seeds (``--compare``) give each headline figure as a range. The card is written from the report.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import SalienceError
from engine.tasks.lung_ultrasound.cross_validation import SCHEMES, cv_file
from engine.tasks.lung_ultrasound.data import CLASS_NAMES, list_items
from engine.tasks.lung_ultrasound.map_regions import DEPTH_BINS
from engine.training.evaluate import group_bootstrap, interval, write_report
from engine.training.evaluation import expected_calibration_error, roc_auc, wilson_interval

#: Born et al. 2021 (POCOVID-Net, 5-fold CV split by clip), as quoted in issue 11: (mean, SD) over folds.
PAPER = {
    "COVID-19": {
        "clips": {"sensitivity": (0.98, 0.04), "specificity": (0.91, 0.08)},
        "frames": {"sensitivity": (0.93, 0.05), "specificity": (0.87, 0.07)},
    }
}
#: Depth bins making up the upper third of the scan region (the pleural line and what starts at it).
UPPER_BINS = DEPTH_BINS // 3


def sensitivity_specificity(labels: np.ndarray, predicted: np.ndarray, classes: int) -> list[dict[str, Any]]:
    """Each class against the rest: counts, sensitivity tp / (tp + fn) and specificity tn / (tn + fp).

    Args:
        labels: ``(N,)`` true class indices.
        predicted: ``(N,)`` predicted class indices.
        classes: number of classes.

    Returns:
        One dict per class: ``tp fn tn fp`` and ``sensitivity``, ``specificity`` (NaN when undefined).
    """
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    out = []
    for k in range(classes):
        tp = int(((labels == k) & (predicted == k)).sum())
        fn = int(((labels == k) & (predicted != k)).sum())
        tn = int(((labels != k) & (predicted != k)).sum())
        fp = int(((labels != k) & (predicted == k)).sum())
        out.append({"tp": tp, "fn": fn, "tn": tn, "fp": fp,
                    "sensitivity": tp / (tp + fn) if tp + fn else math.nan,
                    "specificity": tn / (tn + fp) if tn + fp else math.nan})
    return out


def _softmax(logits: np.ndarray, temperature: np.ndarray | float) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _proportion(successes: int, n: int) -> dict[str, Any]:
    low, high = wilson_interval(successes, n)
    return {**interval(successes / n if n else math.nan, low, high, "Wilson"), "count": [successes, n]}


def _mean_sd(values: list[float]) -> dict[str, Any]:
    finite = [v for v in values if math.isfinite(v)]
    return {"folds": values, "mean": float(np.mean(finite)) if finite else None,
            "sd": float(np.std(finite, ddof=1)) if len(finite) > 1 else None}


def read_cross_validation(path: Path) -> dict[str, Any]:
    """A ``cross_validation_<scheme>.json`` file, checked for what the evaluation reads.

    Raises:
        SalienceError: the file is missing, not JSON, or lacks a field.
    """
    if not path.is_file():
        raise SalienceError(f"{path}: no cross-validation results; run `salience train lung-ultrasound --folds 5 --fold-by ...` first")
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SalienceError(f"{path}: not a cross-validation result ({exc})") from None
    missing = [key for key in ("scheme", "folds", "clips", "runs", "frames") if key not in result]
    if not isinstance(result, dict) or missing:
        raise SalienceError(f"{path}: not a cross-validation result (missing {', '.join(missing) or 'fields'})")
    return result


def out_of_fold(result: dict[str, Any]) -> dict[str, np.ndarray]:
    """Frame and clip arrays of a cross-validation result.

    Returns:
        ``frame_clip`` (clip index of each frame), ``frame_labels``, ``frame_raw`` and
        ``frame_probs`` (before and after the fold's temperature), ``clip_labels``, ``clip_fold``,
        ``clip_group``, ``clip_raw`` and ``clip_probs`` (verdicts: mean of the frames' probabilities).
    """
    clips = result["clips"]
    index = {clip["path"]: i for i, clip in enumerate(clips)}
    order = np.array([index[path] for path in result["frames"]["clip"]], dtype=np.int64)
    frame_clip = order[np.asarray(result["frames"]["owner"], dtype=np.int64)]
    clip_fold = np.array([clip["fold"] for clip in clips], dtype=np.int64)
    temperatures = np.array([run["temperature"] for run in result["runs"]])[clip_fold[frame_clip]]
    logits = np.asarray(result["frames"]["logits"], dtype=np.float64)
    raw, probs = _softmax(logits, 1.0), _softmax(logits, temperatures[:, None])
    counts = np.bincount(frame_clip, minlength=len(clips))[:, None]
    verdict = {}
    for name, p in (("clip_raw", raw), ("clip_probs", probs)):
        sums = np.zeros((len(clips), p.shape[1]))
        np.add.at(sums, frame_clip, p)
        with np.errstate(invalid="ignore", divide="ignore"):
            verdict[name] = sums / counts
    clip_labels = np.array([clip["label"] for clip in clips], dtype=np.int64)
    return {
        "frame_clip": frame_clip, "frame_labels": clip_labels[frame_clip], "frame_raw": raw, "frame_probs": probs,
        "clip_labels": clip_labels, "clip_fold": clip_fold, "clip_group": np.array([clip["group"] for clip in clips]),
        **verdict,
    }


def _per_class(oof: dict[str, np.ndarray], folds: int) -> dict[str, Any]:
    levels = {
        "clips": (oof["clip_labels"], oof["clip_probs"].argmax(1), oof["clip_fold"]),
        "frames": (oof["frame_labels"], oof["frame_probs"].argmax(1), oof["clip_fold"][oof["frame_clip"]]),
    }
    out: dict[str, Any] = {name: {} for name in CLASS_NAMES}
    for level, (labels, predicted, fold) in levels.items():
        pooled = sensitivity_specificity(labels, predicted, len(CLASS_NAMES))
        by_fold = [sensitivity_specificity(labels[fold == f], predicted[fold == f], len(CLASS_NAMES)) for f in range(folds)]
        for k, name in enumerate(CLASS_NAMES):
            p = pooled[k]
            out[name][level] = {
                "sensitivity": {**_mean_sd([r[k]["sensitivity"] for r in by_fold]), "pooled": _proportion(p["tp"], p["tp"] + p["fn"])},
                "specificity": {**_mean_sd([r[k]["specificity"] for r in by_fold]), "pooled": _proportion(p["tn"], p["tn"] + p["fp"])},
            }
    return out


def _group_lists(oof: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Clip indices of each patient group (the unit every bootstrap draws)."""
    groups = oof["clip_group"]
    return [np.flatnonzero(groups == g) for g in sorted(set(groups.tolist()))]


def _bootstrapped(oof: dict[str, np.ndarray], statistic, seed: int) -> tuple[float, float]:
    """``statistic(clip indices)`` with a percentile interval over patient groups drawn with replacement."""
    groups = _group_lists(oof)
    return group_bootstrap(groups, lambda drawn: statistic(np.concatenate(drawn)), seed=seed)


def _auc(oof: dict[str, np.ndarray], k: int, clips: np.ndarray) -> float:
    return roc_auc(oof["clip_labels"][clips] == k, oof["clip_probs"][clips, k])


def _macro_auc(oof: dict[str, np.ndarray], clips: np.ndarray) -> float:
    values = [_auc(oof, k, clips) for k in range(len(CLASS_NAMES))]
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if len(finite) == len(values) else math.nan


def _frame_ece(oof: dict[str, np.ndarray], key: str, clips: np.ndarray) -> float:
    frames = np.flatnonzero(np.isin(oof["frame_clip"], clips))
    # a drawn group twice weighs twice: repeat its frames as often as the draw holds its clips
    repeats = np.bincount(clips, minlength=len(oof["clip_labels"]))[oof["frame_clip"][frames]]
    frames = np.repeat(frames, repeats)
    return expected_calibration_error(oof[key][frames], oof["frame_labels"][frames])


def _clip_ece(oof: dict[str, np.ndarray], key: str, clips: np.ndarray) -> float:
    return expected_calibration_error(oof[key][clips], oof["clip_labels"][clips])


def _with_ci(oof: dict[str, np.ndarray], statistic, method: str, seed: int) -> dict[str, Any]:
    everything = np.arange(len(oof["clip_labels"]))
    return interval(statistic(everything), *_bootstrapped(oof, statistic, seed), method)


BOOTSTRAP = "patient-group bootstrap, percentile"


def map_summary(clips: list[dict[str, Any]], frames: dict[str, Any], keep, seed: int = 0) -> dict[str, Any]:
    """Edge ratio, upper-third ratio, inside share and depth profile over the clips ``keep(clip)`` accepts.

    Each clip's ratio is the ratio of its frames' mean energy share to their mean area share; the
    figure is the mean over clips, with a bootstrap over patient groups.

    Args:
        clips: the clip table (``path``, ``group`` and what ``keep`` reads), indexed by ``frames["owner"]``
            through ``frames["clip"]`` when present, else directly.
        frames: ``owner`` and ``map_shares`` (``map_regions.map_shares`` lists), and ``clip`` when
            owners index a per-fold clip list.
        keep: ``f(clip) -> bool``.
    """
    shares = {k: np.asarray(v, dtype=np.float64) for k, v in frames["map_shares"].items()}
    owners = np.asarray(frames["owner"], dtype=np.int64)
    if "clip" in frames:
        index = {clip["path"]: i for i, clip in enumerate(clips)}
        owners = np.array([index[p] for p in frames["clip"]], dtype=np.int64)[owners]
    chosen = [i for i, clip in enumerate(clips) if keep(clip)]
    per_clip = []
    for i in chosen:
        rows = owners == i
        energy = shares["edge_energy"][rows]
        finite = np.isfinite(energy)
        if not finite.any():
            continue
        depth_e, depth_a = shares["depth_energy"][rows][finite].mean(0), shares["depth_area"][rows][finite].mean(0)
        per_clip.append({
            "group": clips[i]["group"],
            "edge": float(energy[finite].mean() / shares["edge_area"][rows][finite].mean()),
            "upper": float(depth_e[:UPPER_BINS].sum() / depth_a[:UPPER_BINS].sum()),
            "inside": float(np.nanmean(shares["inside"][rows])),
            "depth_energy": depth_e, "depth_area": depth_a,
        })
    by_group: dict[str, list[dict[str, Any]]] = {}
    for entry in per_clip:
        by_group.setdefault(entry["group"], []).append(entry)
    groups = list(by_group.values())

    def figure(key: str) -> dict[str, Any]:
        values = [e[key] for e in per_clip]
        estimate = float(np.mean(values)) if values else math.nan
        low, high = (math.nan, math.nan)
        if len(groups) > 1:
            low, high = group_bootstrap(groups, lambda drawn: float(np.mean([e[key] for g in drawn for e in g])), seed=seed)
        return interval(estimate, low, high, "mean over clips; " + BOOTSTRAP)

    return {
        "clips": len(per_clip),
        "edge_ratio": figure("edge"),
        "upper_ratio": figure("upper"),
        "inside": figure("inside"),
        "depth_energy": np.mean([e["depth_energy"] for e in per_clip], axis=0).tolist() if per_clip else [],
        "depth_area": np.mean([e["depth_area"] for e in per_clip], axis=0).tolist() if per_clip else [],
    }


def has_findings(clip: dict[str, Any]) -> bool:
    """True for a clip whose metadata marks B-lines or consolidations."""
    return bool(clip.get("b_lines") or clip.get("consolidations"))


def maps_report(clips: list[dict[str, Any]], frames: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """``map_summary`` on the clips with B-lines or consolidations, and on every clip of each class."""
    return {
        "findings": map_summary(clips, frames, has_findings, seed),
        "by_class": {name: map_summary(clips, frames, lambda c, k=k: c["label"] == k, seed) for k, name in enumerate(CLASS_NAMES)},
    }


def scheme_report(result: dict[str, Any], seed: int = 0) -> dict[str, Any]:
    """Every figure of one cross-validation (see the module's description)."""
    oof = out_of_fold(result)
    folds = int(result["folds"])
    clips_right = int((oof["clip_probs"].argmax(1) == oof["clip_labels"]).sum())
    frames_right = int((oof["frame_probs"].argmax(1) == oof["frame_labels"]).sum())
    per_class = _per_class(oof, folds)
    for k, name in enumerate(CLASS_NAMES):
        per_class[name]["auc_clips"] = _with_ci(oof, lambda c, k=k: _auc(oof, k, c), "Mann-Whitney; " + BOOTSTRAP, seed)
    k = len(CLASS_NAMES)
    confusion = {}
    for level, (labels, probs) in {"clips": (oof["clip_labels"], oof["clip_probs"]), "frames": (oof["frame_labels"], oof["frame_probs"])}.items():
        matrix = np.zeros((k, k), dtype=np.int64)
        np.add.at(matrix, (labels, probs.argmax(1)), 1)
        confusion[level] = matrix.tolist()
    return {
        "scheme": result["scheme"], "folds": folds, "clips": len(oof["clip_labels"]), "frames": len(oof["frame_labels"]),
        "groups": len(set(oof["clip_group"].tolist())),
        "settings": {key: result.get(key) for key in ("seed", "split_seed", "epochs", "frames_per_clip", "eval_frames_per_clip", "val_fraction")},
        "clip_accuracy": _proportion(clips_right, len(oof["clip_labels"])),
        "frame_accuracy": _proportion(frames_right, len(oof["frame_labels"])),
        "macro_auc_clips": _with_ci(oof, lambda c: _macro_auc(oof, c), "mean one-vs-rest Mann-Whitney; " + BOOTSTRAP, seed),
        "per_class": per_class,
        "confusion_clips": confusion["clips"],
        "confusion_frames": confusion["frames"],
        "calibration": {
            "temperatures": [run["temperature"] for run in result["runs"]],
            "bins": 10,
            "frames": {"ece_before": _with_ci(oof, lambda c: _frame_ece(oof, "frame_raw", c), BOOTSTRAP, seed),
                       "ece_after": _with_ci(oof, lambda c: _frame_ece(oof, "frame_probs", c), BOOTSTRAP, seed)},
            "clips": {"ece_before": _with_ci(oof, lambda c: _clip_ece(oof, "clip_raw", c), BOOTSTRAP, seed),
                      "ece_after": _with_ci(oof, lambda c: _clip_ece(oof, "clip_probs", c), BOOTSTRAP, seed)},
        },
        "maps": maps_report(result["clips"], result["frames"], seed),
        "fold_runs": [{k2: run.get(k2) for k2 in ("fold", "best_epoch", "temperature", "train_frames", "test_clips", "seconds", "cpu_seconds")}
                      for run in result["runs"]],
        "seconds_total": result.get("seconds_total", math.nan),
        "cpu_seconds_total": result.get("cpu_seconds_total", math.nan),
    }


def headline(scheme: dict[str, Any], prefix: str) -> dict[str, float]:
    """The figures whose spread over seeds the card gives, keyed ``<scheme>:<figure>``."""
    out = {
        f"{prefix}:clip_accuracy": scheme["clip_accuracy"]["estimate"],
        f"{prefix}:frame_accuracy": scheme["frame_accuracy"]["estimate"],
        f"{prefix}:macro_auc_clips": scheme["macro_auc_clips"]["estimate"],
        f"{prefix}:frame_ece_after": scheme["calibration"]["frames"]["ece_after"]["estimate"],
        f"{prefix}:edge_ratio": scheme["maps"]["findings"]["edge_ratio"]["estimate"],
        f"{prefix}:upper_ratio": scheme["maps"]["findings"]["upper_ratio"]["estimate"],
    }
    for name, c in scheme["per_class"].items():
        for level in ("clips", "frames"):
            for figure in ("sensitivity", "specificity"):
                out[f"{prefix}:{name}:{level}:{figure}"] = c[level][figure]["pooled"]["estimate"]
    return out


def _right_on(result: dict[str, Any], paths: set[str]) -> list[int]:
    """``[right, n]``: out-of-fold clip verdicts that are right among the clips ``paths``."""
    oof = out_of_fold(result)
    chosen = [i for i, clip in enumerate(result["clips"]) if clip["path"] in paths]
    return [int(sum(oof["clip_probs"][i].argmax() == oof["clip_labels"][i] for i in chosen)), len(chosen)]


def _bundle_schemes(bundle_dir: Path, seed: int) -> dict[str, dict[str, Any]]:
    """Both schemes' reports of a bundle's cross-validation files (each required)."""
    return {scheme: scheme_report(read_cross_validation(bundle_dir / cv_file(scheme)), seed) for scheme in SCHEMES}


def _training_metrics(bundle_dir: Path) -> dict[str, Any]:
    from engine.training.loop import TRAINING_METRICS_FILE

    path = bundle_dir / TRAINING_METRICS_FILE
    if not path.is_file():
        raise SalienceError(f"{path}: the bundle has no training metrics (was it written by salience train lung-ultrasound?)")
    return json.loads(path.read_text(encoding="utf-8"))


def _shipped(metrics: dict[str, Any], seed: int) -> dict[str, Any]:
    records = metrics.get("val_records")
    return {
        "temperature": metrics["temperature"], "best_epoch": metrics["best_epoch"],
        "val_clip_accuracy": metrics["val_clips"]["accuracy"], "val_clips": metrics["val_clips"]["n"],
        "maps": maps_report(records["clips"], records, seed) if records else None,
    }


def _seed_run(bundle, schemes: dict[str, Any] | None, shipped: dict[str, Any] | None, seed: int = 0) -> dict[str, Any]:
    """One seed's headline figures; a compared bundle's schemes without a cross-validation file are left out."""
    if schemes is None:
        schemes = {scheme: scheme_report(read_cross_validation(bundle.path / cv_file(scheme)), seed)
                   for scheme in SCHEMES if (bundle.path / cv_file(scheme)).is_file()}
    if shipped is None:
        shipped = _shipped(_training_metrics(bundle.path), seed)
    figures: dict[str, Any] = {"seed": bundle.metadata.get("training", {}).get("seed"), "bundle": str(bundle.path)}
    for scheme, s in schemes.items():
        figures.update(headline(s, scheme))
    figures["shipped:val_clip_accuracy"] = shipped["val_clip_accuracy"]
    figures["shipped:temperature"] = shipped["temperature"]
    return figures


def seed_ranges(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """``(min, max)`` of each figure over the runs that have it (and how many do)."""
    keys = [k for k in runs[0] if k not in ("seed", "bundle")]
    ranges, counts = {}, {}
    for key in keys:
        values = [r[key] for r in runs if key in r and r[key] is not None and math.isfinite(r[key])]
        if values:
            ranges[key], counts[key] = [float(min(values)), float(max(values))], len(values)
    return {"seeds": [run["seed"] for run in runs], "runs": runs, "ranges": ranges, "runs_per_figure": counts}


def lever_row(label: str, bundle, metrics: dict[str, Any]) -> dict[str, Any]:
    """A bundle's settings and its figures on its inner-validation clips (the card's table of levers)."""
    clips = metrics["val_clips"]
    training = bundle.metadata.get("training", {})
    return {
        "label": label, "bundle": str(bundle.path), "seed": training.get("seed"), "keep_epoch": training.get("keep_epoch"),
        "kept_epoch": metrics["best_epoch"], "temperature": metrics["temperature"],
        "val_clip_accuracy": _proportion(clips["correct"], clips["n"]), "val_macro_auc": clips["macro_auc"],
        "val_frame_ece_before": metrics["val_frame_ece_uncalibrated"], "val_frame_ece_after": metrics["val_frame_ece"],
    }


def _lever(spec: str, reference) -> dict[str, Any]:
    from engine.models.bundle import load_bundle

    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
        raise SalienceError(f"--lever {spec!r}: expected LABEL=BUNDLE_FOLDER")
    bundle = load_bundle(Path(path))
    if bundle.metadata.get("split", {}).get("val") != reference.metadata.get("split", {}).get("val"):
        raise SalienceError(f"--lever {spec!r}: bundle {bundle.path} was validated on other clips than {reference.path}")
    return lever_row(label, bundle, _training_metrics(bundle.path))


def evaluation_parser() -> argparse.ArgumentParser:
    """``salience evaluate lung-ultrasound`` options."""
    parser = argparse.ArgumentParser(
        prog="salience evaluate lung-ultrasound",
        description="Cross-validated figures of the lung-ultrasound recipe from its out-of-fold predictions; "
        "prints them as JSON and writes the bundle's model card.",
    )
    parser.add_argument("--bundle", default="lung-ultrasound", help="bundle name or folder (default: the shipped %(default)s)")
    parser.add_argument("--data", type=Path, help="data folder, for the licence list (default: ../shared/data/lung-ultrasound)")
    parser.add_argument("--out", type=Path, help="where to write the card (default: the bundle's docs/README.md, with docs/evaluation.json)")
    parser.add_argument("--compare", type=Path, nargs="*", default=[], metavar="BUNDLE",
                        help="bundles of the same recipe run with other seeds (with their cross-validation files): figures as ranges")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws")
    parser.add_argument("--lever", action="append", default=[], metavar="LABEL=BUNDLE",
                        help="a bundle of the same recipe with one setting changed, compared on the same inner-validation "
                        "clips (repeatable)")
    return parser


def main(argv: list[str]) -> dict[str, Any]:
    """Measure, write the card (and ``docs/evaluation.json``), and return the report.

    Raises:
        SalienceError: an unknown bundle, a bundle of another task, missing or malformed
            cross-validation files or training metrics, or an unreadable data folder.
    """
    from engine.models.bundle import INFERENCE_FILE, MODEL_CARD_FILE, load_bundle
    from engine.tasks.lung_ultrasound.model_card import model_card
    from engine.tasks.lung_ultrasound.train import DEFAULT_DATA

    args = evaluation_parser().parse_args(argv)
    bundles = [load_bundle(args.bundle)] + [load_bundle(path) for path in args.compare]
    for bundle in bundles:
        if bundle.task != "lung-ultrasound":
            raise SalienceError(f"bundle {bundle.path} is a {bundle.task!r} model, not 'lung-ultrasound'")
    bundle = bundles[0]
    metrics = _training_metrics(bundle.path)
    report: dict[str, Any] = {
        "bundle": bundle.name, "version": bundle.version, "weights_sha256": bundle.metadata.get("weights_sha256"),
        "paper": {name: {level: {f: list(v) for f, v in figures.items()} for level, figures in p.items()} for name, p in PAPER.items()},
        "measured_edge_band": None, "schemes": _bundle_schemes(bundle.path, args.seed),
        "shipped": _shipped(metrics, args.seed),
    }
    report["shipped"]["keep_epoch"] = bundle.metadata.get("training", {}).get("keep_epoch")
    val_paths = set(bundle.metadata.get("split", {}).get("val", []))
    report["shipped"]["val_clips_out_of_fold"] = {
        scheme: _right_on(read_cross_validation(bundle.path / cv_file(scheme)), val_paths) for scheme in SCHEMES
    }
    report["measured_edge_band"] = read_cross_validation(bundle.path / cv_file(SCHEMES[0])).get("measured_edge_band")
    if len(bundles) > 1:
        report["seed_runs"] = seed_ranges([_seed_run(bundle, report["schemes"], report["shipped"])]
                                          + [_seed_run(other, None, None, args.seed) for other in bundles[1:]])
    if args.lever:
        report["levers"] = [lever_row("this bundle", bundle, metrics)] + [_lever(spec, bundle) for spec in args.lever]
    items, _ = list_items(args.data or DEFAULT_DATA)
    network_def = json.loads((bundle.path / INFERENCE_FILE).read_text(encoding="utf-8"))["network_def"]
    target = args.out or bundle.path / MODEL_CARD_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(model_card(bundle.metadata, metrics, network_def, items, report), encoding="utf-8")
    report["card"] = str(target)
    if args.out is None:
        write_report(bundle.path, report)
    return report
