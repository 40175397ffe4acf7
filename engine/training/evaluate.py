"""``salience evaluate TASK``: a bundle measured on its recipe's held-back patients, and its model card.

The recipe that trained a bundle wrote its split into ``metadata.json`` (``split``: the group ids
of each part, e.g. patients). Evaluation reads the groups of one part (``test`` by default) through
the task's ``TaskEvaluation`` and measures, with 95% intervals:

* item-level discrimination: ROC AUC (interval by bootstrap over groups), and accuracy,
  sensitivity and specificity at p >= 0.5 (Wilson intervals over items);
* where the maps point: on every item of the positive class that has a lesion mask, the pointing
  game (is the map's peak inside the mask? Zhang et al., "Top-down neural attention by excitation
  backprop", ECCV 2016, here without a tolerance) and the share of the map's positive energy
  inside the mask over the mask's share of the organ (Wang et al., "Score-CAM", CVPR Workshops
  2020); each is averaged over a group's items first, then over groups (bootstrap over groups);
* calibration: expected calibration error before and after the bundle's temperature (Guo et al.,
  "On Calibration of Modern Neural Networks", ICML 2017).

The task's ``model_card`` turns the report (with the bundle's metadata and its recipe's training
metrics) into ``docs/README.md``: model cards are written from these measurements, never by hand.
Bundles of the same recipe trained with other seeds (``--compare``) are measured on the same
groups, and each headline figure is reported as the range over all of them.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import SalienceError
from engine.imaging.volume import ImageVolume
from engine.models.bundle import INFERENCE_FILE, MODEL_CARD_FILE, Bundle, load_bundle
from engine.models.task_registry import task_spec
from engine.progress import NullProgress, Progress, ScaledProgress
from engine.training.evaluation import binary_metrics, expected_calibration_error, roc_auc, wilson_interval

#: Where ``salience evaluate`` writes its report beside the card it writes into a bundle.
EVALUATION_FILE = "docs/evaluation.json"
#: Bootstrap resamples of groups for every interval that is not a Wilson interval.
BOOTSTRAP_RESAMPLES = 2000


@dataclass(frozen=True)
class HeldBackCase:
    """One held-back group (a patient) as the evaluation sees it.

    Attributes:
        name: the group id, as in the bundle's ``split``.
        volume: the image the bundle reads.
        labels: ``(N,)`` class index of each item (slice).
        masks: ``(N, H, W)`` bool on the volume's grid, where the positive class shows (e.g. the
            FLAIR abnormality); None when the task has no masks.
        region: ``(N, H, W)`` bool, the organ a mask's area share is taken of (e.g. the brain);
            None: the whole slice.
    """

    name: str
    volume: ImageVolume
    labels: np.ndarray
    masks: np.ndarray | None = None
    region: np.ndarray | None = None


@dataclass(frozen=True)
class TaskEvaluation:
    """What a task gives ``salience evaluate``.

    Attributes:
        default_data: the data folder read when ``--data`` is not given.
        read_case: ``f(data_dir, group_id) -> HeldBackCase``; raises ``SalienceError`` for a
            group it cannot read.
        positive_class: the class whose items, maps and masks are checked.
        model_card: ``f(metadata, network_def, report, training_metrics) -> Markdown``;
            ``training_metrics`` is the recipe's ``docs/training_metrics.json`` (None when the
            bundle has none).
    """

    default_data: Path
    read_case: Callable[[Path, str], HeldBackCase]
    positive_class: int
    model_card: Callable[[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any] | None], str]


@dataclass(frozen=True)
class OwnEvaluation:
    """A task whose held-back evaluation does not fit ``TaskEvaluation`` (e.g. several classes,
    clip verdicts, cross-validation) and runs its own ``salience evaluate TASK``.

    Attributes:
        main: ``f(argv) -> report``: parses the task's evaluation options, measures, writes the
            card with ``write_report`` beside it, and returns the report; raises ``SalienceError``
            for bad input.
    """

    main: Callable[[list[str]], dict[str, Any]]


def interval(estimate: float, low: float, high: float, method: str) -> dict[str, Any]:
    """A figure with its 95% interval and how the interval was found, as the report writes it."""
    return {"estimate": estimate, "ci95": [low, high], "method": method}


def group_bootstrap(
    groups: Sequence[Any], statistic: Callable[[list[Any]], float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """Percentile 95% interval of ``statistic`` over groups drawn with replacement (Efron 1979).

    Resampling whole groups (patients), not items (slices), keeps the items of one patient
    together, so the interval reflects how few patients there are.

    Args:
        groups: one entry per group (whatever ``statistic`` reads).
        statistic: the figure computed from a list of groups; NaN draws (e.g. an AUC of a draw
            with one class only) are left out.
        resamples: number of draws.
        seed: seed of the draws (the same seed gives the same interval).

    Returns:
        ``(low, high)``; ``(nan, nan)`` without groups or without a finite draw.
    """
    if not groups:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    draws = [statistic([groups[i] for i in rng.integers(0, len(groups), len(groups))]) for _ in range(resamples)]
    finite = np.array([d for d in draws if np.isfinite(d)])
    if finite.size == 0:
        return (math.nan, math.nan)
    low, high = np.percentile(finite, [2.5, 97.5])
    return (float(low), float(high))


@dataclass(frozen=True)
class CaseScores:
    """What one held-back group gave: item labels, logits, and the map check of its lesion items."""

    name: str
    labels: np.ndarray
    logits: np.ndarray
    hits: np.ndarray
    energy_inside: np.ndarray
    mask_share: np.ndarray


def localise(maps: np.ndarray, masks: np.ndarray, region: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per map: is its peak inside the mask, its positive energy's share inside, the mask's area share.

    Args:
        maps: ``(N, H, W)`` raw signed maps of the positive class.
        masks: ``(N, H, W)`` bool lesion masks on the same grid.
        region: ``(N, H, W)`` bool organ masks, or None for the whole slice; the mask counts as
            part of the organ.

    Returns:
        ``(hits, energy_inside, mask_share)``, each ``(N,)``; energy is NaN for a map with no
        positive part.
    """
    n = maps.shape[0]
    flat_maps, flat_masks = maps.reshape(n, -1), masks.reshape(n, -1).astype(bool)
    hits = flat_masks[np.arange(n), np.argmax(flat_maps, axis=1)]
    positive = np.clip(flat_maps, 0, None)
    total = positive.sum(axis=1)
    inside = (positive * flat_masks).sum(axis=1)
    energy = np.where(total > 0, inside / np.where(total > 0, total, 1.0), np.nan)
    if region is None:
        share = flat_masks.mean(axis=1)
    else:
        share = flat_masks.sum(axis=1) / (region.reshape(n, -1).astype(bool) | flat_masks).sum(axis=1)
    return hits.astype(bool), energy, share.astype(np.float64)


