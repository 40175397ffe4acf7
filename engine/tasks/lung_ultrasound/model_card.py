"""The model card (``docs/README.md``) of the lung-ultrasound bundle, written from the training metrics."""

from __future__ import annotations

from collections import Counter
from typing import Any

from engine.tasks.lung_ultrasound.data import CLASS_NAMES, Item
from engine.training.model_card import (
    FIGURES_LINE,
    cam_layer_lines,
    card_opening,
    confusion_table,
    network_summary,
    percent,
    reproduce_lines,
)


def _results_table(m: dict, unit: str) -> list[str]:
    low, high = m["accuracy_95ci"]
    lines = [
        "| metric | value | counts |",
        "| --- | --- | --- |",
        f"| accuracy (argmax) | {percent(m['accuracy'])} (95% CI {percent(low)}-{percent(high)}, Wilson) | {m['correct']} of {m['n']} {unit} |",
        f"| macro one-vs-rest ROC AUC | {m['macro_auc']:.3f} | |",
    ]
    for name, c in m["per_class"].items():
        lines.append(f"| sensitivity {name} | {percent(c['sensitivity'])} | {c['correct']} of {c['n']} {unit} (AUC {c['auc']:.3f}) |")
    return lines


def _licence_lines(items: list[Item]) -> list[str]:
    by_licence: dict[str, list[str]] = {}
    for item in items:
        by_licence.setdefault(item.licence, []).append(item.path.rsplit("/", 1)[-1])
    lines = []
    for licence, names in sorted(by_licence.items()):
        lines.append(f"- **{licence}** ({len(names)} files): " + ", ".join(f"`{n}`" for n in sorted(names)))
    return lines


