"""The model card (``docs/README.md``) of the histopathology bundle, written by
``salience evaluate histopathology`` from its report on the held-back near-copy groups and the slide
check (``engine.tasks.histopathology.evaluation``), the bundle's metadata and the training metrics.
The recipe writes a first card from its own held-back figures, without the slide check."""

from __future__ import annotations

from typing import Any

from engine.training.model_card import (
    FIGURES_LINE,
    cam_layer_lines,
    card_opening,
    ci_text,
    confusion_table,
    network_summary,
    optimiser_lines,
    percent,
    reproduce_lines,
    seed_range_lines,
)


def _count(figure: dict[str, Any]) -> str:
    return f"{figure['count'][0]} of {figure['count'][1]}"


def _data(metadata: dict[str, Any], training_metrics: dict[str, Any] | None) -> list[str]:
    g = metadata["grouping"]
    folders = training_metrics["class_folders"] if training_metrics else {}
    return [
        "## Data and licence",
        "",
        "- LC25000 (Borkowski, Bui, Thomas, Wilson, DeLand and Mastorides, \"Lung and Colon Cancer",
        "  Histopathological Image Dataset (LC25000)\", arXiv:1912.12142, 2019), released by its authors",
        "  for research use. Lung part only: " + ", ".join(f"`{k}` = {v}" for k, v in folders.items()) + ".",
        f"- As used here: {g['patches']} patches, 224 x 224 JPEG (the shared folder holds 600 per class, exact",
        "  duplicates removed).",
        "- The set was grown from 250 original images per class by random rotations and flips; there",
        "  are no patient or slide ids. LC25000 is lung (and colon) only: no other organ, stain or",
        "  scanner is represented, and no pixel size is given.",
        "",
    ]


def _grouping(metadata: dict[str, Any], report: dict[str, Any]) -> list[str]:
    g = metadata["grouping"]
    split = report["split"]
    return [
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
        f"- Split by group, class by class (split seed {g['split_seed']}): train {split['patches']['train']} patches in "
        f"{split['groups']['train']} groups, validation {split['patches']['val']} in {split['groups']['val']},",
        f"  test {split['patches']['test']} in {split['groups']['test']}. The test patch names are in `configs/metadata.json`;",
        "  `salience evaluate` recomputes the split from the data folder and stops unless it gives that list.",
        "- **Figures below may still be optimistic**: LC25000 holds 250 originals per class, so more",
        "  than 250 groups per class means some copies were not recognised (stronger rotations, crops",
        "  or colour changes) and may sit on both sides of the split; and different originals may come",
        "  from one patient or one slide, which no id lets us keep together.",
        "",
    ]


def _model(metadata: dict[str, Any], network_def: dict[str, Any], report: dict[str, Any],
           training_metrics: dict[str, Any] | None) -> list[str]:
    size, pre, slide = metadata["input_size"], metadata["preprocessing"], metadata["slide"]
    calibration = report["calibration"]
    net = network_summary(network_def, training_metrics["parameters"]) if training_metrics else f"`{network_def['_target_']}`"
    return [
        "## Model",
        "",
        f"- Network: {net}, trained from scratch ({size[0]} x {size[1]} RGB input), weights in safetensors.",
        f"- Preprocessing: `{pre['function']}`: RGB / 255, resized to {size[0]} x {size[1]} (bilinear, antialiased),",
        f"  then fixed per-channel normalisation, mean ({pre['mean_r']}, {pre['mean_g']}, {pre['mean_b']}), SD ({pre['std_r']}, {pre['std_g']}, {pre['std_b']}).",
        *cam_layer_lines(metadata, "patch", "input pixels"),
        f"- Calibration: temperature scaling fitted on the validation groups, T = {calibration['temperature']:.3f};",
        f"  held-back expected calibration error ({calibration['bins']} bins) {ci_text(calibration['ece_before'])} before"
        f"{_spread(report, 'ece_before')},",
        f"  {ci_text(calibration['ece_after'])} after{_spread(report, 'ece_after')} (intervals: near-copy group",
        "  bootstrap). The probabilities Salience shows are the scaled ones.",
        f"- Whole slides: tissue tiles of {slide['tile_size']} px are read at {slide['tile_mpp']} um/px (an ASSUMPTION:",
        "  LC25000 states no pixel size; 0.5 um/px is the usual 20x scan) from the nearest pyramid level",
        "  and resized like a patch; a slide without a pixel size is tiled at level 0. The slide score",
        f"  of a class is the {slide['slide_score']} over tissue tiles (tiles with at least",
        f"  {percent(slide['min_tissue_fraction'])} tissue: benign lung is airy and its alveoli look like glass).",
        "",
    ]


