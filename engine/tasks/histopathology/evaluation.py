"""``salience evaluate histopathology``: the bundle on its held-back near-copy groups, and its slide
heatmap checked against whole slides of known layout made of held-back patches.

Patches. The recipe's split is recomputed from the data folder (same patches, grouping and split
seed) and must give the held-back list ``metadata.json`` records; it also says which patches were
trained on and which held-back patches are near copies of one another. On the held-back part:
accuracy, and each class's sensitivity and specificity (one class against the rest), with Wilson
intervals (Wilson, JASA 1927) that treat patches as independent; accuracy, one-vs-rest ROC AUCs,
their macro mean and the expected calibration error (Guo et al., ICML 2017) before and after the
bundle's temperature with percentile intervals from a bootstrap over near-copy groups (Efron 1979),
which keeps the copies of one original together.

Slides. Mosaics of held-back patches only (``mosaic``): a rectangle of tumour cells inside benign
cells, a different random layout per mosaic, written as tiled pyramidal TIFFs in a temporary
folder. Each goes the viewer's way: ``read_slide`` then ``analyse_case``; the slide heatmap is
the stitched tile probability of tumour (adenocarcinoma + squamous cell carcinoma) on the thumbnail
grid, read in each cell's centre. Hot tiles (tumour probability >= 0.5) are scored against the
known tumour cells: Dice pooled over all mosaics (bootstrap over mosaics), tile sensitivity and
specificity (Wilson, tiles as independent).
"""

from __future__ import annotations

import argparse
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from engine.errors import SalienceError
from engine.models.bundle import Bundle, load_bundle
from engine.progress import NullProgress, Progress, ScaledProgress
from engine.tasks.histopathology.data import CLASS_NAMES, GroupedPatches, load_inputs, read_and_split
from engine.tasks.histopathology.model_card import model_card
from engine.tasks.histopathology.mosaic import (
    TUMOUR_CLASSES,
    Mosaic,
    build_mosaic,
    dice,
    patch_pool,
    tile_counts,
    tumour_layout,
)
from engine.tasks.histopathology.preprocess import PARAMETERS
from engine.training.evaluate import OwnEvaluation, group_bootstrap, held_back_part, interval, seed_ranges, write_card
from engine.training.evaluation import expected_calibration_error, roc_auc, wilson_interval

#: Tile tumour probability from which a tile of the slide heatmap is hot.
HOT_THRESHOLD = 0.5
#: Mosaics (random layouts) and their tissue grid, by default.
MOSAICS, MOSAIC_ROWS, MOSAIC_COLS = 10, 6, 8
WILSON = "Wilson, patches as independent"
GROUP_BOOTSTRAP = "near-copy group bootstrap, percentile"


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _share(successes: int, n: int, method: str = WILSON) -> dict[str, Any]:
    low, high = wilson_interval(successes, n)
    return {**interval(successes / n if n else math.nan, low, high, method), "count": [int(successes), int(n)]}


def _bootstrapped(groups: list[np.ndarray], figure: Callable[[np.ndarray], float], seed: int) -> dict[str, Any]:
    """``figure`` of all items with its interval from resampling near-copy groups (index arrays)."""
    everything = np.concatenate(groups)
    low, high = group_bootstrap(groups, lambda drawn: figure(np.concatenate(drawn)), seed=seed)
    return interval(figure(everything), low, high, GROUP_BOOTSTRAP)


