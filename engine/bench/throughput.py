"""Cohort throughput: how many slices or frames a shipped model analyses and explains per second.

The issue's target: a cohort of 1,000 glioma slices (or lung-ultrasound frames) analysed with
three methods in under a minute on one GPU. ``cohort_throughput`` runs what ``analyse_case`` runs
per batch (``engine.models.inference.capture_pass``: one forward pass and one partial backward
for every class, every method's maps, the maps brought to the CPU and resized to the image grid
by ``on_grid``) over synthetic preprocessed items of the bundle's input size. Reading the files
and storing the maps are left out; ``salience analyse-cohort`` reports the whole run's
throughput on real cases.

The network is built from the bundle's files directly (network definition and safetensors
weights), without the task registry, so the check runs from a source tree with ``PYTHONPATH``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from engine.device import autocast, resolve_device, synchronize

#: The three methods of the target: one plain gradient method, one projection, one clustering.
COHORT_METHODS = ("gradcam", "eigencam", "cfcam")
#: The target: this many items ...
TARGET_ITEMS = 1000
#: ... in at most this many seconds.
TARGET_SECONDS = 60.0


@dataclass(frozen=True)
class Throughput:
    """One timed run over ``items`` synthetic items.

    Attributes:
        bundle: the shipped bundle whose network ran.
        items: items analysed (each with every class and method).
        input_shape: ``(C, h, w)`` of one item.
        methods: the CAM methods.
        device: where it ran.
        half: the autocast dtype name, or None for float32.
        batch_size: items per forward pass.
        seconds: wall time, device synchronised.
    """

    bundle: str
    items: int
    input_shape: tuple[int, ...]
    methods: tuple[str, ...]
    device: str
    half: str | None
    batch_size: int
    seconds: float

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else float("inf")

    @property
    def seconds_for_target(self) -> float:
        """The time ``TARGET_ITEMS`` items take at this rate."""
        return TARGET_ITEMS / self.items_per_second

    def line(self) -> str:
        met = "met" if self.seconds_for_target <= TARGET_SECONDS else "NOT met"
        shape = " x ".join(map(str, self.input_shape))
        return (
            f"cohort throughput: {self.items} {self.bundle} items ({shape}), {'+'.join(self.methods)} for every class, "
            f"batch {self.batch_size}, {self.device} {self.half or 'float32'}: {self.seconds:.2f} s = "
            f"{self.items_per_second:.1f} items/s; {TARGET_ITEMS:,} items in {self.seconds_for_target:.1f} s "
            f"(target under {TARGET_SECONDS:.0f} s: {met})"
        )


def bundle_network(name: str, device: torch.device) -> tuple[torch.nn.Module, dict]:
    """A shipped bundle's network with its weights, in eval mode on ``device``, and its metadata
    as written (not checked against the task registry)."""
    from safetensors.torch import load_file

    from engine.models.metadata import INFERENCE_FILE, METADATA_FILE, WEIGHTS_FILE, read_json, resolve_bundle
    from engine.models.network_config import build_network

    path = resolve_bundle(name)
    metadata = read_json(path, METADATA_FILE)
    network = build_network(read_json(path, INFERENCE_FILE)["network_def"], str(path))
    network.load_state_dict(load_file(str(path / WEIGHTS_FILE), device="cpu"), strict=True)
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network.eval().to(device), metadata


def cohort_throughput(
    device: str | torch.device = "auto",
    items: int = TARGET_ITEMS,
    *,
    bundle: str = "glioma",
    methods: Sequence[str] = COHORT_METHODS,
    batch_size: int = 32,
    half: str | None = None,
    seed: int = 0,
) -> Throughput:
    """Time the analysis of ``items`` synthetic items with ``methods`` on ``device`` (one warm-up
    batch first, not timed).

    Raises:
        engine.device.DeviceError, engine.device.PrecisionError: a device or precision this
            machine does not have.
        ValueError: fewer than one item, or an unknown method.
    """
    from engine.models.inference import batches, capture_pass, on_grid

    if items < 1:
        raise ValueError(f"items must be at least 1, got {items}")
    target = resolve_device(device)
    network, metadata = bundle_network(bundle, target)
    shape = (len(metadata["input_channels"]),) + tuple(metadata["input_size"])
    inputs = torch.randn((items,) + shape, generator=torch.Generator().manual_seed(seed))
    classes = range(len(metadata["class_names"]))

    def run(count: int) -> None:
        chunks = (inputs[c.start : c.stop] for c in batches(count, batch_size))
        with autocast(target, half):
            result = capture_pass(network, metadata["target_layer"], chunks, count, list(methods), classes)
        for maps in result.layer_maps.values():
            on_grid(maps, shape[1:])

    run(min(batch_size, items))  # warm-up: kernels chosen, memory pools grown
    synchronize(target)
    started = time.perf_counter()
    run(items)
    synchronize(target)
    return Throughput(bundle, items, shape, tuple(methods), str(target), half, batch_size, time.perf_counter() - started)
