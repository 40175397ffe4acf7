"""``CamCapture``: one forward pass, gradients back to the hooked activations only.

Why this is cheaper than the usual ``loss.backward()``: parameters are frozen for the duration
of the capture and the input does not require grad, so no autograd graph is built for the trunk
of the network. At the earliest hooked layer the activation is detached and made a leaf that
requires grad; the graph therefore spans only the head (target layer to logits), and
``torch.autograd.grad`` walks only that. Parameter ``.grad`` is never filled.

Hooks are removed, ``requires_grad`` flags and the training flag restored, whatever happens;
exceptions propagate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The sub-module at a dotted path (``"features.denseblock2"``), as MONAI names layers.

    Raises:
        KeyError: naming the path and the closest existing children.
    """
    module = model
    for part in name.split("."):
        children = dict(module.named_children())
        if part not in children:
            raise KeyError(f"layer {name!r}: no {part!r} under {type(module).__name__}; has {sorted(children)}")
        module = children[part]
    return module


@dataclass
class Capture:
    """What one capture recorded.

    Attributes:
        logits: ``(B, K)`` model output, detached.
        activations: per target layer, ``(B, C, *spatial)`` detached activations.
        gradients: per target layer, ``(T, B, C, *spatial)``: gradient of each of the ``T``
            target scores with respect to the activation (T = number of classes asked for).
        classes: the ``T`` class indices the gradients belong to.
        input_shape: spatial shape of the input, for upsampling maps.
    """

    logits: torch.Tensor
    activations: dict[str, torch.Tensor]
    gradients: dict[str, torch.Tensor] = field(default_factory=dict)
    classes: tuple[int, ...] = ()
    input_shape: tuple[int, ...] = ()


class CamCapture:
    """Context manager that hooks ``target_layers`` of ``model`` for one or more captures.

    Usage::

        with CamCapture(model, ["class_layers.relu"]) as cam:
            capture = cam.run(x, classes=[0, 1])
        maps = grad_cam(capture.activations["class_layers.relu"], capture.gradients[...][0])

    Args:
        model: any ``nn.Module`` classifier returning ``(B, K)`` logits.
        target_layers: dotted paths of the layers whose outputs are explained.
    """

    def __init__(self, model: nn.Module, target_layers: Sequence[str]):
        if not target_layers:
            raise ValueError("CamCapture needs at least one target layer")
        self.model = model
        self.target_layers = tuple(target_layers)
        self._modules = [resolve_layer(model, name) for name in self.target_layers]
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._saved: dict[str, torch.Tensor] = {}
        self._grad_flags: list[tuple[nn.Parameter, bool]] = []
        self._was_training = model.training
        self._active = False

    def __enter__(self) -> "CamCapture":
        self._was_training = self.model.training
        self._grad_flags = [(p, p.requires_grad) for p in self.model.parameters()]
        try:
            for parameter, _ in self._grad_flags:
                parameter.requires_grad_(False)
            self.model.eval()
            for name, module in zip(self.target_layers, self._modules):
                self._handles.append(module.register_forward_hook(self._hook(name)))
            self._active = True
        except BaseException:
            self._restore()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._restore()

    def _restore(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        for parameter, flag in self._grad_flags:
            parameter.requires_grad_(flag)
        self._grad_flags.clear()
        self.model.train(self._was_training)
        self._saved.clear()
        self._active = False

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs, output):
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"layer {name!r} returns {type(output).__name__}, not a tensor")
            if output.requires_grad:
                activation = output  # downstream of an earlier hooked layer: already in the graph
            else:
                activation = output.detach().requires_grad_(True)  # the graph starts here
            self._saved[name] = activation
            # Downstream in-place ops (ReLU(inplace=True)) must not touch the saved activation.
            return activation.clone()

        return hook

    def run(self, x: torch.Tensor, classes: Sequence[int] | None = None) -> Capture:
        """One forward pass and gradients of the chosen class logits back to the targets.

        Args:
            x: input batch ``(B, C_in, *spatial)``.
            classes: class indices to take gradients for; None means every class. The gradient
                for class ``k`` is of ``sum_b logits[b, k]`` (batch items are independent).

        Returns:
            A ``Capture`` with detached logits, activations and per-class gradients.
        """
        if not self._active:
            raise RuntimeError("use CamCapture as a context manager: `with CamCapture(...) as cam:`")
        self._saved.clear()
        with torch.enable_grad():
            logits = self.model(x)
            if logits.ndim != 2:
                raise ValueError(f"model output must be (batch, classes), got {tuple(logits.shape)}")
            missing = [n for n in self.target_layers if n not in self._saved]
            if missing:
                raise RuntimeError(f"target layers {missing} were not reached in the forward pass")
            activations = [self._saved[n] for n in self.target_layers]
            chosen = tuple(range(logits.shape[1])) if classes is None else tuple(int(c) for c in classes)
            gradients = self._gradients(logits, activations, chosen)
        self._saved.clear()
        return Capture(
            logits=logits.detach(),
            activations={n: a.detach() for n, a in zip(self.target_layers, activations)},
            gradients={n: g for n, g in zip(self.target_layers, gradients)},
            classes=chosen,
            input_shape=tuple(x.shape[2:]),
        )

    @staticmethod
    def _gradients(
        logits: torch.Tensor, activations: list[torch.Tensor], classes: tuple[int, ...]
    ) -> list[torch.Tensor]:
        """Per-class gradients in one batched backward (vmap over one-hot output gradients)."""
        if not classes:
            return [a.new_zeros((0,) + tuple(a.shape)) for a in activations]
        selector = torch.zeros((len(classes),) + tuple(logits.shape), dtype=logits.dtype, device=logits.device)
        for t, k in enumerate(classes):
            selector[t, :, k] = 1.0
        grads = torch.autograd.grad(
            logits, activations, grad_outputs=selector, is_grads_batched=True, allow_unused=True
        )
        return [
            torch.zeros((len(classes),) + tuple(a.shape), dtype=a.dtype) if g is None else g.detach()
            for g, a in zip(grads, activations)
        ]