def patch_report(
    labels: np.ndarray, logits: np.ndarray, groups: np.ndarray, temperature: float,
    class_names: Sequence[str] = CLASS_NAMES, seed: int = 0,
) -> dict[str, Any]:
    """Held-back patch figures with 95% intervals (see the module's description).

    Args:
        labels: ``(N,)`` true class per patch.
        logits: ``(N, K)`` network logits.
        groups: ``(N,)`` near-copy group per patch (the unit of the bootstrap).
        temperature: the bundle's softmax temperature (calibrated figures use it).
        class_names: the ``K`` names.
        seed: seed of the bootstraps.

    Returns:
        JSON-ready dict: ``items``, ``groups``, ``accuracy`` (Wilson) and ``accuracy_groups``
        (group bootstrap), ``macro_auc``, ``per_class`` (sensitivity, specificity, AUC),
        ``confusion`` (rows true, columns predicted) and ``calibration``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probabilities, raw = _softmax(logits, temperature), _softmax(logits, 1.0)
    predicted = probabilities.argmax(axis=1)
    k = len(class_names)
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    members = [np.flatnonzero(groups == g) for g in np.unique(groups)]

    def auc_of(c: int) -> Callable[[np.ndarray], float]:
        return lambda idx: roc_auc(labels[idx] == c, probabilities[idx, c])

    def macro(idx: np.ndarray) -> float:
        return float(np.mean([auc_of(c)(idx) for c in range(k)]))

    per_class = {}
    for c, name in enumerate(class_names):
        positives, negatives = int(confusion[c].sum()), int(len(labels) - confusion[c].sum())
        true_negatives = int(negatives - (confusion[:, c].sum() - confusion[c, c]))
        per_class[name] = {
            "n": positives,
            "sensitivity": _share(int(confusion[c, c]), positives),
            "specificity": _share(true_negatives, negatives),
            "auc": _bootstrapped(members, auc_of(c), seed),
        }
    return {
        "items": int(len(labels)),
        "groups": len(members),
        "class_names": list(class_names),
        "accuracy": _share(int(np.trace(confusion)), len(labels)),
        "accuracy_groups": _bootstrapped(members, lambda idx: float((predicted[idx] == labels[idx]).mean()), seed),
        "macro_auc": _bootstrapped(members, macro, seed),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "calibration": {
            "temperature": float(temperature),
            "ece_before": _bootstrapped(members, lambda idx: expected_calibration_error(raw[idx], labels[idx]), seed),
            "ece_after": _bootstrapped(
                members, lambda idx: expected_calibration_error(probabilities[idx], labels[idx]), seed),
            "bins": 10,
        },
    }


def cell_scores(tumour_map: np.ndarray, slide_shape: tuple[int, int], mosaic: Mosaic) -> np.ndarray:
    """Each tissue cell's value on the slide heatmap: the mean over the cell's central half.

    Args:
        tumour_map: ``(H, W)`` heatmap on the thumbnail grid, NaN off tiles.
        slide_shape: ``(height, width)`` of level 0.
        mosaic: the slide's layout.

    Returns:
        ``(rows, cols)``; NaN where the heatmap has no tile (tissue the analysis did not read).
    """
    scale_y, scale_x = tumour_map.shape[0] / slide_shape[0], tumour_map.shape[1] / slide_shape[1]
    scores = np.full(mosaic.classes.shape, np.nan)
    for r, c in np.ndindex(*mosaic.classes.shape):
        x, y, w, h = mosaic.cell_box(r, c)
        rows = slice(int(np.floor((y + h / 4) * scale_y)), int(np.ceil((y + 3 * h / 4) * scale_y)))
        cols = slice(int(np.floor((x + w / 4) * scale_x)), int(np.ceil((x + 3 * w / 4) * scale_x)))
        window = tumour_map[rows, cols]
        if np.isfinite(window).any():
            scores[r, c] = float(np.nanmean(window))
    return scores


def slide_heatmap(bundle: Bundle, path: Path) -> tuple[np.ndarray, tuple[int, int]]:
    """The tumour heatmap the viewer shows for a slide file: ``read_slide``, ``analyse_case``, the
    stitched tile probabilities of the tumour classes summed; with level 0's ``(height, width)``."""
    from engine.analysis import analyse_case
    from engine.imaging.slide import read_slide

    volume = read_slide(path)
    try:
        analysis = analyse_case(volume, bundle, (), keep_capture=False)
    finally:
        volume.extras["slide"].close()
    return analysis.slide.probability_maps[list(TUMOUR_CLASSES), 0].sum(axis=0), analysis.slide.slide_shape


def build_mosaics(work: Path, pool: dict[int, list[Path]], count: int, rows: int, cols: int, seed: int, mpp: float) -> list[Mosaic]:
    """``count`` mosaics of random layouts (seeded) from ``pool``, written into ``work``."""
    rng = np.random.default_rng(seed)
    return [build_mosaic(work / f"mosaic-{i:02d}.tif", tumour_layout(rows, cols, rng), pool, rng, mpp=mpp)
            for i in range(count)]


