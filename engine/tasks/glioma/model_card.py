"""The model card (``docs/README.md``) of the glioma bundle, written by ``salience evaluate glioma``
from the held-back patients' report, the bundle's metadata and its recipe's training metrics."""

from __future__ import annotations

from typing import Any

from engine.tasks.glioma.selection import MAX_AUC_DROP, SHIPPED_LABEL, TEST_SEEN_BEFORE, choose
from engine.training.model_card import (
    FIGURES_LINE,
    cam_layer_lines,
    card_opening,
    ci_text as _ci,
    network_summary,
    optimiser_lines,
    patients_section,
    percent,
    reproduce_lines,
    seed_range_lines,
)


def _count(figure: dict[str, Any]) -> str:
    return f"{figure['count'][0]} of {figure['count'][1]}"


def _results(report: dict[str, Any]) -> list[str]:
    loc = report["localisation"]
    return [
        f"## Results on the held-back {report['part']} patients",
        "",
        f"{len(report['cases'])} patients, {report['items']} slices ({report['positives']} with a FLAIR abnormality). "
        "AUC and map intervals: bootstrap over patients (2,000 resamples); accuracy, sensitivity and "
        "specificity: Wilson intervals over slices, which treat a patient's slices as independent and so are narrower than a",
        "patient-level interval would be.",
        "",
        "| metric | value (95% CI) | counts |",
        "| --- | --- | --- |",
        f"| ROC AUC, slice level | {_ci(report['auc'])} | {report['positives']} positive, {report['negatives']} negative slices |",
        f"| accuracy (p >= {report['threshold']}) | {_ci(report['accuracy'], True)} | {_count(report['accuracy'])} |",
        f"| sensitivity | {_ci(report['sensitivity'], True)} | {_count(report['sensitivity'])} |",
        f"| specificity | {_ci(report['specificity'], True)} | {_count(report['specificity'])} |",
        f"| pointing game ({report['method']}) | {_ci(loc['pointing_game'])} | {loc['items']} tumour slices of {loc['cases']} patients |",
        f"| energy in mask / mask's share of brain | {_ci(loc['energy_ratio'], digits=2)} | same slices |",
        "",
        f"Where the maps point: on every slice with a FLAIR abnormality, the `{report['method']}` map of the",
        f"'{report['positive_class']}' class (raw, on the 128 x 128 slice) is checked against the expert mask. Pointing",
        "game: the map's peak lies inside the mask (no tolerance); each patient's share of hits, then",
        f"the mean over patients (over all slices pooled: {percent(loc['pointing_game_items'])}). Energy: the map's positive",
        f"part inside the mask ({percent(loc['energy_inside_mask'])} on average) over the mask's share of the brain",
        f"({percent(loc['mask_share_of_region'])} on average; brain = the head less a 6-pixel rim), per patient, then averaged;",
        "1 would be a map spread evenly over the brain.",
        "",
    ]


def _per_patient(report: dict[str, Any]) -> list[str]:
    lines = ["| patient | slices | tumour slices | pointing game | energy ratio |", "| --- | --- | --- | --- | --- |"]
    for case in report["per_case"]:
        pointing = "-" if case["pointing_game"] is None else f"{case['pointing_game']:.2f}"
        ratio = "-" if case["energy_ratio"] is None else f"{case['energy_ratio']:.1f}"
        lines.append(f"| `{case['case']}` | {case['items']} | {case['lesion_items']} | {pointing} | {ratio} |")
    return lines


def _seed_runs(report: dict[str, Any]) -> list[str]:
    return seed_range_lines(report.get("seed_runs"), lambda seeds: [
        f"Seed to seed (runs with seeds {seeds}, same split, same held-back patients; this bundle is the first):",
    ])


