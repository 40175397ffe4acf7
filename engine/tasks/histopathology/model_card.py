"""The model card (``docs/README.md``) of the histopathology bundle, written from the training metrics."""

from __future__ import annotations

from typing import Any

from engine.training.model_card import (
    FIGURES_LINE,
    calibration_lines,
    cam_layer_lines,
    card_opening,
    confusion_table,
    network_summary,
    optimiser_lines,
    percent,
    reproduce_lines,
)


def model_card(metadata: dict[str, Any], metrics: dict[str, Any], network_def: dict[str, Any]) -> str:
    """Markdown model card: data and licence, grouping and split, test metrics, CAM, use and limits.

    Args:
        metadata: the bundle's ``metadata.json`` content (before the checksum is added).
        metrics: what ``train_histopathology`` measured.
        network_def: the ``inference.json`` network config.
    """
    t = metrics["test"]
    g = metrics["grouping"]
    training = metadata["training"]
    grid, size = metadata["target_layer_grid"], metadata["input_size"]
    slide = metadata["slide"]
    pre = metadata["preprocessing"]
    net = network_summary(network_def, metrics["parameters"])
    per_class = [
        f"| {name} | {percent(v['sensitivity'])} ({v['correct']} of {v['n']}) | {v['auc']:.3f} |"
        for name, v in t["per_class"].items()
    ]
    opening = card_opening(metadata, "lung H&E patch classifier", [
        "**Intended use: research and demonstration, not for clinical decisions.** The model shows",
        "how a reviewer inspects a classifier's class-activation maps on patches and, tile by tile,",
        "on whole-slide images in Salience.",
    ])
    lines = [
        *opening,
        "## Data and licence",
        "",
        "- LC25000 (Borkowski, Bui, Thomas, Wilson, DeLand and Mastorides, \"Lung and Colon Cancer",
        "  Histopathological Image Dataset (LC25000)\", arXiv:1912.12142, 2019), released by its authors",
        "  for research use. Lung part only: " + ", ".join(f"`{k}` = {v}" for k, v in metrics["class_folders"].items()) + ".",
        f"- As used here: {g['patches']} patches, 224 x 224 JPEG (the shared folder holds 600 per class, exact",
        "  duplicates removed).",
        "- The set was grown from 250 original images per class by random rotations and flips; there",
        "  are no patient or slide ids. LC25000 is lung (and colon) only: no other organ, stain or",
        "  scanner is represented, and no pixel size is given.",
        "",
        "## Near-copy groups and split",
        "",
        "A random split would put rotated/flipped copies of training patches in the test set. Each",
        "patch is sampled on rings around its centre (band-passed grey image), so a rotation becomes a",
        "circular shift, a mirror image a reversal and the crop-and-rescale of a rotation a radial",
        "stretch; two patches of a class are copies when their best normalised circular correlation",
        f"over all shifts, both mirror senses and 4 stretches reaches {g['threshold']}. Groups are the",
        "connected components of the copy pairs. On LC25000 unrelated patches score below about 0.4",
        "and pairs checked by eye between 0.43 and 0.6 were copies; the threshold sits in that gap.",
        "",
        f"- Found {g['groups']} groups in {g['patches']} patches (" + ", ".join(f"{k}: {v}" for k, v in g["groups_per_class"].items())
        + f"); {g['singletons']} patches have no copy, the largest group has {g['largest_group']} patches.",
        f"- Split by group, class by class (split seed {g['split_seed']}): train {metrics['patches']['train']} patches in "
        f"{metrics['groups']['train']} groups, validation {metrics['patches']['val']} in {metrics['groups']['val']},",
        f"  test {metrics['patches']['test']} in {metrics['groups']['test']}. The test patch names are in `configs/metadata.json`.",
        "- **Figures below may still be optimistic**: LC25000 holds 250 originals per class, so more",
        "  than 250 groups per class means some copies were not recognised (stronger rotations, crops",
        "  or colour changes) and may sit on both sides of the split; and different originals may come",
        "  from one patient or one slide, which no id lets us keep together.",
        "",
        "## Model",
        "",
        f"- Network: {net}, trained from scratch ({size[0]} x {size[1]} RGB input), weights in safetensors.",
        f"- Preprocessing: `{pre['function']}`: RGB / 255, resized to {size[0]} x {size[1]} (bilinear, antialiased),",
        f"  then fixed per-channel normalisation, mean ({pre['mean_r']}, {pre['mean_g']}, {pre['mean_b']}), SD ({pre['std_r']}, {pre['std_g']}, {pre['std_b']}).",
        *cam_layer_lines(metadata, "patch", "input pixels"),
        *calibration_lines("validation groups", metrics["temperature"], metrics["test_ece_uncalibrated"], metrics["test_ece"]),
        f"- Whole slides: tissue tiles of {slide['tile_size']} px are read at {slide['tile_mpp']} um/px (an ASSUMPTION:",
        "  LC25000 states no pixel size; 0.5 um/px is the usual 20x scan) from the nearest pyramid level",
        "  and resized like a patch; a slide without a pixel size is tiled at level 0. The slide score",
        f"  of a class is the {slide['slide_score']} over tissue tiles (tiles with at least",
        f"  {percent(slide['min_tissue_fraction'])} tissue: benign lung is airy and its alveoli look like glass).",
        "",
        "## Training",
        "",
        *optimiser_lines(training, metrics["best_epoch"]),
        "  Augmentation: the 8 rotations/flips of the square and a per-channel shift of +-0.1 SD.",
        f"- Measured time: {metrics['seconds_training'] / 60:.1f} min wall-clock training ({metrics['cpu_seconds_training'] / 60:.1f} min CPU),",
        f"  {metrics['seconds_total'] / 60:.1f} min in all with reading and grouping, on a 2-core CPU shared with other work,",
        f"  {training['torch_threads']} torch thread(s) (PyTorch {metadata['pytorch_version']}, MONAI {metadata['monai_version']}).",
        *reproduce_lines("histopathology", "--out engine/bundles/histopathology", training, "."),
        "",
        f"## Results on the held-out test groups ({t['n']} patches)",
        "",
        f"Accuracy {percent(t['accuracy'])} ({sum(t['confusion'][i][i] for i in range(len(t['confusion'])))} of {t['n']}), macro one-vs-rest ROC AUC {t['macro_auc']:.3f}.",
        "",
        "| class | sensitivity | one-vs-rest AUC |",
        "| --- | --- | --- |",
        *per_class,
        "",
        "Confusion matrix (rows: true class, columns: predicted):",
        "",
        *confusion_table(t["class_names"], t["confusion"]),
        "",
        FIGURES_LINE,
        "",
        "## Known limits",
        "",
        "- The augmentation leak (above): accuracy on new slides, labs and scanners will be lower.",
        "- LC25000 is lung only, from one source; no patient ids, so patient-level independence of the",
        "  test set is not known. Three classes only: other tissue (necrosis, lymphocytes, glass,",
        "  pen marks, out-of-focus areas) still gets one of the three labels.",
        f"- Coarse maps: {grid[0]} x {grid[1]} cells per patch; on a slide, one such map per tile.",
        "- The magnification of LC25000 is unknown, so slide tiles may be read at the wrong scale;",
        "  pass `tile_mpp` to `engine.analysis.slide.analyse_slide` to change it.",
        "",
    ]
    return "\n".join(lines)