def slide_report(bundle: Bundle, mosaics: Sequence[Mosaic], threshold: float = HOT_THRESHOLD,
                 progress: Progress | None = None) -> dict[str, Any]:
    """Hot tiles of each mosaic's heatmap against its tumour cells: Dice and tile accuracy with 95% intervals."""
    progress = progress or NullProgress()
    layouts = []
    for i, mosaic in enumerate(mosaics):
        heatmap, slide_shape = slide_heatmap(bundle, mosaic.path)
        scores = cell_scores(heatmap, slide_shape, mosaic)
        counts = tile_counts(np.nan_to_num(scores, nan=-1.0) >= threshold, mosaic.tumour)
        layouts.append({
            "tumour_class": CLASS_NAMES[int(mosaic.classes[mosaic.tumour][0])],
            "tumour_tiles": int(mosaic.tumour.sum()),
            "tiles": int(mosaic.tumour.size),
            "tiles_read": int(np.isfinite(scores).sum()),
            **counts,
            "dice": dice(counts),
            "layout": mosaic.classes.tolist(),
            "sources": mosaic.sources.tolist(),
            "tumour_probability": np.round(scores, 4).tolist(),
        })
        progress.report((i + 1) / len(mosaics), f"slide {i + 1} of {len(mosaics)}: Dice {layouts[-1]['dice']:.3f}")
    totals = {key: sum(layout[key] for layout in layouts) for key in ("tp", "fp", "fn", "tn")}
    pooled = lambda drawn: dice({key: sum(d[key] for d in drawn) for key in totals})  # noqa: E731
    mean_dice = lambda drawn: float(np.mean([d["dice"] for d in drawn]))  # noqa: E731
    by_mosaic = "bootstrap over mosaics, percentile"
    return {
        "mosaics": len(layouts),
        "grid": list(mosaics[0].classes.shape) if mosaics else None,
        "cell": mosaics[0].cell if mosaics else None,
        "mpp": mosaics[0].mpp if mosaics else None,
        "rule": f"tile P(tumour) = P(adenocarcinoma) + P(squamous cell carcinoma) >= {threshold}",
        "threshold": threshold,
        "tiles": sum(layout["tiles"] for layout in layouts),
        "tiles_read": sum(layout["tiles_read"] for layout in layouts),
        **totals,
        "dice": interval(pooled(layouts), *group_bootstrap(layouts, pooled), f"pooled tiles; {by_mosaic}"),
        "mean_dice": interval(mean_dice(layouts), *group_bootstrap(layouts, mean_dice), f"mean per mosaic; {by_mosaic}"),
        "sensitivity": _share(totals["tp"], totals["tp"] + totals["fn"], "Wilson, tiles as independent"),
        "specificity": _share(totals["tn"], totals["tn"] + totals["fp"], "Wilson, tiles as independent"),
        "layouts": layouts,
    }


def held_back_patches(bundle: Bundle, data_dir: Path, progress: Progress | None = None) -> GroupedPatches:
    """The bundle's recipe split recomputed from ``data_dir``, checked against its recorded held-back list.

    Raises:
        SalienceError: the bundle records no test part, or the recomputed one differs from it.
    """
    recorded = held_back_part(bundle, "test")
    training = bundle.metadata.get("training", {})
    grouped = read_and_split(data_dir, training.get("per_class"), int(training.get("split_seed", 0)), progress)
    recomputed = grouped.names("test")
    if sorted(recomputed) != sorted(recorded):
        differ = len(set(recomputed) ^ set(recorded))
        raise SalienceError(
            f"bundle {bundle.path}: its held-back patches differ from the split recomputed from {data_dir} "
            f"({differ} names differ): another data folder or another grouping than the recipe's")
    return grouped


def measure(bundle: Bundle, grouped: GroupedPatches, mosaics: Sequence[Mosaic], progress: Progress) -> dict[str, Any]:
    """The report of one bundle: its held-back patches and its heatmaps of ``mosaics``."""
    from engine.training.loop import network_logits

    index = grouped.split.test
    parameters = {k: v for k, v in bundle.metadata["preprocessing"].items() if k in PARAMETERS}
    inputs = load_inputs([grouped.rgb[i] for i in index], tuple(bundle.input_size), parameters)
    logits = network_logits(bundle.network, inputs)
    progress.report(0.1, f"{bundle.path.name}: {len(index)} held-back patches measured")
    return {
        "bundle": bundle.name,
        "version": bundle.version,
        "weights_sha256": bundle.weights_sha256,
        "seed": bundle.metadata.get("training", {}).get("seed"),
        "part": "test",
        **patch_report(grouped.labels[index], logits, grouped.groups[index], bundle.temperature),
        "slides": slide_report(bundle, mosaics, progress=ScaledProgress(progress, 0.1, 1.0)) if mosaics else None,
    }


#: The figures whose spread over seeds the report gives.
HEADLINE: dict[str, Callable[[dict[str, Any]], float]] = {
    "accuracy": lambda r: r["accuracy"]["estimate"],
    "macro_auc": lambda r: r["macro_auc"]["estimate"],
    **{f"sensitivity {name}": (lambda r, n=name: r["per_class"][n]["sensitivity"]["estimate"]) for name in CLASS_NAMES},
    **{f"specificity {name}": (lambda r, n=name: r["per_class"][n]["specificity"]["estimate"]) for name in CLASS_NAMES},
    "ece_before": lambda r: r["calibration"]["ece_before"]["estimate"],
    "ece_after": lambda r: r["calibration"]["ece_after"]["estimate"],
    "temperature": lambda r: r["calibration"]["temperature"],
    "slide_dice": lambda r: r["slides"]["dice"]["estimate"] if r["slides"] else math.nan,
}