def _training(metadata: dict[str, Any], training_metrics: dict[str, Any] | None) -> list[str]:
    training = metadata["training"]
    if training_metrics is None:
        return ["## Training", "", "- The recipe's training record (`docs/training_metrics.json`) is not in this bundle.", ""]
    return [
        "## Training",
        "",
        *optimiser_lines(training, training_metrics["best_epoch"]),
        "  Augmentation: the 8 rotations/flips of the square and a per-channel shift of +-0.1 SD.",
        f"- Measured time: {training_metrics['seconds_training'] / 60:.1f} min wall-clock training ({training_metrics['cpu_seconds_training'] / 60:.1f} min CPU),",
        f"  {training_metrics['seconds_total'] / 60:.1f} min in all with reading and grouping, on a 2-core CPU shared with other work,",
        f"  {training['torch_threads']} torch thread(s) (PyTorch {metadata['pytorch_version']}, MONAI {metadata['monai_version']}).",
        *reproduce_lines("histopathology", "--out engine/bundles/histopathology", training, "."),
        "",
    ]


def _spread(report: dict[str, Any], figure: str, as_percent: bool = False) -> str:
    """``"; seeds 0, 1, 2: 97.8%-98.9%"`` when other seeds were measured, else nothing."""
    runs = report.get("seed_runs")
    if not runs:
        return ""
    show = percent if as_percent else (lambda x: f"{x:.3f}")
    low, high = runs["ranges"][figure]
    return f"; seeds {', '.join(str(r['seed']) for r in runs['runs'])}: {show(low)}-{show(high)}"


def _results(report: dict[str, Any]) -> list[str]:
    per_class = [
        f"| {name} | {ci_text(v['sensitivity'], True)} | {_count(v['sensitivity'])} | {ci_text(v['specificity'], True)} "
        f"| {_count(v['specificity'])} | {ci_text(v['auc'])} |"
        for name, v in report["per_class"].items()
    ]
    return [
        f"## Results on the held-back test groups ({report['items']} patches, {report['groups']} near-copy groups)",
        "",
        f"- Accuracy {ci_text(report['accuracy'], True)}, {_count(report['accuracy'])} (Wilson interval, patches as",
        f"  independent); over near-copy groups (bootstrap) {ci_text(report['accuracy_groups'], True)}"
        f"{_spread(report, 'accuracy', True)}.",
        f"- Macro one-vs-rest ROC AUC {ci_text(report['macro_auc'])} (bootstrap over near-copy groups, 2,000 resamples)"
        f"{_spread(report, 'macro_auc')}.",
        "",
        "Each class against the other two (sensitivity and specificity of the predicted class; Wilson",
        "intervals; AUC of the class's probability with a near-copy group bootstrap):",
        "",
        "| class | sensitivity (95% CI) | counts | specificity (95% CI) | counts | one-vs-rest AUC (95% CI) |",
        "| --- | --- | --- | --- | --- | --- |",
        *per_class,
        "",
        "Confusion matrix (rows: true class, columns: predicted):",
        "",
        *confusion_table(report["class_names"], report["confusion"]),
        "",
    ]