def model_card(metadata: dict[str, Any], metrics: dict[str, Any], network_def: dict[str, Any], items: list[Item]) -> str:
    """Markdown model card: data and licences per file, split, test metrics, CAM layer, use and limits.

    Args:
        metadata: the bundle's ``metadata.json`` content (before the checksum is added).
        metrics: what ``train_lung_ultrasound`` measured.
        network_def: the ``inference.json`` network config.
        items: every clip and still frame that was used (for the licence list).
    """
    training = metadata["training"]
    split = metrics["split"]
    grid, size = metadata["target_layer_grid"], metadata["input_size"]
    params = metadata["preprocessing"]
    clips, frames = metrics["test_clips"], metrics["test_frames"]
    used = {path for part in split.values() for path in part}
    used_items = [item for item in items if item.path in used]
    counts = Counter((CLASS_NAMES[i.label], i.is_clip) for i in used_items)
    opening = card_opening(metadata, "COVID-19, bacterial pneumonia or healthy lung ultrasound", [
        "**Intended use: research and demonstration, not for clinical decisions.** The model shows how",
        "a reviewer inspects a clip classifier's class-activation maps, frame by frame, in Salience.",
    ])
    lines = [
        *opening,
        "## Data and licences",
        "",
        "- Source: the POCOVID-Net lung ultrasound collection (Born et al., \"Accelerating Detection of",
        "  Lung Pathologies with Explainable Ultrasound Image Analysis\", Applied Sciences 2021), clips",
        "  and stills gathered from hospitals, publications and teaching websites (The POCUS Atlas,",
        "  LITFL, Radiopaedia, Northumbria and Neuruppin hospitals, papers listed in its SOURCE_README).",
        "- Classes from the file-name prefix: `Cov` COVID-19, `Pneu`/`pneu` bacterial pneumonia, `Reg` healthy.",
        "- Used: " + ", ".join(f"{counts[(n, True)]} {n} clips" for n in CLASS_NAMES) + "; "
        + ", ".join(f"{counts[(n, False)]} {n} stills" for n in CLASS_NAMES) + " (stills only in training groups).",
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
        f"- Calibration: temperature scaling on the validation frames, T = {metrics['temperature']:.3f} (test frame ECE",
        f"  {metrics['test_frame_ece_uncalibrated']:.3f} before, {metrics['test_frame_ece']:.3f} after).",
        "- Clip verdict: the mean of the calibrated probabilities of every frame of the clip.",
        "",
        "## Training",
        "",
        f"- Split by GROUP, never by frame or clip, with split seed {training['split_seed']}: clips sharing a patient id in",
        "  the metadata, or a Northumbria recording set (`northumbria_0409_setN`), form one group. Groups",
        f"  are assigned, stratified by class, to train / validation / test ({', '.join(str(f) for f in training['fractions'])} of each class's clips):",
        f"  {len(split['train'])} / {len(split['val'])} / {len(split['test'])} files in {metrics['groups']['train']} / {metrics['groups']['val']} / {metrics['groups']['test']} groups;",
        f"  {metrics['frames']['train']} / {metrics['frames']['val']} / {metrics['frames']['test']} frames (up to {training['frames_per_clip']} evenly spaced frames per",
        "  training and validation clip; every frame of the test clips).",
        f"- AdamW, one-cycle learning rate (peak {training['learning_rate']}), batch {training['batch_size']}, {training['epochs']} epochs, class-weighted",
        f"  cross-entropy; the epoch with the lowest validation NLL after temperature scaling was kept (epoch {metrics['best_epoch']}).",
        "  Augmentation:",
        "  left-right flip, gain +-20%, gamma, shift up to 8 pixels.",
        f"- Measured time: {metrics['seconds_loading'] / 60:.1f} min reading and preparing the clips, {metrics['seconds_training'] / 60:.1f} min wall-clock",
        f"  training ({metrics['cpu_seconds_training'] / 60:.1f} min CPU), {metrics['seconds_total'] / 60:.1f} min in all, on a 2-core CPU shared with other",
        f"  work, {training['torch_threads']} torch thread(s) (PyTorch {metadata['pytorch_version']}, MONAI {metadata['monai_version']}).",
        *reproduce_lines("lung-ultrasound", "--out engine/bundles/lung-ultrasound", training, "."),
        "",
        f"## Results on the held-out test clips ({clips['n']} clips)",
        "",
        "**The test set is tiny and the figures are very uncertain.** It holds "
        + ", ".join(f"{c['n']} {name}" for name, c in clips["per_class"].items())
        + f" clips from only {metrics['groups']['test']} groups; one clip more or less correct moves clip accuracy by",
        f"{100 / max(clips['n'], 1):.0f} points, and the 95% interval below spans most of the range. Read them as one",
        "draw from one split, not as the recipe's accuracy.",
        "",
        "Clip level (verdict = mean of frame probabilities):",
        "",
    ]
    lines += _results_table(clips, "clips")
    lines += ["", "Confusion matrix (clips):", ""] + confusion_table(CLASS_NAMES, clips["confusion"])
    lines += ["", f"Frame level (every frame of the test clips; long clips weigh more):", ""]
    lines += _results_table(frames, "frames")
    lines += [
        "",
        "Each test clip's verdict (also in `configs/metadata.json` under `eval_metrics`):",
        "",
        "| clip | true class | frames | verdict (" + " / ".join(CLASS_NAMES) + ") | predicted |",
        "| --- | --- | --- | --- | --- |",
    ]
    for clip in metrics["test_clip_verdicts"]:
        verdict = " / ".join(f"{p:.3f}" for p in clip["verdict"])
        lines.append(f"| `{clip['path'].rsplit('/', 1)[-1]}` | {clip['class']} | {clip['frames']} | {verdict} | {clip['predicted']} |")
    lines += [
        "",
        FIGURES_LINE,
        "",
        "## Known limits",
        "",
        "- Small and heterogeneous: about a hundred clips from a dozen sources. Class and source are",
        "  confounded (the COVID-19 clips come from other websites and papers than most healthy clips),",
        "  so part of what the model learned may be the source - scanner, preset, compression - not the",
        "  lung. Cropping to the scan region removes text and scales but not the look of the echo.",
        *_band_limit_lines(params),
        "- Labels are the collection's per-clip diagnoses, not per-frame findings; a frame may show no",
        "  sign of its clip's disease. Viral pneumonia and other lung disease are not classes: such a",
        "  clip gets one of the three labels anyway.",
        f"- Low resolution ({size[0]} x {size[1]} input, {grid[0]} x {grid[1]} CAM grid): maps are coarse and mark regions, not",
        "  single B-lines. Only convex and linear probes of the collection were seen.",
        "- Not validated prospectively, on other machines, or by clinicians. Not a medical device.",
        "",
        "## Files of each part",
        "",
    ]
    for part in ("train", "val", "test"):
        lines.append(f"- {part.capitalize()}: " + ", ".join(f"`{p.rsplit('/', 1)[-1]}`" for p in split[part]))
    lines.append("")
    return "\n".join(lines)


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