def score_case(bundle: Bundle, case: HeldBackCase, positive_class: int, method: str) -> CaseScores:
    """Run ``bundle`` on one group and check its maps on the items that have a lesion."""
    logits = bundle.predict(case.volume).logits
    labels = np.asarray(case.labels, dtype=np.int64)
    checked = np.array([], dtype=np.int64)
    if case.masks is not None:
        checked = np.flatnonzero((labels == positive_class) & case.masks.reshape(len(labels), -1).any(axis=1))
    if checked.size:
        maps = bundle.explain(case.volume, method=method, classes=[positive_class], slices=checked)[0]
        region = None if case.region is None else case.region[checked]
        hits, energy, share = localise(maps, case.masks[checked], region)
    else:
        hits, energy, share = np.zeros(0, bool), np.zeros(0), np.zeros(0)
    return CaseScores(case.name, labels, np.asarray(logits, dtype=np.float64), hits, energy, share)


def _softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _pooled(cases: list[CaseScores], positive_class: int, temperature: float) -> tuple[np.ndarray, np.ndarray]:
    labels = np.concatenate([c.labels for c in cases]) == positive_class
    scores = _softmax(np.concatenate([c.logits for c in cases]), temperature)[:, positive_class]
    return labels, scores


def _proportion(successes: int, n: int) -> dict[str, Any]:
    low, high = wilson_interval(successes, n)
    return {**interval(successes / n if n else math.nan, low, high, "Wilson, items as independent"), "count": [successes, n]}