def _lever_table(rows: list[dict[str, Any]]) -> list[str]:
    base = rows[0]
    lines = [
        "| run | setting | AUC | change | pointing game | change | energy ratio |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for lever in rows:
        d_auc, d_pg = lever["auc"] - base["auc"], lever["pointing_game"] - base["pointing_game"]
        lines.append(
            f"| {lever['label']} | {lever['setting']} | {lever['auc']:.3f} | {d_auc:+.3f} | {lever['pointing_game']:.3f} "
            f"| {d_pg:+.3f} | {lever['energy_ratio']:.2f} |"
        )
    return lines


def _levers(report: dict[str, Any]) -> list[str]:
    levers, earlier = report.get("levers"), report.get("earlier_levers")
    if not levers and not earlier:
        return []
    lines = ["## Which levers mattered (validation patients)", ""]
    if levers:
        lines += [
            "Each run below was trained by this recipe with the setting shown (recorded in its `metadata.json`);",
            f"all are measured on the {len(report['levers_cases'])} validation patients, which also chose the shipped settings",
            "(the test patients chose nothing). The change columns compare each run with the first row.",
            "",
            *_lever_table(levers),
            "",
            *_selection(levers),
        ]
    if earlier:
        lines += [
            f"Levers tried on version {earlier['version']} (its own validation figures, as its `docs/evaluation.json`",
            f"recorded them; same validation patients; changes against its first row, version {earlier['version']}):",
            "",
            *_lever_table([{**earlier["rows"][0], "label": f"version {earlier['version']}"}, *earlier["rows"][1:]]),
            "",
        ]
    return lines


def _selection(levers: list[dict[str, Any]]) -> list[str]:
    """How this bundle was chosen over the shipped one (``selection.RULE``), when its row is in the table."""
    shipped = next((row for row in levers if row["label"] == SHIPPED_LABEL), None)
    if shipped is None:
        return []
    candidates = [row for row in levers if row is not shipped]
    selection = choose(shipped, candidates)
    lines = [
        "### How this bundle was chosen",
        "",
        f"Rule, declared before any candidate was measured: {selection.rule}.",
        f"Each candidate against {SHIPPED_LABEL} on the validation patients:",
        "",
    ]
    for verdict in selection.verdicts:
        if verdict.eligible:
            outcome = "passes"
        elif verdict.pointing_change <= 0:
            outcome = "fails (pointing game not higher)"
        else:
            outcome = f"fails (AUC more than {MAX_AUC_DROP} lower)"
        lines.append(f"- {verdict.label}: AUC {verdict.auc_change:+.4f}, pointing game {verdict.pointing_change:+.4f}: {outcome}")
    chosen = selection.chosen or "none (keep the shipped bundle)"
    lines += ["", f"Chosen by the rule: {chosen}. {TEST_SEEN_BEFORE}", ""]
    return lines


def _guidance_limit(metadata: dict[str, Any]) -> list[str]:
    if not metadata.get("training", {}).get("cam_guidance"):
        return []
    return [
        "- The maps were taught where to point: training penalised abnormality evidence outside the",
        "  training patients' masks. The figures above measure how well that carries over to unseen",
        "  patients. The maps show where this model's evidence lies (its decision is their average),",
        "  but their agreement with the lesion is a trained property, not one a classifier trained on",
        "  labels alone would show (see the run without map guidance above).",
    ]


def _training(metadata: dict[str, Any], training_metrics: dict[str, Any] | None) -> list[str]:
    lines = ["## Training", ""]
    if training_metrics is None or "training" not in metadata:
        return [*lines, "- The recipe's training record (`docs/training_metrics.json`, `training` in", "  `metadata.json`) is not in this bundle.", ""]
    training = metadata["training"]
    split = metadata["split"]
    slices, positive = training_metrics["slices"], training_metrics["positive_slices"]
    lines += [
        f"- Patients split by patient (never by slice) with split seed {training['split_seed']}:",
        f"  {len(split['train'])} train ({slices['train']} slices, {positive['train']} positive),",
        f"  {len(split['val'])} validation ({slices['val']} slices, {positive['val']} positive),",
        f"  {len(split['test'])} test ({slices['test']} slices, {positive['test']} positive).",
        *optimiser_lines(training, training_metrics["best_epoch"]),
    ]
    if "augmentation" in training:
        lines.append(f"  Augmentation: {training['augmentation']}.")
    if training.get("cam_guidance"):
        lines.append(f"  Map guidance: {training['cam_guidance']}.")
    if training.get("class_weights"):
        lines.append(f"  Class weights of the loss: {training['class_weights']}.")
    lines += [
        f"- Measured time: {training_metrics['seconds_training'] / 60:.1f} min wall-clock training "
        f"({training_metrics['cpu_seconds_training'] / 60:.1f} min CPU),",
        f"  {training_metrics['seconds_total'] / 60:.1f} min in all, on a 2-core CPU shared with other work, "
        f"{training['torch_threads']} torch thread(s)",
        f"  (PyTorch {metadata['pytorch_version']}, MONAI {metadata['monai_version']}).",
        *reproduce_lines("glioma", "--data ../shared/data/glioma-lgg --out engine/bundles/glioma", training,
                         " (another thread count or library"),
        "  version changes the weights in the last bits), then `salience evaluate glioma` writes this card.",
        "",
    ]
    return lines


def model_card(
    metadata: dict[str, Any], network_def: dict[str, Any], report: dict[str, Any], training_metrics: dict[str, Any] | None
) -> str:
    """Markdown model card: data and licence, model, training, held-back results, maps, limits.

    Args:
        metadata: the bundle's ``metadata.json``.
        network_def: its ``inference.json`` network config.
        report: what ``salience evaluate glioma`` measured (``engine.training.evaluate``).
        training_metrics: the recipe's ``docs/training_metrics.json``, or None.
    """
    grid, size = metadata["target_layer_grid"], metadata["input_size"]
    parameters = training_metrics["parameters"] if training_metrics else None
    net = network_summary(network_def, parameters) if parameters else f"`{network_def['_target_']}`"
    preprocessing = metadata["preprocessing"]
    calibration = report["calibration"]
    split = metadata["split"]
    margin = preprocessing.get("brain_margin", 0)
    masking = (
        f"  everything outside the brain (the head less a {margin}-pixel rim, `brain_region`) is set to 0,"
        if margin else "  the whole head is kept (no brain masking),"
    )
    lines = [
        *card_opening(metadata, "FLAIR abnormality per MRI slice", [
            "**Intended use: research and demonstration, not for clinical decisions.** The model shows",
            "how a reviewer inspects a classifier's class-activation maps in Salience.",
        ]),
        f"This card was written by `salience evaluate glioma` from the held-back {report['part']} patients;",
        "to change it, change the recipe or the card writer (`engine/tasks/glioma/model_card.py`), not this file.",
        "",
        "## Data and licence",
        "",
        "- Images: TCGA-LGG (lower-grade glioma) from The Cancer Imaging Archive (TCIA), shared under",
        "  CC BY 3.0. Cite TCIA (Clark et al. 2013) and the TCGA-LGG collection.",
        "- Masks and slice preparation: Buda, Saha and Mazurowski, \"Association of genomic subtypes",
        "  of lower-grade gliomas with shape features automatically extracted by a deep learning",
        "  algorithm\", Computers in Biology and Medicine 2019 (the LGG segmentation dataset).",
        "- As used here: 85 patients, axial slices of pre-contrast T1, FLAIR and post-contrast T1",
        "  resampled to 128 x 128 (2 x 2 mean of the 256 x 256 source). Where the source lacked a",
        "  sequence it repeated FLAIR in its place.",
        "- Orientation: the files carry a nominal affine that turns the anatomy 180 degrees in-plane;",
        "  Salience corrects it on reading (`engine/imaging/quirks.py`), so the model sees slices as a",
        "  radiologist reads them (anterior up, patient right on the left).",
        "- Label of a slice: 1 when any voxel of the FLAIR abnormality mask lies on it.",
        "",
        "## Model",
        "",
        f"- Network: {net} ({size[0]} x {size[1]} input,",
        "  channels " + ", ".join(metadata["input_channels"]) + "), weights in safetensors.",
        f"- Preprocessing: `{preprocessing['function']}`: each sequence of each volume is divided by the",
        f"  {preprocessing['upper_percentile']}th percentile of its non-zero voxels and clipped to [0, {preprocessing['clip_max']}];",
        masking,
        "  slices are resized to the input size when the grid differs.",
        *cam_layer_lines(metadata, "slice"),
        f"- Calibration: temperature scaling fitted on the validation patients, T = {calibration['temperature']:.3f}",
        f"  (held-back ECE {calibration['ece_before']:.3f} before, {calibration['ece_after']:.3f} after; {calibration['bins']} bins).",
        "",
        *_training(metadata, training_metrics),
        *_results(report),
        *_seed_runs(report),
        *_levers(report),
        "### Per patient",
        "",
        *_per_patient(report),
        "",
        FIGURES_LINE + " The held-back report: `docs/evaluation.json`.",
        "",
        "## Known limits",
        "",
        f"- 85 patients from a handful of TCGA institutions; with {len(report['cases'])} held-back patients the intervals",
        "  above are wide. Not validated on other scanners, protocols, or on high-grade tumours.",
        "- Slice labels come from FLAIR abnormality masks, not from a radiologist reading each slice;",
        "  slices with a few mask voxels at the tumour's edge are hard and often missed.",
        f"- {size[0]} x {size[1]} input and a {grid[0]} x {grid[1]} CAM grid ({size[0] // grid[0]} pixels per cell): maps are",
        "  coarse and can spill past small lesions. Intensity scaling is per volume, so a volume",
        "  cropped to a few slices changes it.",
        "- The brain is found by peeling a fixed rim off the head, not by a skull-stripping model: on",
        "  the skull base (orbits, sinuses) some non-brain tissue stays.",
        *_guidance_limit(metadata),
        "- Trained only on TCGA-LGG slices as prepared by Buda et al.; other preparations (bias",
        "  correction, skull stripping, other slice thickness) are untested.",
        "",
        *patients_section(split),
    ]
    return "\n".join(lines)
