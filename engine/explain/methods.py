"""CAM methods: short pure functions of captured activations and gradients.

Every gradient method takes ``activations`` ``(B, C, *spatial)`` and ``gradients``
``(B, C, *spatial)`` for one target and returns a raw, signed map ``(B, *spatial)`` at the layer's
resolution. No ReLU and no min-max scaling are applied here: where a paper rectifies, ``rectify``
does it explicitly, so negative evidence stays available and maps stay comparable across images.
Reductions are over ``range(2, ndim)``, so every method works for 2-D, 3-D and 2-D+time.

``METHODS`` lists every method with what it needs; ``GRADIENT_METHODS`` is the subset with the
plain ``(activations, gradients) -> map`` signature.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.explain.cluster_filter import cf_cam
from engine.explain.principal import eigen_cam, eigen_grad_cam


def _spatial_dims(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(2, t.ndim))


def _weighted_sum(weights: torch.Tensor, activations: torch.Tensor) -> torch.Tensor:
    """``sum_c w_c A_c`` for per-channel weights ``(B, C)`` or per-element weights like A."""
    if weights.ndim == 2:
        weights = weights.reshape(tuple(weights.shape) + (1,) * (activations.ndim - 2))
    return (weights * activations).sum(dim=1)


def grad_cam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM before its ReLU: channel weights are spatially averaged gradients.

    Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
    Localization", ICCV 2017.
    """
    weights = gradients.mean(dim=_spatial_dims(gradients), keepdim=True)
    return (weights * activations).sum(dim=1)


def grad_cam_pp(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM++ before its ReLU: pixel-wise weighted positive gradients.

    Chattopadhay et al., "Grad-CAM++: Generalized Gradient-Based Visual Explanations for Deep
    Convolutional Networks", WACV 2018, eq. 19 with the exponential output ``Y = exp(S)``: for a
    score ``S`` piecewise linear in the activations, the second and third derivatives of ``Y`` are
    ``exp(S) g**2`` and ``exp(S) g**3`` with ``g = dS/dA``, so

        alpha_kij = g_kij**2 / (2 g_kij**2 + (sum_ab A_kab) g_kij**3)   (0 where the denominator is 0)
        w_k = sum_ij alpha_kij relu(g_kij)

    The positive factor ``exp(S)`` of ``relu(dY/dA)`` is one number per item and class; it is
    dropped, as in the paper's final weights, so maps of different classes stay on the scale of
    the gradients. (MONAI's ``GradCAMpp`` keeps it and sums ``A g**3`` pixel-wise instead of
    ``(sum A) g**3``; the two agree when gradients are spatially constant.)
    """
    dims = _spatial_dims(gradients)
    squared, cubed = gradients.pow(2), gradients.pow(3)
    activation_sums = activations.sum(dim=dims, keepdim=True)
    return _grad_cam_pp_from_moments(activations, gradients, squared, cubed, activation_sums)


def _grad_cam_pp_from_moments(
    activations: torch.Tensor,
    first: torch.Tensor,
    second: torch.Tensor,
    third: torch.Tensor,
    activation_sums: torch.Tensor,
) -> torch.Tensor:
    denominator = 2 * second + activation_sums * third
    safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
    alpha = torch.where(denominator != 0, second / safe, torch.zeros_like(second))
    weights = (alpha * torch.relu(first)).sum(dim=_spatial_dims(first))
    return _weighted_sum(weights, activations)


def smooth_grad_cam_pp(activations: torch.Tensor, noisy_gradients: torch.Tensor) -> torch.Tensor:
    """Smooth Grad-CAM++ before its ReLU: Grad-CAM++ with noise-averaged derivatives.

    Omeiza et al., "Smooth Grad-CAM++: An Enhanced Inference Level Visualization Technique for
    Deep Convolutional Neural Network Models", IntelliSys 2019: the first, second and third
    derivatives are averaged over ``N`` noisy copies of the input (SmoothGrad) before the
    Grad-CAM++ weights are formed; the weights multiply the clean input's activations.

    Args:
        activations: ``(B, C, *spatial)`` activations of the clean input.
        noisy_gradients: ``(N, B, C, *spatial)`` gradients for ``N`` noisy copies (one
            ``CamCapture.run(..., noise_samples=N)`` gives them for every class at once).

    Returns:
        ``(B, *spatial)`` raw signed map. With ``N = 1`` and no noise it equals ``grad_cam_pp``.
    """
    first = noisy_gradients.mean(dim=0)
    second = noisy_gradients.pow(2).mean(dim=0)
    third = noisy_gradients.pow(3).mean(dim=0)
    activation_sums = activations.sum(dim=_spatial_dims(activations), keepdim=True)
    return _grad_cam_pp_from_moments(activations, first, second, third, activation_sums)


def xgrad_cam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """XGrad-CAM: gradients averaged with the channel's normalised activation as weights.

    Fu et al., "Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of CNNs",
    BMVC 2020: ``w_k = sum_ij (A_kij / sum_ab A_kab) g_kij`` (0 for a channel that sums to 0).
    """
    dims = _spatial_dims(activations)
    sums = activations.sum(dim=dims, keepdim=True)
    safe = torch.where(sums != 0, sums, torch.ones_like(sums))
    share = torch.where(sums != 0, activations / safe, torch.zeros_like(activations))
    weights = (share * gradients).sum(dim=dims)
    return _weighted_sum(weights, activations)


def hires_cam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """HiResCAM: the element-wise product of gradients and activations, summed over channels.

    Draelos & Carin, "Use HiResCAM instead of Grad-CAM for faithful explanations of convolutional
    neural networks", arXiv:2011.08891, 2020. For a head that ends in global average pooling and
    one linear layer, the map sums (times the number of positions) to the class score.
    """
    return (gradients * activations).sum(dim=1)


def layer_cam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """LayerCAM: activations weighted element-wise by the positive gradients.

    Jiang et al., "LayerCAM: Exploring Hierarchical Class Activation Maps for Localization",
    IEEE TIP 30, 2021.
    """
    return (torch.relu(gradients) * activations).sum(dim=1)


def class_activation_map(activations: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """CAM: activations weighted by the final linear layer's row for the class.

    Zhou et al., "Learning Deep Features for Discriminative Localization", CVPR 2016. Defined
    for heads that are global average pooling followed by one linear layer; the map's mean then
    equals the class logit minus the bias. ``final_linear_weight`` finds the weights.

    Args:
        activations: ``(B, C, *spatial)``.
        class_weights: ``(C,)`` one class row of the linear weight, or ``(B, C)`` one per item.

    Returns:
        ``(B, *spatial)`` raw signed map.
    """
    if class_weights.ndim == 1:
        class_weights = class_weights.unsqueeze(0).expand(activations.shape[0], -1)
    return _weighted_sum(class_weights.to(activations.dtype), activations)


def final_linear_weight(model: torch.nn.Module, channels: int) -> torch.Tensor | None:
    """The weight ``(K, C)`` of the model's last ``nn.Linear`` if it takes ``channels`` inputs.

    Returns:
        The detached weight, or None when the last linear layer does not match ``channels`` (then
        the head is not "global pooling then linear" at this layer and CAM is undefined).
    """
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if not linears or linears[-1].in_features != channels:
        return None
    return linears[-1].weight.detach()


def rectify(cam: torch.Tensor) -> torch.Tensor:
    """The ReLU the Grad-CAM family applies: keep evidence for the target only."""
    return torch.clamp(cam, min=0)


def upsample(cam: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Resize ``(B, *spatial)`` maps to the input's spatial ``size`` (linear/bilinear/trilinear)."""
    if tuple(cam.shape[1:]) == tuple(size):
        return cam
    if len(size) not in (1, 2, 3):
        raise ValueError(f"cannot upsample a {len(size)}-D map; 1-D to 3-D only")
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(size)]
    return F.interpolate(cam.unsqueeze(1), size=size, mode=mode, align_corners=False).squeeze(1)


