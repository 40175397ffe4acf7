"""``CamCapture``: one forward pass, gradients back to the hooked activations only.

Why this is cheaper than the usual ``loss.backward()``: parameters are frozen for the duration
of the capture and the input does not require grad, so no autograd graph is built for the trunk
of the network. At the earliest hooked layer the activation is detached and made a leaf that
requires grad; the graph therefore spans only the head (target layer to logits), and
``torch.autograd.grad`` walks only that. Parameter ``.grad`` is never filled. Later target layers
downstream of the earliest one stay in the graph, so several layers are captured in one pass.

The gradients of all ``T`` target scores come from one batched backward
(``is_grads_batched=True``, a vmap over one-hot output gradients). Should a layer in the head
have no batching rule, the capture falls back to one backward per score over the same graph and
records it in ``Capture.batched_backward``.

Hooks are removed, ``requires_grad`` flags and the training flag restored, whatever happens;
exceptions propagate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from engine.errors import SalienceError
from engine.explain.targets import ClassLogits, Target


class LayerNotFoundError(SalienceError, KeyError):
    """A target layer path does not name a sub-module of the model."""

    def __str__(self) -> str:
        return str(self.args[0])


def resolve_layer(model: nn.Module, name: str) -> nn.Module:
    """The sub-module at a dotted path (``"features.denseblock2"``), as MONAI names layers.

    Raises:
        LayerNotFoundError: (a ``KeyError``) naming the path and the existing children there.
    """
    module = model
    for part in name.split("."):
        children = dict(module.named_children())
        if part not in children:
            raise LayerNotFoundError(
                f"layer {name!r}: no {part!r} under {type(module).__name__}; has {sorted(children)}"
            )
        module = children[part]
    return module


@dataclass
class Capture:
    """What one capture recorded.

    Attributes:
        logits: ``(B, K)`` model output for the clean input, detached.
        activations: per target layer, ``(B, C, *spatial)`` detached activations.
        gradients: per target layer, ``(T, B, C, *spatial)``: gradient of each of the ``T``
            target scores with respect to the activation.
        classes: the class behind each of the ``T`` score rows (None where a row mixes classes).
        input_shape: spatial shape of the input, for upsampling maps.
        scores: ``(T, B)`` or ``(T,)`` target scores for the clean input, detached.
        target: the target's label.
        noisy_gradients: per target layer, ``(T, N, B, C, *spatial)`` gradients for ``N`` noisy
            copies of the input (empty unless ``run`` was asked for noise samples).
        batched_backward: False when the capture fell back to one backward per score.
    """

    logits: torch.Tensor
    activations: dict[str, torch.Tensor]
    gradients: dict[str, torch.Tensor] = field(default_factory=dict)
    classes: tuple[int | None, ...] = ()
    input_shape: tuple[int, ...] = ()
    scores: torch.Tensor | None = None
    target: str = ""
    noisy_gradients: dict[str, torch.Tensor] = field(default_factory=dict)
    batched_backward: bool = True


def noisy_copies(x: torch.Tensor, samples: int, noise_level: float, seed: int = 0) -> torch.Tensor:
    """``samples`` copies of ``x`` with Gaussian noise, stacked as ``(samples * B, ...)``.

    The noise standard deviation is ``noise_level`` times each item's value range, as in
    SmoothGrad (Smilkov et al., "SmoothGrad: removing noise by adding noise", 2017).
    """
    generator = torch.Generator(device=x.device).manual_seed(seed)
    reduce = tuple(range(1, x.ndim))
    spread = (x.amax(dim=reduce, keepdim=True) - x.amin(dim=reduce, keepdim=True)) * noise_level
    noise = torch.randn((samples,) + tuple(x.shape), generator=generator, dtype=x.dtype, device=x.device)
    return (x.unsqueeze(0) + noise * spread.unsqueeze(0)).reshape((samples * x.shape[0],) + tuple(x.shape[1:]))


class CamCapture:
    """Context manager that hooks ``target_layers`` of ``model`` for one or more captures.

    Usage::

        with CamCapture(model, ["class_layers.relu"]) as cam:
            capture = cam.run(x, classes=[0, 1])
        maps = grad_cam(capture.activations["class_layers.relu"], capture.gradients[...][0])

    Args:
        model: any ``nn.Module`` classifier returning ``(B, K)`` logits.
        target_layers: dotted paths of the layers whose outputs are explained.
        batched: take all scores' gradients in one vmapped backward (True) or one backward per
            score (False; the fallback, exposed for checking one against the other).

    Raises:
        LayerNotFoundError: a layer path names no sub-module (nothing about the model changes).
    """

    def __init__(self, model: nn.Module, target_layers: Sequence[str], batched: bool = True):
        if isinstance(target_layers, str):
            target_layers = [target_layers]
        if not target_layers:
            raise ValueError("CamCapture needs at least one target layer")
        self.model = model
        self.target_layers = tuple(target_layers)
        self.batched = batched
        self._modules = [resolve_layer(model, name) for name in self.target_layers]
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._saved: dict[str, torch.Tensor] = {}
        self._frozen: list[nn.Parameter] = []
        self._were_training: list[nn.Module] = []
        self._active = False

    def __enter__(self) -> "CamCapture":
        if self._active:
            raise RuntimeError("this CamCapture is already in use; create another one")
        # Only what changes is recorded, so exactly that is put back (a frozen BatchNorm in a
        # model left in training mode stays frozen).
        self._frozen = [p for p in self.model.parameters() if p.requires_grad]
        self._were_training = [m for m in self.model.modules() if m.training]
        try:
            for parameter in self._frozen:
                parameter.requires_grad_(False)
            for module in self._were_training:
                module.training = False
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
        for parameter in self._frozen:
            parameter.requires_grad_(True)
        self._frozen.clear()
        for module in self._were_training:
            module.training = True
        self._were_training.clear()
        self._saved.clear()
        self._active = False

    def _hook(self, name: str):
        def hook(module: nn.Module, inputs, output):
            if not isinstance(output, torch.Tensor):
                raise TypeError(f"layer {name!r} returns {type(output).__name__}, not a tensor")
            if name in self._saved:
                raise RuntimeError(f"layer {name!r} ran twice in one forward pass; hook a layer that runs once")
            if output.requires_grad:
                activation = output  # downstream of an earlier hooked layer: already in the graph
            else:
                activation = output.detach().requires_grad_(True)  # the graph starts here
            self._saved[name] = activation
            # Downstream in-place ops (ReLU(inplace=True)) must not touch the saved activation.
            return activation.clone()

        return hook

    def run(
        self,
        x: torch.Tensor,
        classes: Sequence[int] | None = None,
        *,
        target: Target | None = None,
        noise_samples: int = 0,
        noise_level: float = 0.15,
        seed: int = 0,
    ) -> Capture:
        """One forward pass and the gradients of every target score back to the target layers.

        Args:
            x: input batch ``(B, C_in, *spatial)``.
            classes: class logits to take gradients for; None (and no ``target``) means every
                class. Row ``t`` is the gradient of ``sum_b logits[b, classes[t]]``.
            target: instead of ``classes``, a callable from logits ``(B, K)`` to scores ``(T, B)``
                or ``(T,)`` (see ``engine.explain.targets``).
            noise_samples: if > 0, that many noisy copies of ``x`` ride in the same batch (one
                forward, one backward) and their gradients land in ``Capture.noisy_gradients``.
            noise_level: noise standard deviation as a fraction of each item's value range.
            seed: seed of the noise generator.

        Returns:
            A ``Capture`` with detached logits, activations, scores and gradients.
        """
        if not self._active:
            raise RuntimeError("use CamCapture as a context manager: `with CamCapture(...) as cam:`")
        if classes is not None and target is not None:
            raise ValueError("give either classes or a target, not both")
        x = x.detach()
        if x.is_inference():
            x = x.clone()
        batch = x if noise_samples <= 0 else torch.cat([x, noisy_copies(x, noise_samples, noise_level, seed)])
        groups = 1 + max(noise_samples, 0)
        self._saved.clear()
        try:
            with torch.inference_mode(False), torch.enable_grad():
                logits = self.model(batch)
                if logits.ndim != 2:
                    raise ValueError(f"model output must be (batch, classes), got {tuple(logits.shape)}")
                missing = [n for n in self.target_layers if n not in self._saved]
                if missing:
                    raise RuntimeError(f"target layers {missing} were not reached in the forward pass")
                activations = [self._saved[n] for n in self.target_layers]
                if target is None:
                    target = ClassLogits(range(logits.shape[1]) if classes is None else classes)
                # Groups (clean input, then each noisy copy) are disjoint batch items, so the
                # gradient of the summed group scores gives each group its own gradients.
                group_logits = logits.reshape((groups, x.shape[0]) + tuple(logits.shape[1:]))
                group_scores = [target(group_logits[g]) for g in range(groups)]
                scores = torch.stack(group_scores).sum(dim=0) if groups > 1 else group_scores[0]
                gradients, batched = self._gradients(scores, activations)
        finally:
            self._saved.clear()
        n_items = x.shape[0]
        clean = {n: g[:, :n_items] for n, g in zip(self.target_layers, gradients)}
        noisy = {}
        if groups > 1:
            for n, g in zip(self.target_layers, gradients):
                noisy[n] = g[:, n_items:].reshape((g.shape[0], groups - 1, n_items) + tuple(g.shape[2:]))
        rows = scores.shape[0]
        row_classes = tuple(getattr(target, "classes", (None,) * rows))
        return Capture(
            logits=logits[:n_items].detach(),
            activations={n: a[:n_items].detach() for n, a in zip(self.target_layers, activations)},
            gradients=clean,
            classes=row_classes,
            input_shape=tuple(x.shape[2:]),
            scores=group_scores[0].detach(),
            target=getattr(target, "label", type(target).__name__),
            noisy_gradients=noisy,
            batched_backward=batched,
        )

    def _gradients(
        self, scores: torch.Tensor, activations: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor], bool]:
        """Gradients ``(T, *activation.shape)`` of each score row, in one backward if possible."""
        rows = scores.shape[0]
        if rows == 0:
            return [a.new_zeros((0,) + tuple(a.shape)) for a in activations], True
        grads = None
        batched = self.batched and rows > 1
        if batched:
            # Row t of the selector is one-hot on score row t (broadcast over the batch axis).
            eye = torch.eye(rows, dtype=scores.dtype, device=scores.device)
            selector = eye.reshape((rows, rows) + (1,) * (scores.ndim - 1)).expand((rows,) + tuple(scores.shape))
            try:
                grads = torch.autograd.grad(
                    scores, activations, grad_outputs=selector, is_grads_batched=True,
                    allow_unused=True, retain_graph=True,
                )
            except RuntimeError:
                batched = False  # a head layer without a vmap rule: one backward per row instead
        if grads is None:
            per_row = [
                torch.autograd.grad(scores[t].sum(), activations, allow_unused=True, retain_graph=t < rows - 1)
                for t in range(rows)
            ]
            grads = [
                None if per_row[0][i] is None else torch.stack([row[i] for row in per_row])
                for i in range(len(activations))
            ]
        return [
            a.new_zeros((rows,) + tuple(a.shape)) if g is None else g.detach()
            for g, a in zip(grads, activations)
        ], batched or rows == 1