def _finite_mean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _case_energy_ratio(case: CaseScores) -> float:
    energy = case.energy_inside[np.isfinite(case.energy_inside)]
    share = float(case.mask_share.mean()) if case.mask_share.size else math.nan
    return float(energy.mean()) / share if energy.size and share > 0 else math.nan


def summarise(cases: list[CaseScores], positive_class: int, temperature: float, seed: int = 0) -> dict[str, Any]:
    """The report's figures from every group's scores (see the module's description)."""
    labels, scores = _pooled(cases, positive_class, temperature)
    metrics = binary_metrics(labels, scores)
    auc_low, auc_high = group_bootstrap(cases, lambda cs: roc_auc(*_pooled(cs, positive_class, temperature)), seed=seed)
    located = [c for c in cases if c.hits.size]
    pointing = [float(c.hits.mean()) for c in located]
    ratios = [r for r in (_case_energy_ratio(c) for c in located) if np.isfinite(r)]
    group_mean = "mean over patients of each patient's mean; patient bootstrap, percentile"
    raw = _softmax(np.concatenate([c.logits for c in cases]), 1.0)
    class_index = np.concatenate([c.labels for c in cases])
    return {
        "items": int(labels.size),
        "positives": int(labels.sum()),
        "negatives": int((~labels).sum()),
        "threshold": metrics["threshold"],
        "auc": interval(metrics["auc"], auc_low, auc_high, "Mann-Whitney; patient bootstrap, percentile"),
        "accuracy": _proportion(metrics["tp"] + metrics["tn"], metrics["n"]),
        "sensitivity": _proportion(metrics["tp"], metrics["positives"]),
        "specificity": _proportion(metrics["tn"], metrics["negatives"]),
        "localisation": {
            "items": int(sum(c.hits.size for c in located)),
            "cases": len(located),
            "pointing_game": interval(
                float(np.mean(pointing)) if pointing else math.nan,
                *group_bootstrap(pointing, lambda v: float(np.mean(v)), seed=seed), group_mean,
            ),
            "energy_ratio": interval(
                float(np.mean(ratios)) if ratios else math.nan,
                *group_bootstrap(ratios, lambda v: float(np.mean(v)), seed=seed), group_mean,
            ),
            "pointing_game_items": float(np.mean(np.concatenate([c.hits for c in located]))) if located else math.nan,
            "energy_inside_mask": _finite_mean(np.concatenate([c.energy_inside for c in located])) if located else math.nan,
            "mask_share_of_region": float(np.mean(np.concatenate([c.mask_share for c in located]))) if located else math.nan,
        },
        "calibration": {
            "temperature": temperature,
            "ece_before": expected_calibration_error(raw, class_index),
            "ece_after": expected_calibration_error(_softmax(np.concatenate([c.logits for c in cases]), temperature), class_index),
            "bins": 10,
        },
        "per_case": [
            {
                "case": c.name,
                "items": int(c.labels.size),
                "positives": int((c.labels == positive_class).sum()),
                "lesion_items": int(c.hits.size),
                "pointing_game": float(c.hits.mean()) if c.hits.size else None,
                "energy_ratio": _case_energy_ratio(c) if c.hits.size else None,
            }
            for c in cases
        ],
    }


