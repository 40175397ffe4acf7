"""The model card (``docs/README.md``) of the lung-ultrasound bundle, written from the training metrics."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from engine.tasks.lung_ultrasound.data import CLASS_NAMES, Item
from engine.training.model_card import (
    FIGURES_LINE,
    cam_layer_lines,
    card_opening,
    confusion_table,
    network_summary,
    reproduce_lines,
)


def _licence_lines(items: list[Item]) -> list[str]:
    by_licence: dict[str, list[str]] = {}
    for item in items:
        by_licence.setdefault(item.licence, []).append(item.path.rsplit("/", 1)[-1])
    lines = []
    for licence, names in sorted(by_licence.items()):
        lines.append(f"- **{licence}** ({len(names)} files): " + ", ".join(f"`{n}`" for n in sorted(names)))
    return lines


def _ci(figure: dict[str, Any] | None, digits: int = 3) -> str:
    """``0.812 (95% CI 0.721-0.880)`` of a report interval; "n/a" when undefined."""
    if not figure or figure.get("estimate") is None or not math.isfinite(figure["estimate"]):
        return "n/a"
    low, high = figure["ci95"]
    text = f"{figure['estimate']:.{digits}f}"
    if low is not None and math.isfinite(low):
        text += f" (95% CI {low:.{digits}f}-{high:.{digits}f})"
    else:
        text += " (no interval: fewer than two patient groups)"
    if "count" in figure:
        text += f", {figure['count'][0]} of {figure['count'][1]}"
    return text


def _against_one(figure: dict[str, Any], below: str, above: str) -> str:
    """What a ratio's 95% interval says against 1: ``below``, ``above``, or that it cannot tell."""
    low, high = figure["ci95"]
    if high is not None and high < 1:
        return below
    if low is not None and low > 1:
        return above
    return "its interval includes 1, so it cannot tell"


def _mean_sd(entry: dict[str, Any]) -> str:
    return "n/a" if entry["mean"] is None else f"{entry['mean']:.2f} ± {entry['sd']:.2f}"


def _paper(name: str, level: str, figure: str, paper: dict[str, Any]) -> str:
    value = paper.get(name, {}).get(level, {}).get(figure)
    return f"{value[0]:.2f} ± {value[1]:.2f}" if value else "not quoted"


def _range(seed_runs: dict[str, Any] | None, key: str) -> str:
    """``low-high`` of a figure over the seeds that have it; empty when fewer than two have it."""
    if not seed_runs or seed_runs["runs_per_figure"].get(key, 0) < 2:
        return ""
    low, high = seed_runs["ranges"][key]
    return f"{low:.3f}-{high:.3f}"


