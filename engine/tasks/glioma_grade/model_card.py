"""The model card (``docs/README.md``) of the glioma-grade bundle, written from the training metrics."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.training.model_card import (
    FIGURES_LINE,
    calibration_lines,
    card_opening,
    network_summary,
    optimiser_lines,
    patients_section,
    percent,
    reproduce_lines,
)


def _ci(interval: list[float] | None, as_percent: bool = True) -> str:
    if interval is None or None in interval:
        return "n/a"
    low, high = interval
    return f"{percent(low)} to {percent(high)}" if as_percent else f"{low:.3f} to {high:.3f}"


def _by(x: list[int], sep: str = " x ") -> str:
    return sep.join(str(n) for n in x)


def _sites(sites: dict[str, list[int]]) -> str:
    """``"CS 10 of 14 grade III, DU ..."``."""
    return ", ".join(f"{site} {iii} of {n}" for site, (iii, n) in sites.items()) + " grade III"


def results_table(t: dict[str, Any]) -> list[str]:
    """The patient-level figures with their 95% CIs and counts."""
    return [
        "| metric | value | 95% CI | counts |",
        "| --- | --- | --- | --- |",
        f"| ROC AUC (grade III vs II) | {t['auc']:.3f} | {_ci(t['auc_ci'], False)} (bootstrap) | "
        f"{t['positives']} grade III, {t['negatives']} grade II patients |",
        f"| accuracy (p >= {t['threshold']}) | {percent(t['accuracy'])} | {_ci(t['accuracy_ci'])} (Wilson) | "
        f"{t['tp'] + t['tn']} of {t['n']} |",
        f"| sensitivity for grade III | {percent(t['sensitivity'])} | {_ci(t['sensitivity_ci'])} (Wilson) | "
        f"{t['tp']} of {t['positives']} |",
        f"| specificity (grade II called II) | {percent(t['specificity'])} | {_ci(t['specificity_ci'])} (Wilson) | "
        f"{t['tn']} of {t['negatives']} |",
    ]


def seed_lines(seeds: dict[str, Any]) -> list[str]:
    """How much the figures move between initial-weight seeds on the same split."""
    runs = seeds["runs"]
    if len(runs) < 2:
        return []
    test, val = [r["test_auc"] for r in runs], [r["val_auc"] for r in runs]
    accuracy = [r["test_accuracy"] for r in runs]
    listed = ", ".join(f"{r['test_auc']:.3f}" for r in runs)
    return [
        "",
        f"The same recipe with {len(runs)} initial-weight seeds ({_by([r['seed'] for r in runs], ', ')}; same split, same",
        f"epochs) gives test AUC {min(test):.3f} to {max(test):.3f}, median {float(np.median(test)):.3f} ({listed}; the shipped seed first),",
        f"test accuracy {percent(min(accuracy))} to {percent(max(accuracy))}, and validation AUC {min(val):.3f} to {max(val):.3f}.",
        "Read the shipped seed's figures together with this range: on this few patients the seed moves them",
        "as much as the confidence interval says they are uncertain.",
    ]


def cam_lines(cam: dict[str, Any]) -> list[str]:
    """The Grad-CAM check against the FLAIR abnormality masks of the test patients."""
    predicted, grade_iii = cam["predicted_class"], cam["grade_iii"]

    def sentence(s: dict[str, Any]) -> str:
        return (f"{percent(s['mean_energy_inside_mask'])} of the map's positive energy lies inside the mask, which "
                f"covers {percent(s['mean_mask_share_of_head'])} of the head (on average {s['mean_energy_to_share']:.2f} "
                f"times its share); the map's peak voxel lies inside the mask for {s['peaks_inside_mask']} of "
                f"{s['patients']} patients ({percent(s['share_peak_inside_mask'])}).")

    return [
        f"Grad-CAM check (`{cam['method']}` at the target layer, raw map's positive part, on the volume's own grid)",
        f"on the {predicted['patients']} test patients, against the expert FLAIR abnormality mask over the head",
        "(voxels whose scaled sequences average above the head threshold):",
        "",
        f"- Map of the class the model predicts (what the viewer shows first): {sentence(predicted)}",
        f"- Map of grade III for every patient: {sentence(grade_iii)}",
        "",
        "A ratio near 1 means the map is no more on the tumour than anywhere else in the head. The grade",
        "label never told the network where the tumour is.",
    ]


#: The card's note when ``salience evaluate glioma-grade`` recomputed its test figures.
EVALUATED_LINES = [
    "Recomputed by `salience evaluate glioma-grade` from the held-back patients and the shipped weights",
    "(`docs/evaluation.json`): the table, the calibration error and the Grad-CAM check. The seed range,",
    "the validation figures, the history and the timings are the training run's (`docs/training_metrics.json`).",
    "",
]


def model_card(
    metadata: dict[str, Any], metrics: dict[str, Any], network_def: dict[str, Any], evaluated: bool = False
) -> str:
    """Markdown model card: data and licence, split, test metrics with CIs and the seed range, the
    Grad-CAM check, use and limits.

    Args:
        metadata: the bundle's ``metadata.json`` content (before the checksum is added).
        metrics: what ``train_glioma_grade`` measured (test figures possibly recomputed).
        network_def: the ``inference.json`` network config.
        evaluated: the test figures were recomputed by ``salience evaluate`` (the card says so).
    """
    t, v = metrics["test"], metrics["val"]
    training = metadata["training"]
    split, patients, grade_iii = metrics["split"], metrics["patients"], metrics["grade_iii"]
    size, grid = metadata["input_size"], metadata["target_layer_grid"]
    p = metadata["preprocessing"]
    net = network_summary(network_def, metrics["parameters"])
    opening = card_opening(metadata, "WHO grade II or III per patient, from the whole MRI volume (3-D)", [
        "**Intended use: research and demonstration, not for clinical decisions.** The model shows how a",
        "reviewer inspects a 3-D classifier's class-activation map in Salience, slice by slice. Histological",
        "grade is decided on tissue; no MRI model replaces that.",
    ])
    lines = [
        *opening,
        "## Data and licence",
        "",
        "- Images: TCGA-LGG (lower-grade glioma) from The Cancer Imaging Archive (TCIA), shared under",
        "  CC BY 3.0. Cite TCIA (Clark et al. 2013) and the TCGA-LGG collection.",
        "- Grades, masks and slice preparation: Buda, Saha and Mazurowski, \"Association of genomic subtypes",
        "  of lower-grade gliomas with shape features automatically extracted by a deep learning",
        "  algorithm\", Computers in Biology and Medicine 2019 (the LGG segmentation dataset; grades from",
        "  its `data.csv`, `neoplasm_histologic_grade`: 1 = WHO grade II, 2 = grade III).",
        f"- As used here: the {metrics['patients_graded']} of {metrics['patient_folders']} patient folders with a grade "
        f"({metrics['patients_graded'] - sum(patients.values())} not in the split),",
        "  pre-contrast T1, FLAIR and post-contrast T1 at 128 x 128 in-plane (2 x 2 mean of the 256 x 256",
        f"  source), {metrics['slices_per_volume'][0]} to {metrics['slices_per_volume'][1]} slices. Where the source lacked a sequence it repeated FLAIR",
        "  in its place. The FLAIR abnormality masks are used only to check the maps, never to train.",
        "",
        "## Model",
        "",
        f"- Network: {net} (input {_by(size)} voxels, slices x rows x columns,",
        "  channels " + ", ".join(metadata["input_channels"]) + "), weights in safetensors.",
        f"- Preprocessing: `{p['function']}`: each sequence is divided by the {p['upper_percentile']}th percentile of its",
        f"  non-zero voxels and clipped to [0, {p['clip_max']}]; the head's bounding box (voxels whose scaled sequences",
        f"  average above {p['head_threshold']}, widened by {p['box_margin']} voxels in-plane) is cut out and resampled",
        f"  (trilinear) to {_by(size)}. The box is kept, so the 3-D map goes back onto exactly the voxels it came",
        "  from and is zero outside the box; no reorientation.",
        f"- CAM target layer: `{metadata['target_layer']}`, the last activation before global pooling:",
        f"  {_by(grid)} cells for a {_by(size)} input (each cell {size[0] // grid[0]} x {size[1] // grid[1]} x {size[2] // grid[2]} input voxels, about",
        "  twice that in the volume in-plane): a coarse map, resampled onto every slice.",
        *calibration_lines("validation patients", metrics["temperature"], metrics["test_ece_uncalibrated"], metrics["test_ece"]),
        "",
        "## Training",
        "",
        f"- Patients split by patient, stratified by grade, with split seed {training['split_seed']}:",
        f"  {patients['train']} train ({grade_iii['train']} grade III), {patients['val']} validation ({grade_iii['val']} grade III),",
        f"  {patients['test']} test ({grade_iii['test']} grade III). No patient is in two parts.",
        *optimiser_lines(training, metrics["best_epoch"]),
        "  Augmentation: random left-right flip, per-channel intensity scale +-10% and shift +-0.05, and a",
        "  shift of up to 4 voxels in-plane and 2 across slices (zeros coming in).",
        f"- Measured time: {metrics['seconds_training'] / 60:.1f} min wall-clock training of the shipped seed ({metrics['cpu_seconds_training'] / 60:.1f} min CPU),",
        f"  {metrics['seconds_total'] / 60:.1f} min in all with the {len(metrics['seed_range']['runs']) - 1} further seeds and the checks, on a 2-core CPU shared",
        f"  with other work, {training['torch_threads']} torch thread(s) (PyTorch {metadata['pytorch_version']}, MONAI {metadata['monai_version']}).",
        *reproduce_lines("glioma-grade", "--data ../shared/data/glioma-lgg --out engine/bundles/glioma-grade", training,
                         " (another thread count or library"),
        "  version changes the weights in the last bits).",
        "",
        "## Results on the held-back test patients (patient level)",
        "",
        *(EVALUATED_LINES if evaluated else []),
        *results_table(t),
        *seed_lines(metrics["seed_range"]),
        "",
        f"Validation patients (they chose the epoch and the temperature, so this is optimistic): AUC {v['auc']:.3f}",
        f"({_ci(v['auc_ci'], False)}), accuracy {percent(v['accuracy'])} ({v['tp'] + v['tn']} of {v['n']}).",
        "",
        *cam_lines(metrics["cam_localisation"]),
        "",
        FIGURES_LINE,
        "",
        "## Known limits",
        "",
        f"- Small: {sum(patients.values())} patients, {patients['test']} of them held back. The confidence intervals are wide",
        "  and the seed range shows how much a figure moves with nothing but the initial weights; a",
        "  different split moves it more. Treat the AUC as a rough estimate, not as a property of the model.",
        "- Grade II vs III is a hard distinction on MRI (contrast enhancement and heterogeneity favour",
        "  grade III, but overlap is wide); the label is the TCGA histological grade, from a tissue sample,",
        "  which may not represent the whole tumour.",
        "- The share of grade III differs by contributing site (" + _sites(metrics["grade_iii_by_site"]) + "),",
        "  so a model can score above chance by recognising a site's scanner or protocol rather than the",
        "  tumour; nothing here rules that out (the Grad-CAM check above is one way to look).",
        "- A handful of TCGA institutions and scanners, lower-grade gliomas only: not validated on other",
        "  protocols, on glioblastoma, or on volumes prepared differently (bias correction, skull stripping,",
        "  other slice thickness). Where a sequence was missing the input repeats FLAIR.",
        f"- The whole head is squeezed into {_by(size)} voxels whatever its size and slice count, so small",
        f"  lesions are a few voxels; the map has {_by(grid)} cells and can only point at a region, not a lesion's edge.",
        "- The viewer's per-slice probability strip repeats the one volume probability on every slice.",
        "",
        *patients_section(split),
    ]
    return "\n".join(lines)