def split_summary(grouped: GroupedPatches, mosaics: Sequence[Mosaic]) -> dict[str, Any]:
    """Sizes of the recomputed split and the check that no mosaic holds a patch of another part."""
    parts = {"train": grouped.split.train, "val": grouped.split.val, "test": grouped.split.test}
    used = {str(name) for m in mosaics for name in m.sources.ravel()}
    outside = used - set(grouped.names("test"))
    if outside:  # patch_pool draws from the held-back list only; this guards against a change there
        raise SalienceError(f"mosaic patches outside the held-back part: {sorted(outside)[:3]}")
    return {
        "recomputed": True,
        "patches": {p: int(len(i)) for p, i in parts.items()},
        "groups": {p: int(len(np.unique(grouped.groups[i]))) for p, i in parts.items()},
        "mosaic_patches": len(used),
        "mosaic_patches_in_train_or_val": len(used & set(grouped.names("train") + grouped.names("val"))),
    }


def parser() -> argparse.ArgumentParser:
    """``salience evaluate histopathology`` options."""
    from engine.tasks.histopathology.train import DEFAULT_DATA

    p = argparse.ArgumentParser(
        prog="salience evaluate histopathology",
        description="Measure a histopathology bundle on its held-back near-copy groups and its slide heatmap on "
        "mosaics of held-back patches; print the report as JSON and write the model card.",
    )
    p.add_argument("--bundle", default="histopathology", help="bundle name or folder (default: the shipped %(default)s)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LC25000 lung folder (default: %(default)s)")
    p.add_argument("--out", type=Path, help="where to write the card (default: the bundle's docs/README.md, with "
                   "docs/evaluation.json beside it)")
    p.add_argument("--compare", type=Path, nargs="*", default=[], metavar="BUNDLE",
                   help="bundles of the same recipe and split trained with other seeds: figures also given as ranges")
    p.add_argument("--mosaics", type=int, default=MOSAICS, help="random slide layouts (default: %(default)s; 0: none)")
    p.add_argument("--grid", type=int, nargs=2, default=(MOSAIC_ROWS, MOSAIC_COLS), metavar=("ROWS", "COLS"),
                   help="tissue cells of each mosaic (default: %(default)s)")
    p.add_argument("--layout-seed", type=int, default=0, help="seed of the layouts and the patches drawn (default: 0)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return p


def evaluate(args: argparse.Namespace, progress: Progress | None = None) -> dict[str, Any]:
    """Measure ``args.bundle`` (and ``args.compare``), write its card; returns the report.

    Raises:
        SalienceError: a bundle of another task or split, a split that cannot be recomputed from
            the data folder, too small a mosaic grid or too few held-back patches for it.
    """
    import torch

    torch.set_num_threads(args.threads)
    progress = progress or NullProgress()
    if args.mosaics < 0:
        raise SalienceError(f"--mosaics must be 0 or more, got {args.mosaics}")
    tumour_layout(*args.grid, np.random.default_rng(0))  # a grid too small fails here, before the data is read
    bundles = [load_bundle(args.bundle)] + [load_bundle(path) for path in args.compare]
    for other in bundles:
        if other.task != "histopathology":
            raise SalienceError(f"bundle {other.path} is a {other.task!r} model, not 'histopathology'")
        if sorted(held_back_part(other, "test")) != sorted(held_back_part(bundles[0], "test")):
            raise SalienceError(f"bundle {other.path} holds back other patches than {bundles[0].path}; "
                                "compare only runs of the same split")
    grouped = held_back_patches(bundles[0], args.data, ScaledProgress(progress, 0.0, 0.2))
    with tempfile.TemporaryDirectory(prefix="salience-mosaics-") as work:
        mpp = float(bundles[0].metadata.get("slide", {}).get("tile_mpp", 0.5))
        pool = patch_pool(args.data, grouped.names("test"))
        mosaics = build_mosaics(Path(work), pool, args.mosaics, *args.grid, args.layout_seed, mpp)
        share = 0.8 / len(bundles)
        reports = [measure(b, grouped, mosaics, ScaledProgress(progress, 0.2 + i * share, 0.2 + (i + 1) * share))
                   for i, b in enumerate(bundles)]
        report = {**reports[0], "data": str(args.data), "layout_seed": args.layout_seed,
                  "split": split_summary(grouped, mosaics)}
    if len(reports) > 1:
        report["seed_runs"] = seed_ranges(reports, HEADLINE)
    # write_card reads only the evaluation's model_card: this task's card writer
    report["card"] = str(write_card(bundles[0], SimpleNamespace(model_card=model_card), report, args.out))
    return report


def main(argv: list[str]) -> dict[str, Any]:
    """``salience evaluate histopathology [options]``: the report, after writing the card."""
    from engine.training.cli import PrintProgress

    return evaluate(parser().parse_args(argv), PrintProgress())


#: What the task registers as its ``salience evaluate`` (``TaskSpec.evaluation``).
EVALUATION = OwnEvaluation(main=main)
