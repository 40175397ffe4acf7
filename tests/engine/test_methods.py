"""The gradient family: each method against its paper's formula, written out by hand."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from monai.visualize import CAM

from engine.explain.capture import CamCapture
from engine.explain.methods import (
    GRADIENT_METHODS,
    METHODS,
    class_activation_map,
    final_linear_weight,
    grad_cam,
    grad_cam_pp,
    hires_cam,
    layer_cam,
    smooth_grad_cam_pp,
    upsample,
    xgrad_cam,
)
from engine.explain.principal import eigen_cam, eigen_grad_cam
from tests.engine.test_capture import HEAD, sample, tiny_densenet


def _pair(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Non-negative activations (post-ReLU) and signed gradients."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(shape, generator=generator), torch.randn(shape, generator=generator)


def _positions(shape: tuple[int, ...]):
    return itertools.product(*(range(n) for n in shape))


def _hand_grad_cam_pp(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Chattopadhay et al. eq. 19 with exp(S), element by element, in float64."""
    out = np.zeros((a.shape[0],) + a.shape[2:])
    for b, c in itertools.product(range(a.shape[0]), range(a.shape[1])):
        total = a[b, c].sum()
        weight = 0.0
        for p in _positions(a.shape[2:]):
            gij = g[(b, c) + p]
            denominator = 2 * gij**2 + total * gij**3
            alpha = gij**2 / denominator if denominator != 0 else 0.0
            weight += alpha * max(gij, 0.0)
        out[b] += weight * a[b, c]
    return out


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 2, 3, 3, 4)])
def test_grad_cam_pp_matches_the_paper_element_by_element(shape):
    a, g = _pair(shape)
    g[0, 0, 0, 0] = 0.0  # a zero gradient gives alpha = 0, not 0/0
    expected = _hand_grad_cam_pp(a.double().numpy(), g.double().numpy())
    np.testing.assert_allclose(grad_cam_pp(a, g).numpy(), expected, rtol=1e-4, atol=1e-6)


def test_grad_cam_pp_on_a_pooling_linear_head_has_the_closed_form():
    """With GAP then linear, g = w/Z everywhere, so w_pp = relu(w) / (2 + w mean(A)) per channel."""
    model = tiny_densenet()
    with CamCapture(model, [HEAD]) as cam:
        capture = cam.run(sample((2, 1, 32, 32)), classes=[0, 1, 2])
    a = capture.activations[HEAD]
    weight = model.class_layers.out.weight.detach()
    for k in range(3):
        w = weight[k].reshape(1, -1)
        closed = torch.relu(w) / (2 + w * a.mean(dim=(2, 3)))
        expected = (closed[:, :, None, None] * a).sum(dim=1)
        torch.testing.assert_close(grad_cam_pp(a, capture.gradients[HEAD][k]), expected, rtol=1e-4, atol=1e-6)


def test_smooth_grad_cam_pp_averages_the_derivatives():
    a, g = _pair((2, 3, 4, 4), seed=1)
    torch.testing.assert_close(smooth_grad_cam_pp(a, g.unsqueeze(0)), grad_cam_pp(a, g))
    torch.testing.assert_close(smooth_grad_cam_pp(a, g.expand(5, -1, -1, -1, -1)), grad_cam_pp(a, g))
    noisy = torch.stack([g, 3 * g])  # moments 2g, 5g^2, 14g^3
    first, second, third = 2 * g, 5 * g**2, 14 * g**3
    alpha = second / (2 * second + a.sum(dim=(2, 3), keepdim=True) * third)
    weights = (alpha * torch.relu(first)).sum(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(smooth_grad_cam_pp(a, noisy), (weights * a).sum(dim=1))


def test_xgrad_cam_layer_cam_and_hires_cam_by_hand():
    a, g = _pair((2, 3, 4, 5), seed=2)
    a[1, 2] = 0.0  # a silent channel gets weight 0 in XGrad-CAM
    x_expected = torch.zeros(2, 4, 5)
    l_expected = torch.zeros(2, 4, 5)
    h_expected = torch.zeros(2, 4, 5)
    for b, c in itertools.product(range(2), range(3)):
        total = a[b, c].sum()
        weight = (a[b, c] / total * g[b, c]).sum() if total != 0 else 0.0
        x_expected[b] += weight * a[b, c]
        l_expected[b] += torch.clamp(g[b, c], min=0) * a[b, c]
        h_expected[b] += g[b, c] * a[b, c]
    torch.testing.assert_close(xgrad_cam(a, g), x_expected)
    torch.testing.assert_close(layer_cam(a, g), l_expected)
    torch.testing.assert_close(hires_cam(a, g), h_expected)


def test_cam_and_hires_cam_add_up_to_the_logit_on_a_pooling_linear_head():
    """Zhou et al.: mean of CAM = logit - bias; HiResCAM sums to the same for GAP + linear."""
    model = tiny_densenet(spatial_dims=3)
    x = sample((2, 1, 16, 16, 16))
    with CamCapture(model, [HEAD]) as cam:
        capture = cam.run(x, classes=[0, 1, 2])
    a = capture.activations[HEAD]
    weight = final_linear_weight(model, a.shape[1])
    bias = model.class_layers.out.bias.detach()
    torch.testing.assert_close(weight, model.class_layers.out.weight.detach())
    for k in range(3):
        logit_minus_bias = capture.logits[:, k] - bias[k]
        torch.testing.assert_close(class_activation_map(a, weight[k]).mean(dim=(1, 2, 3)), logit_minus_bias)
        torch.testing.assert_close(hires_cam(a, capture.gradients[HEAD][k]).sum(dim=(1, 2, 3)), logit_minus_bias)


def test_cam_matches_monai_cam_up_to_the_bias():
    model = tiny_densenet()
    x = sample((2, 1, 32, 32))
    with CamCapture(model, [HEAD]) as cam:
        capture = cam.run(x, classes=[1])
    weight = final_linear_weight(model, 6)
    reference = CAM(copy.deepcopy(model), target_layers=HEAD, fc_layers="class_layers.out")
    expected = reference.compute_map(x, class_idx=torch.tensor([1, 1]))[:, 0].detach()
    ours = class_activation_map(capture.activations[HEAD], weight[1]) + model.class_layers.out.bias[1].detach()
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
    assert final_linear_weight(model, 7) is None


def _pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([x.flatten(), y.flatten()]))[0, 1])


