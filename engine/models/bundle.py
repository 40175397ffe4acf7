"""Model bundles in MONAI's layout, loaded without running any code they contain.

A bundle is a folder::

    <bundle>/configs/metadata.json    name, version, task, classes, channels, CAM layer, checksum
    <bundle>/configs/inference.json   network_def: a network from monai.networks.nets
    <bundle>/models/model.safetensors the weights (safetensors: tensors only, no pickle)
    <bundle>/docs/README.md           the model card

``load_bundle("glioma")`` finds a bundle shipped in ``engine/bundles``; a path loads a user's
bundle. The weights' SHA-256 is checked against the metadata before they are read. The layout and
the metadata checks live in ``engine.models.metadata``, which reads them without torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.errors import BundleError
from engine.imaging.volume import ImageVolume
from engine.models.crop_box import CropBox, MapGrid, map_grid
from engine.models.inference import check_methods, explain_with, network_device, predict_items
from engine.models.metadata import (  # noqa: F401 (the file names and readers, re-exported)
    INFERENCE_FILE, METADATA_FILE, MODEL_CARD_FILE, WEIGHTS_FILE, file_sha256, list_bundles, read_json,
    read_metadata, resolve_bundle,
)
from engine.models.network_config import build_network
from engine.models.task_registry import task_spec
from engine.models.volume_box import VolumeBox, VolumeGrid, volume_grid
from engine.progress import Progress


@dataclass(frozen=True)
class BundlePrediction:
    """What a bundle says about each item (slice, frame) of one volume.

    Attributes:
        probabilities: ``(N, K)`` float32, rows sum to 1 (temperature-scaled when calibrated).
        class_names: the ``K`` class names.
        item_axis: what the ``N`` items are ("slice" for the glioma task).
        logits: ``(N, K)`` float32 raw network outputs.
        calibrated: True when ``probabilities`` were temperature-scaled on held-out data.
    """

    probabilities: np.ndarray
    class_names: tuple[str, ...]
    item_axis: str = "slice"
    logits: np.ndarray | None = None
    calibrated: bool = False


@dataclass(frozen=True, eq=False)
class Bundle:
    """A loaded bundle: its metadata, its network (eval mode, on the device it was loaded to), and
    how to run it.

    Build with ``load_bundle``; the fields below mirror ``configs/metadata.json``.
    """

    path: Path
    metadata: dict[str, Any]
    network: nn.Module

    @property
    def name(self) -> str:
        return self.metadata["name"]

    @property
    def device(self) -> torch.device:
        """Where the network runs (its parameters' device); inputs are moved there batch by batch."""
        return network_device(self.network)

    @property
    def version(self) -> str:
        return self.metadata["version"]

    @property
    def task(self) -> str:
        return self.metadata["task"]

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(self.metadata["class_names"])

    @property
    def input_channels(self) -> tuple[str, ...]:
        return tuple(self.metadata["input_channels"])

    @property
    def input_size(self) -> tuple[int, ...]:
        """``(h, w)`` of one item, or ``(d, h, w)`` for a model that reads the whole volume."""
        return tuple(self.metadata["input_size"])

    @property
    def whole_volume(self) -> bool:
        """True for a 3-D model: one item per volume (``input_size`` of three numbers)."""
        return len(self.metadata["input_size"]) == 3

    @property
    def target_layer(self) -> str:
        return self.metadata["target_layer"]

    @property
    def weights_sha256(self) -> str:
        return self.metadata["weights_sha256"]

    @property
    def temperature(self) -> float:
        return float(self.metadata.get("calibration", {}).get("temperature", 1.0))

    @property
    def calibrated(self) -> bool:
        return bool(self.metadata.get("calibration", {}).get("calibrated", False))

    @property
    def model_card(self) -> Path:
        return self.path / MODEL_CARD_FILE

    def preprocess(self, volume: ImageVolume) -> torch.Tensor:
        """The network input for every item of ``volume``: ``(N, C, h, w)`` float32, or for a 3-D
        model (``whole_volume``) the one item ``(1, C, d, h, w)``.

        Raises:
            BundleError: the volume lacks a channel the model needs.
        """
        spec = task_spec(self.task)
        if spec.missing_channels is not None:  # e.g. an RGB clip gives a grey channel as its luma
            missing = spec.missing_channels(volume, self.input_channels)
        else:
            missing = [name for name in self.input_channels if name not in volume.channel_names]
        if missing:
            raise BundleError(
                self.name,
                f"image {volume.source} has channels {list(volume.channel_names)}; "
                f"this model needs {list(self.input_channels)}",
            )
        return spec.prepare(volume, self.input_channels, self.input_size, **self._parameters())

    def _parameters(self) -> dict[str, Any]:
        """The preprocessing parameters the task knows (``function`` and the like left out)."""
        known = task_spec(self.task).parameters
        return {k: v for k, v in self.metadata["preprocessing"].items() if k in known}

    def predict(
        self, volume: ImageVolume, progress: Progress | None = None, batch_size: int = 32
    ) -> BundlePrediction:
        """Class probabilities for every item (slice) of ``volume``; a 3-D model's one row.

        Args:
            volume: an image with the channels named in ``input_channels``.
            progress: told after each batch; cancellation raises ``engine.progress.Cancelled``.
            batch_size: items per forward pass.
        """
        logits, probabilities = predict_items(
            self.network, self.preprocess(volume), self.temperature, batch_size, progress
        )
        return BundlePrediction(
            probabilities=probabilities,
            class_names=self.class_names,
            item_axis=task_spec(self.task).item_axis,
            logits=logits,
            calibrated=self.calibrated,
        )

    def explain(
        self,
        volume: ImageVolume,
        method: str = "gradcam",
        classes: Sequence[int] | None = None,
        slices: Sequence[int] | None = None,
        progress: Progress | None = None,
        batch_size: int = 32,
        max_map_side: int | None = None,
        score: str | None = None,
    ) -> np.ndarray:
        """Raw, signed class-activation maps on the volume's own ``(H, W)`` grid.

        When the task feeds the network a window of each frame (``crop_box``), maps are computed
        on that window and pasted back: zero outside it and outside the window's mask. A 3-D
        model's one map is resampled onto the box of the volume it read (``volume_box``) and
        given one map per slice, zero outside the box.

        Args:
            volume: an image with the channels named in ``input_channels``.
            method: a name from ``engine.models.inference.method_names()`` ("gradcam", ...).
            classes: class indices to explain; None means every class.
            slices: item indices to explain (a 3-D model: slices of its map); None means every item.
            progress: told after each batch; cancellation raises ``engine.progress.Cancelled``.
            batch_size: items per capture.
            max_map_side: when given and smaller than the longer side of the frame, maps are
                made on a grid scaled down to that longer side (the viewer resizes them).
            score: what is explained, "logit" or "probability"; None is each method's own
                default (``engine.models.inference.SCORES``).

        Returns:
            float32 ``(K, N, H, W)`` for the ``K`` chosen classes and ``N`` chosen slices. Gradients
            of the logit by default; probabilities are of the uncalibrated softmax (temperature
            scales every class alike, so it changes a map's size, not where it points).

        Raises:
            ValueError: unknown method, class or slice index, or a bad ``max_map_side``.
        """
        check_methods([method])
        chosen_classes = self.class_indices(classes)
        inputs = self.preprocess(volume)
        count = volume.n_slices if self.whole_volume else inputs.shape[0]
        index = None if slices is None else [int(s) for s in slices]
        bad = [s for s in index or () if not 0 <= s < count]
        if bad:
            raise ValueError(f"slice indices {bad} out of range for {count} slices")
        if index is not None and not self.whole_volume:
            inputs = inputs[index]
        grid = self.map_grid(volume, max_map_side)
        maps = grid.place(explain_with(
            self.network, inputs, self.target_layer, method, chosen_classes, grid.window, batch_size, progress, score
        ))
        return maps[:, index] if index is not None and self.whole_volume else maps

    def class_indices(self, classes: Sequence[int] | None) -> list[int]:
        """``classes`` as checked indices of this model's classes; None means every class.

        Raises:
            ValueError: an index out of range.
        """
        chosen = list(range(len(self.class_names))) if classes is None else [int(c) for c in classes]
        for k in chosen:
            if not 0 <= k < len(self.class_names):
                raise ValueError(f"class index {k} out of range for {len(self.class_names)} classes")
        return chosen

    def map_grid(self, volume: ImageVolume, max_map_side: int | None = None) -> MapGrid | VolumeGrid:
        """Where this bundle's maps of ``volume`` are drawn: the frame grid (scaled so its longer side
        is at most ``max_map_side``) and the window of it the network sees (``crop_box``); for a
        3-D model, every slice of that grid and the box of the volume it reads (``volume_box``).

        Raises:
            ValueError: a bad ``max_map_side``.
        """
        if self.whole_volume:
            return volume_grid(self.volume_box(volume), max_map_side)
        return map_grid(volume.shape[1:], self.crop_box(volume), max_map_side)

    def volume_box(self, volume: ImageVolume) -> VolumeBox:
        """The box of ``volume`` a 3-D model's input is resampled from (the whole volume unless the
        task crops)."""
        box = task_spec(self.task).volume_box
        if box is None:
            return VolumeBox.whole(volume.shape)
        return box(volume, self.input_channels, **self._parameters())

    def crop_box(self, volume: ImageVolume) -> CropBox | None:
        """The window of each frame the network sees, when the task crops (None: the whole frame)."""
        crop = task_spec(self.task).crop_box
        return None if crop is None else crop(volume)


def _load_weights(bundle: Path, network: nn.Module, expected_sha256: str) -> None:
    path = bundle / WEIGHTS_FILE
    if not path.is_file():
        raise BundleError(bundle, f"{WEIGHTS_FILE} is missing")
    actual = file_sha256(path)
    if actual != expected_sha256:
        raise BundleError(
            bundle, f"{WEIGHTS_FILE} fails its checksum (sha256 {actual[:12]}..., metadata says {expected_sha256[:12]}...)"
        )
    fit_weights(network, read_safetensors(path, bundle), bundle)


def read_safetensors(path: Path, bundle: str | Path, relative: str = WEIGHTS_FILE) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, on the CPU (no pickle, no code).

    Raises:
        BundleError: the file is not readable safetensors (``bundle`` and ``relative`` name it).
    """
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise BundleError(bundle, f"{relative} is not a readable safetensors file ({exc})") from None


def fit_weights(network: nn.Module, state: dict[str, torch.Tensor], bundle: str | Path, relative: str = WEIGHTS_FILE) -> None:
    """Load ``state`` into ``network``, every tensor and no other.

    Raises:
        BundleError: names or shapes that do not fit (``relative`` names the weights file).
    """
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise BundleError(bundle, f"{relative} does not fit network_def ({first[:200]})") from None


def load_bundle(name_or_path: str | Path, device: str | torch.device | None = "cpu") -> Bundle:
    """Load a shipped bundle by name (``"glioma"``) or a bundle folder by path.

    The weights are read on the CPU (safetensors, no pickle) and checked there; the network is
    then moved to ``device``.

    Args:
        name_or_path: a name from ``list_bundles()`` or a path to a bundle folder.
        device: where the network runs: ``"cpu"`` (the default), ``"auto"`` (CUDA when torch sees
            it), ``"cuda"``, ``"cuda:N"`` or a ``torch.device`` (``engine.device.resolve_device``).

    Returns:
        The ``Bundle``, its network on ``device`` in eval mode with verified weights.

    Raises:
        BundleError: missing or malformed files, a disallowed ``_target_``, a checksum mismatch,
            weights that do not fit the network, or a target layer the network lacks.
        engine.device.DeviceError: a device this machine or this build of torch does not have.
    """
    from engine.device import resolve_device
    from engine.explain import resolve_layer

    target = resolve_device(device)

    path = resolve_bundle(name_or_path)
    metadata = read_metadata(path)
    check_preprocessing(metadata, path)
    inference = read_json(path, INFERENCE_FILE)
    if "network_def" not in inference:
        raise BundleError(path, f"{INFERENCE_FILE} lacks 'network_def'")
    network = build_network(inference["network_def"], str(path))
    _load_weights(path, network, metadata["weights_sha256"])
    try:
        resolve_layer(network, metadata["target_layer"])
    except KeyError as exc:
        raise BundleError(path, f"{METADATA_FILE} target_layer: {exc.args[0]}") from None
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    network = network.to(target)
    check_output_width(network, metadata, path)
    return Bundle(path=path, metadata=metadata, network=network.eval())


def check_preprocessing(metadata: dict[str, Any], bundle: Path) -> None:
    """Raise ``BundleError`` when the preprocessing names parameters its task does not know.

    Args:
        metadata: metadata that passed ``engine.models.metadata.check_metadata``.
        bundle: the bundle folder, for the message.
    """
    unknown = set(metadata["preprocessing"]) - set(task_spec(metadata["task"]).parameters) - {"function"}
    if unknown:
        raise BundleError(bundle, f"{METADATA_FILE} preprocessing has unknown parameters {sorted(unknown)}")


def check_output_width(network: nn.Module, metadata: dict[str, Any], path: Path) -> None:
    """Raise ``BundleError`` unless the network takes one input of the declared channels and size
    and gives one output per class name (a dry run on zeros).

    Args:
        network: the built network, in eval mode.
        metadata: checked metadata (``input_channels``, ``input_size``, ``class_names``).
        path: the bundle, for the message.
    """
    probe = torch.zeros((1, len(metadata["input_channels"])) + tuple(metadata["input_size"]),
                        device=network_device(network))
    with torch.inference_mode():
        try:
            out = network(probe)
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:  # shape errors come in all kinds
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BundleError(path, f"network does not accept its declared input "
                                    f"{[len(metadata['input_channels']), *metadata['input_size']]} ({first[:200]})") from None
    if not isinstance(out, torch.Tensor):
        raise BundleError(path, f"network gives a {type(out).__name__}, not one tensor of class scores")
    if out.ndim != 2 or out.shape[1] != len(metadata["class_names"]):
        raise BundleError(
            path, f"network gives {tuple(out.shape[1:])} outputs for {len(metadata['class_names'])} class names"
        )
