"""Which clinical tasks a bundle can declare, and how each turns an image into network inputs.

Tasks register themselves: each task package (``engine/tasks/<task>/``) exposes a ``TASK``
(a ``TaskSpec``) and names it under the ``salience.tasks`` entry-point group in
``pyproject.toml``. Generic code (bundles, analysis, the CAM engine, training) finds a task
through this registry by the name a bundle's ``metadata.json`` gives, and never imports a task
package by name. A site's own task installs the same way from its own package. A task's module is
imported when a bundle of that task is first used, so its dependencies cost the others nothing.

A ``TaskSpec`` carries the one preprocessing function that training, inference and the tests
share, what one item of the image's second axis is, and optional hooks:

* ``missing_channels(volume, input_channels) -> list[str]``: the channels the volume cannot give,
  when a task derives a channel (an RGB clip gives a grey channel as its luma);
* ``crop_box(volume) -> CropBox``: the window of each frame the network sees, when a task crops;
* ``volume_box(volume, input_channels, **parameters) -> VolumeBox``: the box of the volume a 3-D
  model sees (resampled to its input size), when a whole-volume task crops;
* ``prepare_tiles(rgb, input_size, **parameters)``: network inputs from ``(n, h, w, 3)`` uint8
  RGB tiles, for tasks whose models read whole slides tile by tile;
* ``train(argv) -> int``: the recipe that reproduces the task's shipped bundle;
* ``test_time_augmentations``: the transforms that keep an image's meaning, by name
  (``engine.analysis.test_time.AUGMENTATIONS``), for uncertainty by test-time augmentation.
* ``evaluation() -> engine.training.evaluate.TaskEvaluation``: how ``salience evaluate`` reads the
  task's held-back cases and writes its model card (or an ``OwnEvaluation`` whose ``main(argv)``
  runs the task's own evaluation, for tasks the generic binary one does not fit).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from engine.imaging.volume import ImageVolume
    from engine.models.crop_box import CropBox
    from engine.models.volume_box import VolumeBox

#: The entry-point group under which task packages register their ``TASK``.
ENTRY_POINT_GROUP = "salience.tasks"


@dataclass(frozen=True)
class TaskSpec:
    """How a task turns an ``ImageVolume`` into network inputs.

    Attributes:
        name: the task name (as in metadata.json and ``app.tasks``).
        prepare: ``f(volume, input_channels, input_size, **parameters) -> (N, C, h, w)`` tensor, one
            item per slice or frame; for a 3-D model (``input_size`` of three numbers) the one
            item ``(1, C, d, h, w)`` that is the whole volume.
        parameters: the names allowed in a bundle's ``preprocessing`` section.
        item_axis: what one item is: of the volume's second axis ("slice", "frame", "patch"), or
            "volume" for a task whose models read the whole volume at once.
        missing_channels: ``f(volume, input_channels) -> list[str]``, the input channels the volume
            cannot give; None: those not among its channel names.
        crop_box: ``f(volume) -> CropBox``, the window of each frame the network sees; None: the
            whole frame.
        volume_box: ``f(volume, input_channels, **parameters) -> VolumeBox``, the box of the
            volume a 3-D model's input is resampled from; None: the whole volume.
        prepare_tiles: ``f(rgb (n, h, w, 3) uint8, input_size, **parameters) -> (n, C, h, w)``
            for slide tiles; None: the task's models do not read slides.
        train: ``f(argv) -> exit status``, the recipe of the task's shipped bundle; None: none.
        test_time_augmentations: names from ``engine.analysis.test_time.AUGMENTATIONS`` that keep
            the meaning of this task's images; None: the generic default (a left-right flip and
            a small intensity jitter).
        evaluation: ``f() -> TaskEvaluation | OwnEvaluation`` (``engine.training.evaluate``),
            imported when first called; None: ``salience evaluate`` does not know the task.
    """

    name: str
    prepare: Callable[..., "torch.Tensor"]
    parameters: tuple[str, ...]
    item_axis: str
    missing_channels: Callable[["ImageVolume", Sequence[str]], list[str]] | None = None
    crop_box: Callable[["ImageVolume"], "CropBox"] | None = None
    volume_box: Callable[..., "VolumeBox"] | None = None
    prepare_tiles: Callable[..., "torch.Tensor"] | None = None
    train: Callable[[list[str]], int] | None = None
    test_time_augmentations: tuple[str, ...] | None = None
    evaluation: Callable[[], Any] | None = None


@lru_cache(maxsize=1)
def _registered() -> dict[str, Any]:
    return {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}


def task_names() -> list[str]:
    """Every task a bundle may declare, sorted (read from the registry, nothing imported)."""
    return sorted(_registered())


@lru_cache(maxsize=None)
def task_spec(task: str) -> TaskSpec:
    """The ``TaskSpec`` of a task, importing its package.

    Raises:
        KeyError: the task is not one of ``task_names()``.
        TypeError: the registered object is not a ``TaskSpec`` named ``task``.
    """
    points = _registered()
    if task not in points:
        raise KeyError(f"unknown task {task!r}; known: {task_names()}")
    spec = points[task].load()
    if not isinstance(spec, TaskSpec) or spec.name != task:
        raise TypeError(f"entry point {points[task].value} for task {task!r} is not a TaskSpec of that name")
    return spec
