"""The model card (``docs/README.md``) of the glioma bundle, written from the training metrics."""

from __future__ import annotations

from typing import Any

from engine.training.model_card import (
    FIGURES_LINE,
    calibration_lines,
    cam_layer_lines,
    card_opening,
    network_summary,
    optimiser_lines,
    percent,
    reproduce_lines,
)


def _ids(ids: list[str]) -> str:
    return ", ".join(f"`{i}`" for i in ids)


def model_card(metadata: dict[str, Any], metrics: dict[str, Any], network_def: dict[str, Any]) -> str:
    """Markdown model card: data and licence, split, test metrics, CAM check, use and limits.

    Args:
        metadata: the bundle's ``metadata.json`` content (before the checksum is added).
        metrics: what ``train_glioma`` measured.
        network_def: the ``inference.json`` network config.
    """
    t = metrics["test"]
    cam = metrics["cam_localisation"]
    training = metadata["training"]
    split = metrics["split"]
    grid, size = metadata["target_layer_grid"], metadata["input_size"]
    net = network_summary(network_def, metrics["parameters"])
    opening = card_opening(metadata, "FLAIR abnormality per MRI slice", [
        "**Intended use: research and demonstration, not for clinical decisions.** The model shows",
        "how a reviewer inspects a classifier's class-activation maps in Salience.",
    ])
    lines = [
        *opening,
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
        f"- Network: {net} ({metadata['input_size'][0]} x {metadata['input_size'][1]} input,",
        "  channels " + ", ".join(metadata["input_channels"]) + "), weights in safetensors.",
        f"- Preprocessing: `{metadata['preprocessing']['function']}`: each sequence of each volume is",
        f"  divided by the {metadata['preprocessing']['upper_percentile']}th percentile of its non-zero voxels and clipped to",
        f"  [0, {metadata['preprocessing']['clip_max']}]; slices are resized to the input size when the grid differs.",
        *cam_layer_lines(metadata, "slice"),
        *calibration_lines("validation patients", metrics["temperature"], metrics["test_ece_uncalibrated"], metrics["test_ece"]),
        "",
        "## Training",
        "",
        f"- Patients split by patient (never by slice) with split seed {training['split_seed']}:",
        f"  {len(split['train'])} train ({metrics['slices']['train']} slices, {metrics['positive_slices']['train']} positive),",
        f"  {len(split['val'])} validation ({metrics['slices']['val']} slices, {metrics['positive_slices']['val']} positive),",
        f"  {len(split['test'])} test ({metrics['slices']['test']} slices, {metrics['positive_slices']['test']} positive).",
        *optimiser_lines(training, metrics["best_epoch"]),
        "  Augmentation: random left-right flip, per-channel intensity scale +-10% and shift +-0.05.",
        f"- Measured time: {metrics['seconds_training'] / 60:.1f} min wall-clock training ({metrics['cpu_seconds_training'] / 60:.1f} min CPU),",
        f"  {metrics['seconds_total'] / 60:.1f} min in all, on a 2-core CPU shared with other work, {training['torch_threads']} torch",
        f"  thread(s) (PyTorch {metadata['pytorch_version']}, MONAI {metadata['monai_version']}).",
        *reproduce_lines("glioma", "--data ../shared/data/glioma-lgg --out engine/bundles/glioma", training,
                         " (another thread count or library"),
        "  version changes the weights in the last bits).",
        "",
        "## Results on the held-back test patients (slice level)",
        "",
        "| metric | value | counts |",
        "| --- | --- | --- |",
        f"| ROC AUC | {t['auc']:.3f} | {t['positives']} positive, {t['negatives']} negative slices |",
        f"| accuracy (p >= {t['threshold']}) | {percent(t['accuracy'])} | {t['tp'] + t['tn']} of {t['n']} |",
        f"| sensitivity | {percent(t['sensitivity'])} | {t['tp']} of {t['positives']} |",
        f"| specificity | {percent(t['specificity'])} | {t['tn']} of {t['negatives']} |",
        "",
        f"Grad-CAM check (`{cam['method']}`, abnormality class, raw map's positive part) on the",
        f"{cam['slices']} mask-positive test slices: on average {percent(cam['mean_energy_inside_mask'])} of the map's",
        f"energy falls inside the mask, which covers {percent(cam['mean_mask_area_fraction'])} of the slice; energy share",
        f"exceeds area share on {percent(cam['share_energy_above_area'])} of slices, and the map's peak lies inside the",
        f"mask on {percent(cam['share_peak_inside_mask'])} of slices (pointing game). On each test patient's",
        f"largest-mask slice: {percent(cam['largest_mask_slice_mean_energy'])} of energy in {percent(cam['largest_mask_slice_mean_area'])} of the area.",
        "",
        FIGURES_LINE,
        "",
        "## Known limits",
        "",
        "- 85 patients from a handful of TCGA institutions; 15 test patients give wide confidence",
        "  intervals. Not validated on other scanners, protocols, or on high-grade tumours.",
        "- Slice labels come from FLAIR abnormality masks, not from a radiologist reading each slice;",
        "  slices with a few mask voxels at the tumour's edge are hard and often missed.",
        f"- Low resolution ({size[0]} x {size[1]} input, {grid[0]} x {grid[1]} CAM grid): maps are coarse and can spill",
        "  past small lesions. Intensity scaling is per volume, so a volume cropped to a few slices",
        "  changes it.",
        "- Trained only on TCGA-LGG slices as prepared by Buda et al.; other preparations (bias",
        "  correction, skull stripping, other slice thickness) are untested.",
        "",
        "## Patients",
        "",
        f"- Train: {_ids(split['train'])}",
        f"- Validation: {_ids(split['val'])}",
        f"- Test: {_ids(split['test'])}",
        "",
    ]
    return "\n".join(lines)
