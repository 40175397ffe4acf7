"""Write a bundle folder in the layout ``load_bundle`` reads, with the weights' checksum, and
compose the ``metadata.json`` of a trained bundle from what its recipe declares."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from engine.models.bundle import INFERENCE_FILE, METADATA_FILE, MODEL_CARD_FILE, WEIGHTS_FILE, file_sha256

INTENDED_USE = "Research and demonstration, not for clinical decisions."


def write_bundle(
    out_dir: str | Path,
    metadata: dict[str, Any],
    network_def: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    model_card: str,
) -> Path:
    """Save weights as safetensors, then the configs (with the weights' SHA-256) and model card.

    Args:
        out_dir: the bundle folder; created if needed, files in it are overwritten.
        metadata: ``metadata.json`` content; ``weights_sha256`` is filled in here.
        network_def: the ``network_def`` of ``inference.json``.
        state_dict: the network's tensors (made contiguous and moved to the CPU).
        model_card: Markdown text of ``docs/README.md``.

    Returns:
        The bundle folder.
    """
    from safetensors.torch import save_file

    out = Path(out_dir)
    for relative in (METADATA_FILE, WEIGHTS_FILE, MODEL_CARD_FILE):
        (out / relative).parent.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    save_file(tensors, str(out / WEIGHTS_FILE))
    full_metadata = dict(metadata, weights_sha256=file_sha256(out / WEIGHTS_FILE))
    _write_json(out / METADATA_FILE, full_metadata)
    _write_json(out / INFERENCE_FILE, {"network_def": network_def})
    (out / MODEL_CARD_FILE).write_text(model_card, encoding="utf-8")
    return out


def layer_grid(network: nn.Module, layer: str, input_size: tuple[int, int], channels: int) -> list[int]:
    """Spatial size of ``layer``'s output for one input of ``input_size`` (the CAM's resolution)."""
    from engine.explain import resolve_layer

    shapes: list[tuple[int, ...]] = []
    handle = resolve_layer(network, layer).register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape)))
    try:
        with torch.inference_mode():
            network.eval()(torch.zeros((1, channels) + tuple(input_size)))
    finally:
        handle.remove()
    return list(shapes[0][2:])


@dataclass(frozen=True)
class BundleSpec:
    """What a recipe's bundle declares about itself: the fixed part of its ``metadata.json``.

    Attributes:
        name: the bundle's and its task's name (a task of ``engine.models.task_registry``).
        description: what the model says about each item.
        class_names: the classes, in output order.
        input_channels: the image channels the network reads, in order.
        input_size: ``(height, width)`` of a network input.
        item_axis: what one item is ("slice", "frame", "patch").
        target_layer: the layer CAMs are computed at.
        preprocessing_function: dotted name of the task's preprocessing function.
        calibration_data: which items the temperature is fitted on ("validation patients").
        data_license: the training data's licence.
        data_source: where the training data comes from.
        input_notes: further sections on reading an image, written after ``preprocessing``.
        output_notes: further sections on reading the output, written after ``calibration``.
        version: the bundle's version.
    """

    name: str
    description: str
    class_names: tuple[str, ...]
    input_channels: tuple[str, ...]
    input_size: tuple[int, int]
    item_axis: str
    target_layer: str
    preprocessing_function: str
    calibration_data: str
    data_license: str
    data_source: str
    input_notes: Mapping[str, Any] = field(default_factory=dict)
    output_notes: Mapping[str, Any] = field(default_factory=dict)
    version: str = "1.0.0"

    def target_layer_grid(self, network: nn.Module) -> list[int]:
        """The CAM grid of ``network`` at ``target_layer`` for one input (``layer_grid``)."""
        return layer_grid(network, self.target_layer, self.input_size, len(self.input_channels))


def bundle_metadata(
    spec: BundleSpec, parameters: dict[str, Any], temperature: float, training: dict[str, Any], **sections: Any
) -> dict[str, Any]:
    """``metadata.json`` of a trained bundle, before ``write_bundle`` adds the weights' checksum.

    Args:
        spec: the recipe's fixed declarations.
        parameters: the preprocessing parameters the network was trained with.
        temperature: the fitted softmax temperature.
        training: the ``training`` section (``training_record``).
        sections: further recipe sections (the split, the grouping), written last in this order.
    """
    import monai

    return {
        "name": spec.name,
        "version": spec.version,
        "task": spec.name,
        "description": spec.description,
        "class_names": list(spec.class_names),
        "input_channels": list(spec.input_channels),
        "input_size": list(spec.input_size),
        "item_axis": spec.item_axis,
        "target_layer": spec.target_layer,
        "preprocessing": {"function": spec.preprocessing_function, **parameters},
        **spec.input_notes,
        "calibration": {"temperature": round(temperature, 6), "calibrated": True, "fitted_on": spec.calibration_data},
        **spec.output_notes,
        "data_license": spec.data_license,
        "data_source": spec.data_source,
        "intended_use": INTENDED_USE,
        "monai_version": monai.__version__,
        "pytorch_version": torch.__version__,
        "training": training,
        **sections,
    }


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