@dataclass(frozen=True)
class CamMethod:
    """One method and what it needs from a capture.

    Attributes:
        name: the name users pick in the CLI and the viewer.
        compute: the pure function.
        needs: ``"gradients"`` for ``(activations, gradients)``; ``"fc_weight"`` for
            ``(activations, class_weights)``; ``"noisy_gradients"`` for
            ``(activations, noisy_gradients)``, which needs ``run(..., noise_samples=N)``.
        class_specific: False when the map is the same for every class (Eigen-CAM).
        paper: short citation.
    """

    name: str
    compute: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    needs: str
    class_specific: bool
    paper: str


METHODS: dict[str, CamMethod] = {
    m.name: m
    for m in (
        CamMethod("cam", class_activation_map, "fc_weight", True, "Zhou et al. CVPR 2016"),
        CamMethod("gradcam", grad_cam, "gradients", True, "Selvaraju et al. ICCV 2017"),
        CamMethod("gradcampp", grad_cam_pp, "gradients", True, "Chattopadhay et al. WACV 2018"),
        CamMethod("smoothgradcampp", smooth_grad_cam_pp, "noisy_gradients", True, "Omeiza et al. 2019"),
        CamMethod("xgradcam", xgrad_cam, "gradients", True, "Fu et al. BMVC 2020"),
        CamMethod("hirescam", hires_cam, "gradients", True, "Draelos & Carin 2020"),
        CamMethod("layercam", layer_cam, "gradients", True, "Jiang et al. IEEE TIP 2021"),
        CamMethod("eigencam", eigen_cam, "gradients", False, "Muhammad & Yeasin IJCNN 2020"),
        CamMethod("eigengradcam", eigen_grad_cam, "gradients", True, "after Muhammad & Yeasin 2020"),
        CamMethod("cfcam", cf_cam, "gradients", True, "He, Pan & Yao arXiv:2504.00060, 2025"),
    )
}

#: Methods computed from one capture, by the name users pick in the CLI and the viewer.
GRADIENT_METHODS: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    name: method.compute for name, method in METHODS.items() if method.needs == "gradients"
}