def evaluate_bundle(
    bundle: Bundle,
    cases: Iterable[HeldBackCase],
    positive_class: int,
    *,
    method: str = "gradcam",
    count: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Measure ``bundle`` on held-back groups: discrimination, where its maps point, calibration.

    Args:
        bundle: the bundle to measure (its temperature is the one calibrated figures use).
        cases: the held-back groups (read lazily, one at a time).
        positive_class: the class whose items and maps are checked against the masks.
        method: the CAM method checked.
        count: how many groups ``cases`` yields, for progress.
        progress: told after each group.

    Returns:
        The report (``summarise``) with the bundle's name, version, checksum (None for a bundle
        not yet written, as a recipe measures it) and the method.

    Raises:
        SalienceError: no groups.
    """
    progress = progress or NullProgress()
    scored = []
    for i, case in enumerate(cases):
        scored.append(score_case(bundle, case, positive_class, method))
        progress.report((i + 1) / count if count else 0.0, f"measured {case.name}")
    if not scored:
        raise SalienceError(f"bundle {bundle.name}: no held-back cases to evaluate")
    return {
        "bundle": bundle.name,
        "version": bundle.version,
        "weights_sha256": bundle.metadata.get("weights_sha256"),
        "seed": bundle.metadata.get("training", {}).get("seed"),
        "method": method,
        "positive_class": bundle.class_names[positive_class],
        "cases": [c.name for c in scored],
        **summarise(scored, positive_class, bundle.temperature),
    }


#: The figures whose spread over seeds the report gives: (name, how to read it from a report).
HEADLINE: dict[str, Callable[[dict[str, Any]], float]] = {
    "auc": lambda r: r["auc"]["estimate"],
    "accuracy": lambda r: r["accuracy"]["estimate"],
    "sensitivity": lambda r: r["sensitivity"]["estimate"],
    "specificity": lambda r: r["specificity"]["estimate"],
    "pointing_game": lambda r: r["localisation"]["pointing_game"]["estimate"],
    "energy_ratio": lambda r: r["localisation"]["energy_ratio"]["estimate"],
    "ece_after": lambda r: r["calibration"]["ece_after"],
}


def seed_ranges(
    reports: Sequence[dict[str, Any]], headline: dict[str, Callable[[dict[str, Any]], float]] = HEADLINE
) -> dict[str, Any]:
    """Each ``headline`` figure of every run and its range (min, max), runs in the order given."""
    runs = [{"seed": r.get("seed"), "weights_sha256": r["weights_sha256"], **{k: f(r) for k, f in headline.items()}} for r in reports]
    ranges = {k: [float(min(run[k] for run in runs)), float(max(run[k] for run in runs))] for k in headline}
    return {"runs": runs, "ranges": ranges}


def held_back_part(bundle: Bundle, part: str) -> list[str]:
    """The group ids of ``part`` of the split the bundle's recipe recorded.

    Raises:
        SalienceError: the bundle records no split, or none with that part.
    """
    split = bundle.metadata.get("split")
    if not isinstance(split, dict) or not isinstance(split.get(part), list) or not split[part]:
        raise SalienceError(f"bundle {bundle.path}: metadata.json records no {part!r} part of a split to evaluate on")
    return [str(group) for group in split[part]]


def evaluate_part(
    bundle: Bundle, evaluation: TaskEvaluation, data_dir: Path, part: str, method: str, progress: Progress
) -> dict[str, Any]:
    """``evaluate_bundle`` on the groups of one part of the bundle's split, read from ``data_dir``."""
    groups = held_back_part(bundle, part)
    cases = (evaluation.read_case(data_dir, group) for group in groups)
    report = evaluate_bundle(bundle, cases, evaluation.positive_class, method=method, count=len(groups), progress=progress)
    return {"part": part, **report}


def write_card(bundle: Bundle, evaluation: TaskEvaluation, report: dict[str, Any], out: Path | None = None) -> Path:
    """Write the task's model card of ``report`` to ``out`` (default: the bundle's own card).

    When the card goes into the bundle, the report is written beside it (``EVALUATION_FILE``).
    """
    from engine.training.loop import TRAINING_METRICS_FILE

    metrics_file = bundle.path / TRAINING_METRICS_FILE
    training = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else None
    network_def = json.loads((bundle.path / INFERENCE_FILE).read_text(encoding="utf-8"))["network_def"]
    target = out or bundle.path / MODEL_CARD_FILE
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(evaluation.model_card(bundle.metadata, network_def, report, training), encoding="utf-8")
    if out is None:
        write_report(bundle.path, report)
    return target


