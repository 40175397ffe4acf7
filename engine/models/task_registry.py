"""Which clinical tasks a bundle can declare, and how each turns an image into network inputs.

A bundle's ``metadata.json`` names its ``task``; the task's module (below) owns the one
preprocessing function that training, inference and the tests share, and says what one item of
the image's second axis is. Modules are imported when a bundle of that task is first used, so a
task's dependencies cost nothing to the others.

Each task module defines:

* ``PARAMETERS``: the names allowed in a bundle's ``preprocessing`` section (numbers);
* ``ITEM_AXIS``: what one item is (``"slice"``, ``"frame"``, ``"patch"``);
* ``prepare(volume, input_channels, input_size, **parameters) -> torch.Tensor``: the network
  input ``(N, C, h, w)`` for every item of an ``ImageVolume``;

and it may define (see ``engine.models.lung_ultrasound_preprocess``):

* ``missing_channels(volume, input_channels) -> list[str]``: the channels the volume cannot give,
  when a task derives a channel (an RGB clip gives a grey channel as its luma);
* ``crop_box(volume) -> CropBox``: the window of each frame the network sees, when a task crops.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from engine.imaging.volume import ImageVolume
from engine.models.crop_box import CropBox

#: Task name (as in metadata.json and ``app.tasks``) -> the module that prepares its inputs.
TASK_MODULES: dict[str, str] = {
    "glioma": "engine.models.glioma_preprocess",
    "lung-ultrasound": "engine.models.lung_ultrasound_preprocess",
    "histopathology": "engine.models.histopathology_preprocess",
}


@dataclass(frozen=True)
class TaskSpec:
    """How a task turns an ``ImageVolume`` into network inputs.

    Attributes:
        name: the task name.
        prepare: ``f(volume, input_channels, input_size, **parameters) -> (N, C, h, w)`` tensor.
        parameters: the names allowed in a bundle's ``preprocessing`` section.
        item_axis: what one item of the volume's second axis is ("slice", "frame", "patch").
        missing_channels: ``f(volume, input_channels) -> list[str]``, the input channels the volume
            cannot give; None: those not among its channel names.
        crop_box: ``f(volume) -> CropBox``, the window of each frame the network sees; None: the
            whole frame.
    """

    name: str
    prepare: Callable[..., torch.Tensor]
    parameters: tuple[str, ...]
    item_axis: str
    missing_channels: Callable[[ImageVolume, Sequence[str]], list[str]] | None = None
    crop_box: Callable[[ImageVolume], CropBox] | None = None


def task_names() -> list[str]:
    """Every task a bundle may declare, sorted."""
    return sorted(TASK_MODULES)


def task_spec(task: str) -> TaskSpec:
    """The ``TaskSpec`` of a task, importing its module.

    Raises:
        KeyError: the task is not one of ``task_names()``.
    """
    if task not in TASK_MODULES:
        raise KeyError(f"unknown task {task!r}; known: {task_names()}")
    module = importlib.import_module(TASK_MODULES[task])
    return TaskSpec(
        task,
        module.prepare,
        tuple(module.PARAMETERS),
        module.ITEM_AXIS,
        missing_channels=getattr(module, "missing_channels", None),
        crop_box=getattr(module, "crop_box", None),
    )