@pytest.mark.parametrize("shape", [(1, 64, 3, 4), (1, 4, 6, 7), (1, 8, 3, 3, 3), (1, 3, 4, 5, 6)])
def test_eigen_cam_is_the_first_component_with_a_fixed_sign(shape):
    for seed in range(8):
        a, g = _pair(shape, seed)
        a = a * torch.linspace(0.2, 2.0, a[0, 0].numel()).reshape(a.shape[2:])  # a spatial pattern
        matrix = a[0].flatten(1).T.double()
        _, singular, right = torch.linalg.svd(matrix, full_matrices=False)
        reference = (matrix @ right[0]).float()
        ours = eigen_cam(a, g)
        assert ours.shape == (1,) + shape[2:]
        torch.testing.assert_close(ours.flatten().abs(), reference.abs(), rtol=1e-4, atol=1e-5)
        assert _pearson(ours, a.mean(dim=1)) > 0
        grad_version = eigen_grad_cam(a, g)
        assert _pearson(grad_version, hires_cam(a, g)) > 0


def test_eigen_cam_of_a_rank_one_layer_is_its_spatial_pattern():
    pattern = torch.tensor([[0.0, 1.0, 2.0], [3.0, 0.5, 0.0]])
    loadings = torch.tensor([0.5, 2.0, 1.0, 0.1])
    a = loadings[None, :, None, None] * pattern[None, None]
    torch.testing.assert_close(eigen_cam(a)[0], loadings.norm() * pattern, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(eigen_cam(-a)[0], -loadings.norm() * pattern, rtol=1e-5, atol=1e-6)


def test_registry_lists_every_method_with_its_inputs():
    assert set(METHODS) == {
        "cam", "gradcam", "gradcampp", "smoothgradcampp", "xgradcam", "hirescam", "layercam",
        "eigencam", "eigengradcam", "cfcam",
    }
    assert set(GRADIENT_METHODS) == set(METHODS) - {"cam", "smoothgradcampp"}
    assert METHODS["cam"].needs == "fc_weight" and METHODS["smoothgradcampp"].needs == "noisy_gradients"
    assert not METHODS["eigencam"].class_specific
    a, g = _pair((1, 3, 4, 4))
    assert GRADIENT_METHODS["gradcam"](a, g).shape == (1, 4, 4)
    assert all(m.paper for m in METHODS.values())


@pytest.mark.parametrize("size", [(9,), (8, 6), (5, 6, 7)])
def test_upsample_keeps_constants_and_reaches_the_size(size):
    maps = torch.full((2,) + tuple(max(1, s // 3) for s in size), 2.5)
    out = upsample(maps, size)
    assert out.shape == (2,) + size
    torch.testing.assert_close(out, torch.full_like(out, 2.5))
    with pytest.raises(ValueError, match="4-D"):
        upsample(torch.zeros(1, 2, 2, 2, 2), (4, 4, 4, 4))
    assert grad_cam(*_pair((1, 2, 3))).shape == (1, 3)
