"""Write a bundle folder in the layout ``load_bundle`` reads, with the weights' checksum."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from engine.models.bundle import INFERENCE_FILE, METADATA_FILE, MODEL_CARD_FILE, WEIGHTS_FILE, file_sha256


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


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