def write_report(bundle_dir: Path, report: dict[str, Any]) -> None:
    """Write ``report`` to the bundle's ``EVALUATION_FILE``."""
    (bundle_dir / EVALUATION_FILE).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def task_evaluation(task: str) -> TaskEvaluation | OwnEvaluation:
    """The ``TaskEvaluation`` (or ``OwnEvaluation``) a task registered (``TaskSpec.evaluation``).

    Raises:
        SalienceError: unknown task, or a task without an evaluation.
    """
    try:
        spec = task_spec(task)
    except KeyError as exc:
        raise SalienceError(str(exc.args[0])) from None
    if spec.evaluation is None:
        raise SalienceError(f"task {task!r} has no held-back evaluation")
    return spec.evaluation()


def evaluation_parser(task: str) -> argparse.ArgumentParser:
    """``salience evaluate TASK`` options."""
    parser = argparse.ArgumentParser(
        prog=f"salience evaluate {task}",
        description="Measure a bundle on its recipe's held-back patients, print the figures as JSON and "
        "write its model card.",
    )
    parser.add_argument("--bundle", default=task, help="bundle name or folder (default: the shipped %(default)s)")
    parser.add_argument("--data", type=Path, help="data folder (default: the task's folder in ../shared/data)")
    parser.add_argument("--part", choices=["test", "val"], default="test", help="which part of the split (default: test)")
    parser.add_argument("--method", default="gradcam", help="CAM method checked against the masks (default: gradcam)")
    parser.add_argument(
        "--out", type=Path,
        help="where to write the model card (default: the bundle's docs/README.md, with docs/evaluation.json "
        "beside it; with --part val no card is written unless --out is given)",
    )
    parser.add_argument("--compare", type=Path, nargs="*", default=[], metavar="BUNDLE",
                        help="bundles of the same recipe trained with other seeds: each figure is also given as a range")
    parser.add_argument("--lever", action="append", default=[], metavar="LABEL=BUNDLE",
                        help="a bundle of the same recipe with one setting changed, measured on the validation "
                        "patients beside this one for the card's table of levers (repeatable)")
    parser.add_argument("--earlier-levers", type=Path, metavar="EVALUATION_JSON",
                        help="an earlier version's docs/evaluation.json whose lever rows (measured then on the same "
                        "validation patients) the card shows in a table of their own")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    return parser


def recipe_setting(bundle: Bundle) -> str:
    """The recipe options a bundle records (``training.options``), e.g. ``"augment=strong, epochs=12"``."""
    training = bundle.metadata.get("training", {})
    options = {**training.get("options", {}), "epochs": training.get("epochs")}
    return ", ".join(f"{key}={value}" for key, value in options.items() if value is not None)


def lever_rows(
    bundles: Sequence[tuple[str, Bundle]], evaluation: TaskEvaluation, data_dir: Path, method: str, progress: Progress
) -> list[dict[str, Any]]:
    """Each labelled bundle's settings and headline figures on the validation part of its split."""
    rows = []
    for i, (label, bundle) in enumerate(bundles):
        sub = ScaledProgress(progress, i / len(bundles), (i + 1) / len(bundles))
        report = evaluate_part(bundle, evaluation, data_dir, "val", method, sub)
        rows.append({"label": label, "setting": recipe_setting(bundle), **{k: f(report) for k, f in HEADLINE.items()}})
    return rows


def _labelled(spec: str) -> tuple[str, Bundle]:
    label, sep, path = spec.partition("=")
    if not sep or not label or not path:
        raise SalienceError(f"--lever {spec!r}: expected LABEL=BUNDLE_FOLDER")
    return label, load_bundle(Path(path))


