"""A sensible default CAM layer for a network whose bundle names none.

Grad-CAM and its family look at the last layer that still has a spatial grid: after it the
network pools the grid away (global average pooling, flattening) and classifies. Which module that
is differs by architecture (``class_layers.relu`` in MONAI's DenseNet, ``layer4`` in its ResNet
and SENet, ``_bn1`` in its EfficientNet), so it is found by running the network once on zeros
with a forward hook on every named module and recording what each returns, in the order the
modules finish.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class LayerOutput:
    """What one module returned on the dry run.

    Attributes:
        name: its dotted path (``resolve_layer`` finds it).
        shape: its output's shape, ``(1, C, *spatial)`` for a feature map.
        calls: how many times it ran in the one forward pass (a module used twice, like
            EfficientNet's shared activation, cannot be captured).
    """

    name: str
    shape: tuple[int, ...]
    calls: int

    def is_feature_map(self, spatial_dims: int) -> bool:
        """``(1, C, *spatial)`` with the input's number of spatial axes and more than one position."""
        spatial = self.shape[2:]
        return len(self.shape) == 2 + spatial_dims and any(n > 1 for n in spatial)


def layer_outputs(network: nn.Module, input_shape: Sequence[int]) -> list[LayerOutput]:
    """Every named sub-module's output on one input of zeros, in the order the modules finished.

    Args:
        network: the network (put in eval mode for the run, its mode restored after).
        input_shape: ``(C, *spatial)`` of one input.

    Returns:
        One entry per module that returned a tensor (the last call's shape for modules run twice).
    """
    order: list[str] = []
    shapes: dict[str, tuple[int, ...]] = {}
    calls: Counter[str] = Counter()

    def hook(name: str):
        def record(_module, _inputs, output):
            if isinstance(output, torch.Tensor):
                calls[name] += 1
                shapes[name] = tuple(output.shape)
                if name in order:
                    order.remove(name)
                order.append(name)
        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in network.named_modules() if name]
    was_training = network.training
    try:
        with torch.inference_mode():
            network.eval()(torch.zeros((1,) + tuple(input_shape)))
    finally:
        for handle in handles:
            handle.remove()
        network.train(was_training)
    return [LayerOutput(name, shapes[name], calls[name]) for name in order]


def choose_target_layer(outputs: Sequence[LayerOutput], spatial_dims: int) -> str:
    """The last spatial layer before global pooling: of the modules that ran once, the last to
    finish whose output is a feature map with more than one position (``LayerOutput.is_feature_map``).

    A container finishes after its children, so when a block's output is the feature map the
    block itself is chosen (``layer4``, not ``layer4.1.relu``), as people name CAM layers.

    Args:
        outputs: ``layer_outputs``' record of one dry run.
        spatial_dims: the input's number of spatial axes (2 or 3).

    Raises:
        ValueError: no module returns a feature map (the network has no spatial layer).
    """
    candidates = [o.name for o in outputs if o.calls == 1 and o.is_feature_map(spatial_dims)]
    if not candidates:
        raise ValueError(f"no layer of the network returns a {spatial_dims}-D feature map larger than one position")
    return candidates[-1]


def find_target_layer(network: nn.Module, input_shape: Sequence[int]) -> str:
    """``choose_target_layer`` on a dry run of ``network`` on one input of ``input_shape`` ``(C, *spatial)``.

    Raises:
        ValueError: no module returns a feature map.
    """
    return choose_target_layer(layer_outputs(network, input_shape), len(input_shape) - 1)
