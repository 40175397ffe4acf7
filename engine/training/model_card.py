"""Lines the three model cards (``docs/README.md`` of a trained bundle) write alike.

Each recipe's card module (``glioma_model_card``, ``histopathology_model_card``,
``lung_ultrasound_model_card``) writes its own data, split, results and limits, and takes the
opening, the network and CAM-layer lines, the training and reproduction lines and the tables from here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

#: Every card ends its results with where the full figures are.
FIGURES_LINE = "Per-epoch losses, validation metrics and all figures above: `docs/training_metrics.json`."


def percent(x: float) -> str:
    """``0.8734`` -> ``"87.3%"``."""
    return f"{100 * x:.1f}%"


def ci_text(figure: dict[str, Any], as_percent: bool = False, digits: int = 3) -> str:
    """``0.912 (95% CI 0.871-0.947)`` of a report figure (``engine.training.evaluate.interval``)."""
    show = percent if as_percent else (lambda x: f"{x:.{digits}f}")
    low, high = figure["ci95"]
    return f"{show(figure['estimate'])} (95% CI {show(low)}-{show(high)})"


def card_opening(metadata: dict[str, Any], title: str, use_lines: Sequence[str]) -> list[str]:
    """The title (name, version, ``title``), the description and the intended-use paragraph.

    Args:
        metadata: the bundle's ``metadata.json`` content.
        title: what the model is, after the name and version.
        use_lines: the intended-use paragraph, wrapped as it should appear.
    """
    return [f"# {metadata['name']} {metadata['version']}: {title}", "", metadata["description"], "", *use_lines, ""]


def network_summary(network_def: dict[str, Any], parameters: int) -> str:
    """``"`monai.networks.nets.DenseNet(spatial_dims=2, ...)`, 43,011 parameters"``."""
    arguments = ", ".join(f"{k}={v}" for k, v in network_def.items() if k != "_target_")
    return f"`{network_def['_target_']}({arguments})`, {parameters:,} parameters"


def cam_layer_lines(metadata: dict[str, Any], item: str, cell_unit: str = "pixels", more: str = "") -> list[str]:
    """Which layer CAMs are taken at and how coarse its grid is for one ``item`` ("slice", "patch").

    Args:
        metadata: the bundle's ``metadata.json`` content, with ``target_layer_grid``.
        item: what one network input is called.
        cell_unit: what a cell is counted in ("pixels", "input pixels").
        more: text that continues the second line.
    """
    grid, size = metadata["target_layer_grid"], metadata["input_size"]
    return [
        f"- CAM target layer: `{metadata['target_layer']}`, the last activation before global pooling:",
        f"  {grid[0]} x {grid[1]} cells for a {size[0]} x {size[1]} {item} "
        f"({size[0] // grid[0]} x {size[1] // grid[1]} {cell_unit} per cell).{more}",
    ]


def calibration_lines(fitted_on: str, temperature: float, ece_before: float, ece_after: float) -> list[str]:
    """The temperature, where it was fitted, and the test ECE before and after scaling."""
    return [
        f"- Calibration: temperature scaling fitted on the {fitted_on}, T = {temperature:.3f}",
        f"  (test ECE {ece_before:.3f} before, {ece_after:.3f} after).",
    ]


def optimiser_lines(training: dict[str, Any], best_epoch: int) -> list[str]:
    """The optimiser, schedule and epochs, and the kept epoch (lowest validation loss)."""
    return [
        f"- AdamW, one-cycle learning rate (peak {training['learning_rate']}), batch {training['batch_size']}, "
        f"{training['epochs']} epochs;",
        f"  the epoch with the lowest validation loss was kept (epoch {best_epoch}).",
    ]


def reproduce_lines(task: str, arguments: str, training: dict[str, Any], note: str = "") -> list[str]:
    """The ``salience train`` command that repeats the run.

    Args:
        task: the task name.
        arguments: the options before the seeds, e.g. ``"--out engine/bundles/glioma"``.
        training: the ``training`` section of ``metadata.json``.
        note: text after the command on its second line.
    """
    return [
        f"- Reproduce: `salience train {task} {arguments}",
        f"  --epochs {training['epochs']} --seed {training['seed']} --split-seed {training['split_seed']} "
        f"--threads {training['torch_threads']}`{note}",
    ]


def confusion_table(class_names: Sequence[str], confusion: Sequence[Sequence[int]]) -> list[str]:
    """A Markdown confusion matrix: rows true class, columns predicted."""
    lines = ["| true \\ predicted | " + " | ".join(class_names) + " |", "| --- |" + " --- |" * len(class_names)]
    for name, row in zip(class_names, confusion):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return lines


def seed_range_lines(seed_runs: dict[str, Any] | None, intro: Callable[[str], list[str]]) -> list[str]:
    """The runs of other seeds: ``intro(seeds)`` then a table of each figure of every run and its
    range (``engine.training.evaluate.seed_ranges``); a line saying so when there are none.

    Args:
        seed_runs: the report's ``seed_runs``, or None.
        intro: the lines before the table, given the seeds as text ("0, 1, 2").
    """
    if not seed_runs:
        return ["Only this run was measured: no seed-to-seed range is given.", ""]
    runs = seed_runs["runs"]
    return [
        *intro(", ".join(str(r["seed"]) for r in runs)),
        "",
        "| figure | " + " | ".join(f"seed {r['seed']}" for r in runs) + " | range |",
        "| --- |" + " --- |" * (len(runs) + 1),
        *(
            f"| {name} | " + " | ".join(f"{r[name]:.3f}" for r in runs) + f" | {low:.3f}-{high:.3f} |"
            for name, (low, high) in seed_runs["ranges"].items()
        ),
        "",
    ]


def code_list(ids) -> str:
    """Identifiers as a comma-separated list of inline code: "`a`, `b`"."""
    return ", ".join(f"`{i}`" for i in ids)


def patients_section(split: dict) -> list[str]:
    """A card's "## Patients" section: the patient ids of each part of the split, as card lines."""
    return [
        "## Patients",
        "",
        f"- Train: {code_list(split['train'])}",
        f"- Validation: {code_list(split['val'])}",
        f"- Test: {code_list(split['test'])}",
        "",
    ]
