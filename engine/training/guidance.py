"""Map guidance: train a classifier to take its evidence from where the expert mask lies.

For a network whose head is global average pooling then one linear layer (every MONAI DenseNet,
ResNet and SEResNet), the log-odds of class ``p`` over class ``n`` is the spatial mean of an
evidence map ``e = (w_p - w_n) . A`` over the last feature map ``A`` (Zhou et al., "Learning Deep
Features for Discriminative Localization", CVPR 2016). ``GuidedObjective`` adds to the
cross-entropy the share of the positive evidence that lies outside the (slightly dilated) mask on
items of the positive class, the "right for the right reasons" idea of Ross, Hughes and
Doshi-Velez (IJCAI 2017) applied to the CAM itself. The network still sees only the image at run
time; the masks of the training patients only shape where it learns to look.

``centre_logits`` then makes each logit of a two-class head half the log-odds, so Grad-CAM of the
positive class is exactly the trained evidence map (scaled), not that map plus a part both classes
share.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from engine.explain import resolve_layer


def last_linear(network: nn.Module) -> nn.Linear:
    """The network's last ``nn.Linear`` (its classifier).

    Raises:
        ValueError: the network has no linear layer.
    """
    linears = [m for m in network.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(network).__name__} has no linear layer to read class evidence from")
    return linears[-1]


def evidence_map(activations: torch.Tensor, weight: torch.Tensor, positive: int, negative: int) -> torch.Tensor:
    """``(w_positive - w_negative) . A`` at each cell: ``(B, C, h, w)`` -> ``(B, h, w)``."""
    return torch.einsum("bchw,c->bhw", activations, weight[positive] - weight[negative])


def outside_share(evidence: torch.Tensor, masks: torch.Tensor, margin: int = 1) -> torch.Tensor:
    """Share of each map's positive evidence outside its mask, on the evidence's grid.

    Args:
        evidence: ``(B, h, w)`` signed maps.
        masks: ``(B, H, W)`` masks (0/1) on the input grid; a cell counts as inside when any of
            its pixels is, and the mask is widened by ``margin`` cells (a lesion's rim is not
            held against the map).
        margin: cells of dilation.

    Returns:
        ``(B,)`` in [0, 1]; 0 for a map with no positive evidence.
    """
    cells = F.adaptive_max_pool2d(masks[:, None].float(), evidence.shape[-2:])
    if margin > 0:
        cells = F.max_pool2d(cells, 2 * margin + 1, stride=1, padding=margin)
    positive = F.relu(evidence)
    outside = (positive * (1 - cells[:, 0])).flatten(1).sum(1)
    return outside / (positive.flatten(1).sum(1) + 1e-6)


@dataclass(frozen=True)
class GuidedObjective:
    """Cross-entropy plus ``weight`` x the mean ``outside_share`` of positive items' evidence.

    Called by the training loop as ``objective(network, batch, labels)``. The batch carries the
    mask as its channel(s) after ``image_channels``; the network sees the image channels only.

    Attributes:
        target_layer: the layer whose output is pooled into the classifier (``A`` above).
        image_channels: how many leading channels of a batch are the image.
        weight: the penalty's weight (0 is plain cross-entropy).
        positive: the class whose evidence is guided; the other class of the pair is ``negative``.
        negative: see ``positive``.
        class_weights: per-class weights of the cross-entropy, or None.
    """

    target_layer: str
    image_channels: int
    weight: float
    positive: int = 1
    negative: int = 0
    class_weights: torch.Tensor | None = None

    def __call__(self, network: nn.Module, batch: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        handle = resolve_layer(network, self.target_layer).register_forward_hook(lambda m, i, o: captured.append(o))
        try:
            logits = network(batch[:, : self.image_channels])
        finally:
            handle.remove()
        loss = F.cross_entropy(logits, labels, weight=self.class_weights)
        chosen = labels == self.positive
        if self.weight == 0 or not bool(chosen.any()):
            return loss
        evidence = evidence_map(captured[0][chosen], last_linear(network).weight, self.positive, self.negative)
        masks = batch[chosen, self.image_channels :].amax(dim=1)
        return loss + self.weight * outside_share(evidence, masks).mean()


@torch.no_grad()
def centre_logits(network: nn.Module) -> None:
    """Subtract the class mean from the last linear layer's weights and bias, in place.

    Every logit moves by the same amount for a given input, so the softmax (and any temperature
    fitted afterwards) is unchanged; for two classes each logit becomes half the log-odds.
    """
    linear = last_linear(network)
    linear.weight -= linear.weight.mean(dim=0, keepdim=True)
    if linear.bias is not None:
        linear.bias -= linear.bias.mean()