def earlier_levers(path: Path, val_cases: Sequence[str]) -> dict[str, Any]:
    """The lever rows an earlier bundle's report holds, for a card that keeps them beside its own.

    Args:
        path: the earlier ``docs/evaluation.json`` (``levers`` and ``levers_cases`` written by
            ``run_evaluation``).
        val_cases: this bundle's validation patients; the earlier rows must have been measured on them.

    Returns:
        ``{"version", "weights_sha256", "rows"}``: the earlier bundle's version and checksum
        (its rows compare with the first row, that bundle), and the rows as measured then.

    Raises:
        SalienceError: the file is unreadable, holds no lever rows, or rows of other patients.
    """
    try:
        earlier = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SalienceError(f"--earlier-levers {path}: cannot read it as JSON ({exc})") from None
    if not isinstance(earlier, dict) or not isinstance(earlier.get("levers"), list) or not earlier["levers"]:
        raise SalienceError(f"--earlier-levers {path}: holds no lever rows")
    if earlier.get("levers_cases") != list(val_cases):
        raise SalienceError(f"--earlier-levers {path}: its levers were measured on other validation patients")
    return {"version": earlier.get("version"), "weights_sha256": earlier.get("weights_sha256"), "rows": earlier["levers"]}


def run_evaluation(task: str, args: argparse.Namespace, progress: Progress | None = None) -> dict[str, Any]:
    """Evaluate ``args.bundle`` (and ``args.compare``) and write the card; returns the report.

    Raises:
        SalienceError: unknown task, bundle or CAM method, a bundle of another task, a bundle
            without a split, a compared bundle with another split, or unreadable data.
    """
    import torch

    from engine.models.inference import method_names

    torch.set_num_threads(args.threads)
    evaluation = task_evaluation(task)
    if isinstance(evaluation, OwnEvaluation):
        raise SalienceError(f"task {task!r} runs its own evaluation: call main({task!r}, argv)")
    if args.method not in method_names():
        raise SalienceError(f"unknown CAM method {args.method!r}; available: {', '.join(method_names())}")
    progress = progress or NullProgress()
    bundles = [load_bundle(args.bundle)] + [load_bundle(path) for path in args.compare]
    levers = [_labelled(spec) for spec in args.lever]
    for other in bundles + [bundle for _, bundle in levers]:
        if other.task != task:
            raise SalienceError(f"bundle {other.path} is a {other.task!r} model, not {task!r}")
        if held_back_part(other, args.part) != held_back_part(bundles[0], args.part) or (
            levers and held_back_part(other, "val") != held_back_part(bundles[0], "val")
        ):
            raise SalienceError(f"bundle {other.path} was held back on other patients than {bundles[0].path}; "
                                "compare only runs of the same split")
    earlier = None if args.earlier_levers is None else earlier_levers(args.earlier_levers, held_back_part(bundles[0], "val"))
    data_dir = args.data or evaluation.default_data
    share = 1.0 / (len(bundles) + (1 if levers else 0))
    reports = [
        evaluate_part(b, evaluation, data_dir, args.part, args.method, ScaledProgress(progress, i * share, (i + 1) * share))
        for i, b in enumerate(bundles)
    ]
    report = reports[0]
    if len(reports) > 1:
        report["seed_runs"] = seed_ranges(reports)
    if levers:
        labelled = [("this bundle", bundles[0]), *levers]
        report["levers"] = lever_rows(labelled, evaluation, data_dir, args.method, ScaledProgress(progress, 1 - share, 1.0))
        report["levers_cases"] = held_back_part(bundles[0], "val")
    if earlier is not None:
        report["earlier_levers"] = earlier
    if args.out is not None or args.part == "test":
        report["card"] = str(write_card(bundles[0], evaluation, report, args.out))
    return report


def main(task: str, argv: list[str]) -> dict[str, Any]:
    """``salience evaluate TASK [options]``: the report, after writing the card (see ``run_evaluation``)."""
    from engine.training.cli import PrintProgress

    evaluation = task_evaluation(task)
    if isinstance(evaluation, OwnEvaluation):
        return evaluation.main(argv)
    args = evaluation_parser(task).parse_args(argv)
    return run_evaluation(task, args, PrintProgress())