def _slides(report: dict[str, Any]) -> list[str]:
    s = report.get("slides")
    if not s:
        return ["## Slide heatmap check", "", "Not run for this card (`salience evaluate histopathology` runs it).", ""]
    rows, cols = s["grid"]
    per_layout = ", ".join(f"{layout['dice']:.3f}" for layout in s["layouts"])
    return [
        "## Slide heatmap check",
        "",
        f"{s['mosaics']} whole slides were built as real tiled pyramidal TIFFs (3 levels, {s['mpp']} um/px) from held-back",
        f"patches only: {rows} x {cols} tissue cells of {s['cell']} px on a margin of glass, one rectangle of tumour cells",
        "(adenocarcinoma or squamous cell carcinoma, random size and place, layout seed "
        f"{report.get('layout_seed', 0)}) inside benign cells.",
        "Each slide went the viewer's way (`read_slide`, `analyse_case`); the slide heatmap is the stitched tile",
        f"probability of tumour on the thumbnail grid. Hot tile: {s['rule']}.",
        f"{s['tiles_read']} of {s['tiles']} tissue cells were read as tiles by the tissue detector.",
        "",
        "| figure | value (95% CI) | counts |",
        "| --- | --- | --- |",
        f"| Dice of hot tiles vs tumour tiles | {ci_text(s['dice'])}{_spread(report, 'slide_dice')} "
        f"| {s['tp']} hot tumour, {s['fp']} hot benign, {s['fn']} cold tumour tiles |",
        f"| mean Dice per slide | {ci_text(s['mean_dice'])} | {s['mosaics']} slides |",
        f"| tile sensitivity | {ci_text(s['sensitivity'], True)} | {_count(s['sensitivity'])} |",
        f"| tile specificity | {ci_text(s['specificity'], True)} | {_count(s['specificity'])} |",
        "",
        f"Dice intervals: bootstrap over slides (2,000 resamples); per slide: {per_layout}.",
        *(["Every slide scored the same, so the bootstrap interval over slides has no width; the tile",
           "sensitivity and specificity intervals above show how few tiles back the figure."]
          if s["dice"]["ci95"][0] == s["dice"]["ci95"][1] else []),
        "Tiles are exactly held-back patches, so this checks that the slide path (tiling, reading,",
        "stitching, the heatmap) keeps the patch classifier's answers in the right place; it is not a",
        "test on real slides.",
        "",
    ]


def _seed_runs(report: dict[str, Any]) -> list[str]:
    return seed_range_lines(report.get("seed_runs"), lambda seeds: [
        "## Seed to seed",
        "",
        f"Runs of this recipe with seeds {seeds} (same split, same held-back patches and slides; this bundle",
        "is the first; the others were trained by the command above with another `--seed` into a scratch",
        "folder, not shipped, and measured with `salience evaluate histopathology --compare`). Each figure",
        "with its range over the runs:",
    ])


def model_card(
    metadata: dict[str, Any], network_def: dict[str, Any], report: dict[str, Any], training_metrics: dict[str, Any] | None
) -> str:
    """Markdown model card: data and licence, grouping and split, model, training, held-back
    results with 95% intervals, the slide heatmap check, seed ranges, limits.

    Args:
        metadata: the bundle's ``metadata.json``.
        network_def: its ``inference.json`` network config.
        report: what ``salience evaluate histopathology`` measured (``evaluation.evaluate``), or
            the recipe's own report (no ``slides``).
        training_metrics: the recipe's ``docs/training_metrics.json``, or None.
    """
    grid = metadata["target_layer_grid"]
    opening = card_opening(metadata, "lung H&E patch classifier", [
        "**Intended use: research and demonstration, not for clinical decisions.** The model shows",
        "how a reviewer inspects a classifier's class-activation maps on patches and, tile by tile,",
        "on whole-slide images in Salience.",
    ])
    lines = [
        *opening,
        f"This card was written by {report.get('written_by', '`salience evaluate histopathology`')} from the held-back",
        "test groups; to change it, change the recipe or the card writer",
        "(`engine/tasks/histopathology/model_card.py`), never this file.",
        "",
        *_data(metadata, training_metrics),
        *_grouping(metadata, report),
        *_model(metadata, network_def, report, training_metrics),
        *_training(metadata, training_metrics),
        *_results(report),
        *_slides(report),
        *_seed_runs(report),
        FIGURES_LINE + " The held-back report: `docs/evaluation.json`.",
        "",
        "## Known limits",
        "",
        "- The augmentation leak (above): accuracy on new slides, labs and scanners will be lower.",
        "- LC25000 is lung only, from one source; no patient ids, so patient-level independence of the",
        "  test set is not known. Three classes only: other tissue (necrosis, lymphocytes, glass,",
        "  pen marks, out-of-focus areas) still gets one of the three labels.",
        f"- Coarse maps: {grid[0]} x {grid[1]} cells per patch; on a slide, one such map per tile.",
        "- The slide check uses mosaics of patches, not scanned slides: tiles fall exactly on patches,",
        "  with no tissue borders, folds or stain shifts between them.",
        "- The magnification of LC25000 is unknown, so slide tiles may be read at the wrong scale;",
        "  pass `tile_mpp` to `engine.analysis.slide.analyse_slide` to change it.",
        "",
    ]
    return "\n".join(lines)