def _scheme_lines(scheme: str, s: dict[str, Any], paper: dict[str, Any], ranges: dict[str, Any] | None) -> list[str]:
    title = {"clip": "split by clip (the paper's scheme)", "patient": "split by patient group (stricter)"}[scheme]
    settings = s["settings"]
    lines = [
        f"### {s['folds']}-fold cross-validation, {title}",
        "",
        f"{s['clips']} clips ({s['frames']} out-of-fold frames, up to {settings['eval_frames_per_clip']} evenly spaced per clip) in",
        f"{s['groups']} patient groups; each clip judged once, by the model of the fold that held it back.",
        f"Clip accuracy {_ci(s['clip_accuracy'])} (Wilson); frame accuracy {_ci(s['frame_accuracy'])}",
        f"(Wilson over frames, which are not independent: read it as optimistic). Macro clip AUC {_ci(s['macro_auc_clips'])}",
        "(one-vs-rest, Mann-Whitney; bootstrap over patient groups).",
    ]
    if _range(ranges, scheme + ":clip_accuracy"):
        lines.append(f"Over seeds {', '.join(str(x) for x in ranges['seeds'])}: clip accuracy {_range(ranges, scheme + ':clip_accuracy')}, "
                     f"macro clip AUC {_range(ranges, scheme + ':macro_auc_clips')}.")
    lines += [
        "",
        "| class | level | figure | paper (mean ± SD over folds) | here, mean ± SD over folds | here, pooled (95% CI, Wilson) | range over seeds (pooled) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, c in s["per_class"].items():
        for level in ("clips", "frames"):
            for figure in ("sensitivity", "specificity"):
                entry = c[level][figure]
                lines.append(
                    f"| {name} | {level} | {figure} | {_paper(name, level, figure, paper)} | {_mean_sd(entry)} | "
                    f"{_ci(entry['pooled'])} | {_range(ranges, f'{scheme}:{name}:{level}:{figure}')} |"
                )
    lines += ["", "Per-class clip AUC (one-vs-rest; bootstrap over patient groups): "
              + "; ".join(f"{name} {_ci(c['auc_clips'])}" for name, c in s["per_class"].items()) + ".", ""]
    lines += ["Confusion matrix, clips (out of fold):", ""] + confusion_table(CLASS_NAMES, s["confusion_clips"])
    lines += ["", "Confusion matrix, frames (out of fold):", ""] + confusion_table(CLASS_NAMES, s["confusion_frames"])
    cal = s["calibration"]
    temps = cal["temperatures"]
    lines += [
        "",
        f"Calibration (each fold's temperature, fitted on its inner validation frames; T {min(temps):.2f}-{max(temps):.2f} over folds):",
        f"frame ECE {_ci(cal['frames']['ece_before'])} before, {_ci(cal['frames']['ece_after'])} after; clip ECE",
        f"{_ci(cal['clips']['ece_before'])} before, {_ci(cal['clips']['ece_after'])} after (10 equal bins; bootstrap over patient groups).",
        "",
        _calibration_verdict(cal),
        "",
        f"Folds: kept epochs {', '.join(str(r['best_epoch']) for r in s['fold_runs'])}; "
        f"{s['seconds_total'] / 60:.1f} min wall-clock, {s['cpu_seconds_total'] / 60:.1f} min CPU for all {s['folds']} folds.",
        "",
    ]
    return lines


def _calibration_verdict(cal: dict[str, Any]) -> str:
    """Whether each fold's temperature lowered the out-of-fold frame ECE."""
    before, after = cal["frames"]["ece_before"]["estimate"], cal["frames"]["ece_after"]["estimate"]
    if after < before:
        return f"The fold temperatures lowered the out-of-fold frame ECE ({before:.3f} to {after:.3f})."
    return (f"The fold temperatures did not help out of fold (frame ECE {before:.3f} before, {after:.3f} after): a temperature "
            "fitted on a dozen inner-validation clips does not carry to other clips (or patients); read the calibrated "
            "probabilities as no better calibrated than the raw ones.")


def _map_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        "## Where the maps point",
        "",
        "Measured on the out-of-fold frames with the rectified Grad-CAM of the clip's true class at the",
        "bundle's CAM layer, upsampled to the 128 x 128 input, inside the clip's scan region (energy that",
        "spills into the black surround is left out; its share is given):",
        "",
        f"- **Edge ratio**: the map's share of energy in the region's edge band (region pixels within",
        f"  {report['measured_edge_band']:.0%} of the input's side of the region's boundary: the blanked band and as much again",
        "  inside it) divided by the band's share of the region's area. 1 is a map spread evenly; **below 1**",
        "  says the map is *not on the sector's edge*.",
        "- **Upper-third ratio**: depth is measured per column from the region's top (0) to its deepest",
        "  pixel (1), so a convex fan's curved top is depth 0. The upper third holds the pleural line and the",
        "  start of its artefacts (B-lines run down from it; consolidations sit just below it). The ratio is",
        "  the map's energy share there over the third's area share; above 1 the map favours it.",
        "- Each clip's ratio is the ratio of its frames' mean shares; the figure is the mean over clips; the",
        "  interval is a bootstrap over patient groups. Clips: those whose metadata marks B-lines or",
        "  consolidations (`dataset_metadata.csv`), and, for comparison, every clip of each class.",
        "",
        "| scheme | clips | edge ratio | upper-third ratio | energy inside the region | depth profile, energy share by sixth (area share) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for scheme, s in report["schemes"].items():
        m = s["maps"]
        rows = [("B-lines or consolidation", m["findings"])] + [(f"all {name}", v) for name, v in m["by_class"].items()]
        for label, entry in rows:
            profile = ", ".join(f"{e:.2f} ({a:.2f})" for e, a in zip(entry["depth_energy"], entry["depth_area"])) if entry["clips"] else ""
            lines.append(f"| {scheme} | {label}: {entry['clips']} | {_ci(entry['edge_ratio'], 2)} | "
                         f"{_ci(entry['upper_ratio'], 2)} | {_ci(entry['inside'], 2)} | {profile} |")
    lines.append("")
    for scheme, s in report["schemes"].items():
        m = s["maps"]
        edge = _against_one(m["findings"]["edge_ratio"], "below 1 with its whole interval: the maps are not on the sector's edge",
                            "above 1: the maps favour the sector's edge")
        upper = _against_one(m["findings"]["upper_ratio"], "below 1: the maps avoid the pleural-line region",
                             "above 1: the maps favour the pleural-line region")
        lines.append(f"- Split by {scheme}, clips with B-lines or consolidation: edge ratio - {edge}; upper-third ratio - {upper}.")
        for name, entry in m["by_class"].items():
            if entry["clips"] and entry["edge_ratio"]["ci95"][0] is not None and entry["edge_ratio"]["ci95"][0] > 1:
                lines.append(f"  All {name} clips: edge ratio above 1 - on these the maps still lean to the fan's edge.")
    shipped = report.get("shipped", {}).get("maps")
    if shipped:
        lines += ["", f"The shipped model on its {shipped['findings']['clips']} inner-validation clips with B-lines or consolidation: "
                  f"edge ratio {_ci(shipped['findings']['edge_ratio'], 2)}, upper-third ratio {_ci(shipped['findings']['upper_ratio'], 2)}."]
    return lines + [""]


def model_card(
    metadata: dict[str, Any], metrics: dict[str, Any], network_def: dict[str, Any], items: list[Item], report: dict[str, Any] | None
) -> str:
    """Markdown model card: data and licences per file, training, cross-validated results, maps, use and limits.

    Args:
        metadata: the bundle's ``metadata.json`` content.
        metrics: the shipped run's ``docs/training_metrics.json`` (``train_lung_ultrasound``).
        network_def: the ``inference.json`` network config.
        items: every clip and still frame of the data set (for the licence list).
        report: what ``salience evaluate lung-ultrasound`` measured; None (a card written by the
            training run) says the cross-validated results are still to be measured.
    """
    training = metadata["training"]
    split = metrics["split"]
    grid, size = metadata["target_layer_grid"], metadata["input_size"]
    params = metadata["preprocessing"]
    used = {path for part in split.values() for path in part}
    used_items = [item for item in items if item.path in used]
    counts = Counter((CLASS_NAMES[i.label], i.is_clip) for i in used_items)
    opening = card_opening(metadata, "COVID-19, bacterial pneumonia or healthy lung ultrasound", [
        "**Intended use: research and demonstration, not for clinical decisions.** The model shows how",
        "a reviewer inspects a clip classifier's class-activation maps, frame by frame, in Salience.",
    ])
    lines = [*opening, *_summary_lines(report)]
    lines += [
        "## Data and licences",
        "",
        "- Source: the POCOVID-Net lung ultrasound collection (Born et al., \"Accelerating Detection of",
        "  Lung Pathologies with Explainable Ultrasound Image Analysis\", Applied Sciences 2021), clips",
        "  and stills gathered from hospitals, publications and teaching websites (The POCUS Atlas,",
        "  LITFL, Radiopaedia, Northumbria and Neuruppin hospitals, papers listed in its SOURCE_README).",
        "- Classes from the file-name prefix: `Cov` COVID-19, `Pneu`/`pneu` bacterial pneumonia, `Reg` healthy.",
        "- Used: " + ", ".join(f"{counts[(n, True)]} {n} clips" for n in CLASS_NAMES) + "; "
        + ", ".join(f"{counts[(n, False)]} {n} stills" for n in CLASS_NAMES) + " (stills are only trained on, never judged).",
        "- Left out: the 3 viral pneumonia (`Vir`) clips - too few to learn or test a class - and files",
        "  whose licence the metadata gives as \"None\":",
    ]
    lines += [f"  - `{e['path']}`: {e['reason']}" for e in metrics["excluded"]]
    lines += [
        "- Licence of each file used (from `dataset_metadata.csv`; several forbid commercial use, so the",
        "  weights inherit a non-commercial restriction - research and demonstration only):",
        "",
    ]
    lines += _licence_lines(used_items)
    lines += [
        "",
        "## Model",
        "",
        f"- Network: {network_summary(network_def, metrics['parameters'])},",
        f"  {size[0]} x {size[1]} grey input (channel `{metadata['input_channels'][0]}`, what Salience's clip reader gives a grey clip;",
        "  colour clips are turned to BT.601 luma inside the preprocessing), weights in safetensors.",
        f"- Preprocessing: `{params['function']}`: the clip's scan region (`engine.imaging.sector`, one per",
        "  clip, from the speckle that moves while text and scales stay still) is kept and everything",
        "  else zeroed; its bounding box is grown to a square (centred, slid back inside the frame),",
        "  cropped, resized, and divided",
        f"  by the {params['upper_percentile']}th percentile of the region's grey levels, clipped to [0, {params['clip_max']}].",
        *_band_lines(params),
        *cam_layer_lines(metadata, "input", more=" Maps are put back"),
        "  on the full frame through the crop box and are zero outside the scan region.",
        f"- Calibration: temperature scaling on the inner validation frames, T = {metrics['temperature']:.3f}; inner-validation",
        f"  frame ECE {metrics['val_frame_ece_uncalibrated']:.3f} before, {metrics['val_frame_ece']:.3f} after (the same frames fitted T:",
        "  optimistic; the cross-validation below gives ECE on clips no temperature saw).",
        "- Clip verdict: the mean of the calibrated probabilities of every frame of the clip.",
        "",
        "## Training of the shipped model",
        "",
        f"- Every group is trained on except an inner validation part ({training['val_fraction']:.0%} of each class's clips, whole",
        f"  patient groups, split seed {training['split_seed']}) that picks the epoch and fits the temperature:",
        f"  {len(split['train'])} / {len(split['val'])} files in {metrics['groups']['train']} / {metrics['groups']['val']} groups;",
        f"  {metrics['frames']['train']} / {metrics['frames']['val']} frames ({training['frames_per_clip']} evenly spaced frames per clip",
        f"  out of the {training['eval_frames_per_clip']} prepared).",
        f"- AdamW, one-cycle learning rate (peak {training['learning_rate']}), batch {training['batch_size']}, {training['epochs']} epochs, class-weighted",
        *_epoch_lines(training, metrics),
        "  Augmentation: left-right flip, gain +-20%, gamma, shift up to 8 pixels.",
        f"- Cost cut to fit the CPU budget (ten cross-validation runs and the shipped run on 2 shared cores):",
        f"  {training['frames_per_clip']} training frames per clip (1.1.0: 24) and {training['epochs']} epochs (1.1.0: 20, whose kept epoch was 11).",
        f"- Measured time: {metrics['seconds_loading'] / 60:.1f} min reading the prepared frames, {metrics['seconds_training'] / 60:.1f} min wall-clock",
        f"  training ({metrics['cpu_seconds_training'] / 60:.1f} min CPU), {metrics['seconds_total'] / 60:.1f} min in all, on a 2-core CPU shared with other",
        f"  work, {training['torch_threads']} torch thread(s) (PyTorch {metadata['pytorch_version']}, MONAI {metadata['monai_version']}).",
        *reproduce_lines("lung-ultrasound", "--out engine/bundles/lung-ultrasound"
                         + (f" --keep-epoch {training['keep_epoch']}" if training.get("keep_epoch") else ""), training,
                         " (add `--cache FILE` to prepare the frames once for this and the cross-validation)."),
        "",
    ]
    lines += _results_lines(report, metrics)
    lines += [
        FIGURES_LINE + " Cross-validation: `docs/cross_validation_clip.json`, `docs/cross_validation_patient.json`;",
        "evaluation: `docs/evaluation.json` (this card is written by `salience evaluate lung-ultrasound` from them).",
        "",
        "## Known limits",
        "",
        "- Small and heterogeneous: about a hundred clips from a dozen sources. Class and source are",
        "  confounded (the COVID-19 clips come from other websites and papers than most healthy clips),",
        "  so part of what the model learned may be the source - scanner, preset, compression - not the",
        "  lung. Cropping to the scan region removes text and scales but not the look of the echo.",
        *_band_limit_lines(params),
        "- The split by clip lets a model train on other clips of the test clip's patient; the split by",
        "  patient group does not, and is the figure to expect on a new patient.",
        "- Labels are the collection's per-clip diagnoses, not per-frame findings; a frame may show no",
        "  sign of its clip's disease. Viral pneumonia and other lung disease are not classes: such a",
        "  clip gets one of the three labels anyway.",
        f"- Low resolution ({size[0]} x {size[1]} input, {grid[0]} x {grid[1]} CAM grid): maps are coarse and mark regions, not",
        "  single B-lines. The map measures are shares of depth and of the edge band, not agreement with",
        "  drawn findings (the collection has no per-pixel annotation).",
        "- Not validated prospectively, on other machines, or by clinicians. Not a medical device.",
        "",
        "## Files of each part (shipped model)",
        "",
    ]
    for part in ("train", "val"):
        lines.append(f"- {part.capitalize()}: " + ", ".join(f"`{p.rsplit('/', 1)[-1]}`" for p in split[part]))
    lines.append("")
    return "\n".join(lines)


def _epoch_lines(training: dict[str, Any], metrics: dict[str, Any]) -> list[str]:
    """How the shipped run's epoch was kept."""
    if training.get("keep_epoch"):
        return [f"  cross-entropy; epoch {training['keep_epoch']} was kept, the median of the epochs the cross-validation folds kept",
                "  (each by its own inner validation); the shipped run's inner validation only fitted the temperature."]
    return [f"  cross-entropy; the epoch with the lowest inner-validation NLL after temperature scaling was kept (epoch {metrics['best_epoch']})."]


def _summary_lines(report: dict[str, Any] | None) -> list[str]:
    if report is None:
        return ["**Cross-validated results not measured yet: run `salience evaluate lung-ultrasound`.**", ""]
    lines = ["## Summary", ""]
    for scheme, s in report["schemes"].items():
        covid = s["per_class"].get("COVID-19")
        lines.append(
            f"- 5-fold cross-validation by {scheme}: clip accuracy {_ci(s['clip_accuracy'])}; COVID-19 clips sensitivity "
            f"{_mean_sd(covid['clips']['sensitivity'])}, specificity {_mean_sd(covid['clips']['specificity'])} (mean ± SD over folds;"
            f" paper, by clip: 0.98 ± 0.04 and 0.91 ± 0.08); maps' edge ratio on B-line/consolidation clips "
            f"{_ci(s['maps']['findings']['edge_ratio'], 2)}, upper-third ratio {_ci(s['maps']['findings']['upper_ratio'], 2)}."
        )
        spread = _range(report.get("seed_runs"), f"{scheme}:clip_accuracy")
        if spread:
            lines.append(f"  Clip accuracy over seeds {', '.join(str(x) for x in report['seed_runs']['seeds'])}: {spread}.")
        accuracy = s["clip_accuracy"]["estimate"]
        lines.append(f"  The issue's aim, clip accuracy at least 0.8 on held-back clips: {'met' if accuracy >= 0.8 else 'not met'} "
                     f"({accuracy:.3f}{'' if s['clip_accuracy']['ci95'][0] >= 0.8 or accuracy < 0.8 else ', though the interval reaches below 0.8'}).")
    shipped = report.get("shipped")
    if shipped:
        right = ", ".join(f"{r} of {n} by {scheme}" for scheme, (r, n) in shipped["val_clips_out_of_fold"].items())
        lines.append(f"- The shipped weights (every group but {shipped['val_clips']} inner-validation clips; kept epoch "
                     f"{shipped['best_epoch']}): {shipped['val_clip_accuracy']:.3f} clip accuracy on those clips, "
                     f"against {right} for the cross-validation models that never saw them.")
    return lines + [""]


def _results_lines(report: dict[str, Any] | None, metrics: dict[str, Any]) -> list[str]:
    if report is None:
        return []
    ranges = report.get("seed_runs")
    lines = [
        "## Cross-validated results",
        "",
        "The shipped weights are trained on (nearly) all data, so no clip is left to test them on; what",
        "the recipe does on clips it never saw is measured by running it once per fold. Paper: Born et al.",
        "2021, POCOVID-Net, 5-fold cross-validation split by clip, as quoted in issue 11 (only its COVID-19",
        "figures are quoted; the other classes' paper figures are not reproduced here). SD over the folds",
        "with n - 1; pooled figures count every out-of-fold clip (frame) once; a range over seeds is over",
        "the runs that have the figure (`docs/evaluation.json`, `seed_runs`).",
        "Reproduce: `salience train lung-ultrasound --out engine/bundles/lung-ultrasound --folds 5 --fold-by clip --cache FILE`",
        "(and `--fold-by patient`), the same recipe settings as the shipped run, then `salience evaluate lung-ultrasound`.",
        "",
    ]
    for scheme, s in report["schemes"].items():
        lines += _scheme_lines(scheme, s, report["paper"], ranges)
    lines += _map_lines(report)
    if ranges:
        lines += [
            "## Seeds",
            "",
            f"The recipe was run with seeds {', '.join(str(x) for x in ranges['seeds'])} (initial weights, batch order, augmentation;",
            "same folds). Every figure above that moved between them is given as a range in the tables; the",
            "headline figures:",
            "",
            "| figure | range over seeds |",
            "| --- | --- |",
        ]
        lines += [f"| {key} | {_range(ranges, key) or 'one seed only: ' + format(low, '.3f')} |"
                  for key, (low, high) in ranges["ranges"].items() if key.count(":") == 1]
        lines.append("")
    shipped = report.get("shipped")
    if shipped:
        clips = metrics["val_clips"]
        lines += [
            "## The shipped model on its inner validation clips",
            "",
            f"{clips['n']} clips that fitted its temperature" + ("" if shipped.get("keep_epoch") else " and chose its epoch (so optimistic)")
            + f": clip accuracy {clips['accuracy']:.3f}",
            f"({clips['correct']} of {clips['n']}, 95% CI {clips['accuracy_95ci'][0]:.3f}-{clips['accuracy_95ci'][1]:.3f}, Wilson), kept epoch {metrics['best_epoch']}.",
            "The same clips judged out of fold by the cross-validation models: "
            + "; ".join(f"by {scheme} {right} of {n}" for scheme, (right, n) in shipped["val_clips_out_of_fold"].items()) + ".",
            "",
        ]
    levers = report.get("levers")
    if levers:
        lines += [
            "Runs of the recipe with one setting changed, on the same inner-validation clips (for the first row",
            "these clips only fitted the temperature when its epoch is fixed; where a row's epoch was chosen on them,",
            "its figures are optimistic):",
            "",
            "| run | seed | epoch rule | kept epoch | clip accuracy (95% CI, Wilson) | macro clip AUC | T | frame ECE before / after |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in levers:
            rule = f"fixed epoch {row['keep_epoch']}" if row["keep_epoch"] else "lowest calibrated inner-validation NLL"
            lines.append(f"| {row['label']} | {row['seed']} | {rule} | {row['kept_epoch']} | {_ci(row['val_clip_accuracy'])} | "
                         f"{row['val_macro_auc']:.3f} | {row['temperature']:.2f} | {row['val_frame_ece_before']:.3f} / {row['val_frame_ece_after']:.3f} |")
        lines.append("")
    return lines


def _band_lines(params: dict[str, Any]) -> list[str]:
    """The preprocessing sentence on the blanked boundary band (none for band 0)."""
    band = float(params.get("edge_band", 0.0))
    if band <= 0:
        return []
    return [
        f"  A band along the inside of the region's boundary, {band:.0%} of the crop window's side wide",
        f"  (`edge_band` {band}), is zeroed too, so the fan's own edge - a shape the scanner decides - is not seen.",
    ]


def _band_limit_lines(params: dict[str, Any]) -> list[str]:
    """The known limit of the boundary band (none for band 0)."""
    if float(params.get("edge_band", 0.0)) <= 0:
        return []
    return [
        "- The boundary band hides where the fan ends, not the fan's shape: the blanked input still has",
        "  an edge of the same outline, moved inward, and the far field's depth still differs by source.",
    ]
