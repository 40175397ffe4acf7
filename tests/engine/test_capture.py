"""CamCapture: one forward pass, a backward through the head only, nothing left behind."""

from __future__ import annotations

import copy

import pytest
import torch
from monai.networks.nets import DenseNet
from monai.visualize import GradCAM
from torch import nn

from engine.errors import SalienceError
from engine.explain.capture import CamCapture, LayerNotFoundError, noisy_copies
from engine.explain.methods import grad_cam, rectify
from engine.explain.targets import ClassLogit

HEAD = "class_layers.relu"


def tiny_densenet(spatial_dims: int = 2, in_channels: int = 1, classes: int = 3, seed: int = 0) -> nn.Module:
    """A MONAI DenseNet small enough for fast tests, with fixed random weights."""
    torch.manual_seed(seed)
    return DenseNet(
        spatial_dims=spatial_dims, in_channels=in_channels, out_channels=classes,
        init_features=2, growth_rate=2, block_config=(2,),
    ).eval()


def sample(shape: tuple[int, ...], seed: int = 1) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


class Exploding(nn.Module):
    """Raises from inside the forward pass when armed."""

    def __init__(self):
        super().__init__()
        self.armed = False

    def forward(self, x):
        if self.armed:
            raise RuntimeError("boom in forward")
        return x


def test_exception_in_forward_releases_hooks_and_restores_flags():
    """An error inside the forward pass propagates; hooks go, requires_grad and training return."""
    model = tiny_densenet()
    model.features.add_module("exploding", Exploding())
    model.train()
    frozen = model.features.conv0.weight
    frozen.requires_grad_(False)  # a mixed state must come back exactly as it was
    before = {name: p.requires_grad for name, p in model.named_parameters()}
    model.features.exploding.armed = True
    with pytest.raises(RuntimeError, match="boom in forward"):
        with CamCapture(model, [HEAD, "features.denseblock1"]) as cam:
            assert hook_count(model) == 2
            cam.run(sample((1, 1, 32, 32)))
    assert hook_count(model) == 0
    assert {name: p.requires_grad for name, p in model.named_parameters()} == before
    assert before["features.conv0.weight"] is False and before["class_layers.out.weight"] is True
    assert model.training and all(m.training for m in model.modules())


def test_modes_come_back_module_by_module():
    """A model left training with one BatchNorm frozen in eval gets exactly that back."""
    model = tiny_densenet()
    model.train()
    model.features.norm0.eval()
    with CamCapture(model, [HEAD]) as cam:
        assert not any(m.training for m in model.modules())
        cam.run(sample((1, 1, 32, 32)), classes=[0])
    assert not model.features.norm0.training
    assert all(m.training for name, m in model.named_modules() if name != "features.norm0")


def test_bad_layer_name_changes_nothing():
    model = tiny_densenet()
    model.train()
    with pytest.raises(LayerNotFoundError, match=r"'features.nope'.*no 'nope' under Sequential") as raised:
        CamCapture(model, [HEAD, "features.nope"])
    assert isinstance(raised.value, KeyError) and isinstance(raised.value, SalienceError)
    assert "denseblock1" in str(raised.value)
    assert hook_count(model) == 0
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_no_parameter_grad_and_trunk_outside_the_graph():
    """Parameter .grad stays None and the trunk before the target layer builds no graph."""
    model = tiny_densenet()
    seen = {}

    def record(module, inputs, output):
        seen["trunk"] = output.requires_grad

    model.features.denseblock1.register_forward_hook(record)
    with CamCapture(model, [HEAD]) as cam:
        capture = cam.run(sample((2, 1, 32, 32)))
    assert seen["trunk"] is False
    assert all(p.grad is None for p in model.parameters())
    assert capture.gradients[HEAD].shape == (3, 2, 6, 8, 8)
    assert float(capture.gradients[HEAD].abs().sum()) > 0


def test_gradients_match_a_full_backward():
    """The head-only gradient equals the one a plain autograd pass through the whole net gives."""
    model = tiny_densenet()
    x = sample((2, 1, 32, 32))
    with CamCapture(model, [HEAD]) as cam:
        capture = cam.run(x, classes=[2, 0])
    store = {}

    def keep(module, inputs, output):
        output = output.clone()
        output.retain_grad()
        store["a"] = output
        return output

    handle = model.class_layers.relu.register_forward_hook(keep)
    try:
        model(x)[:, 2].sum().backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
    torch.testing.assert_close(capture.gradients[HEAD][0], store["a"].grad)
    torch.testing.assert_close(capture.activations[HEAD], store["a"].detach())


def test_batched_backward_equals_one_backward_per_class_for_varied_heads():
    """is_grads_batched and the per-class fallback agree on heads of many layer kinds."""
    torch.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.Sequential(
            nn.BatchNorm2d(6), nn.GELU(), nn.MaxPool2d(2), nn.Dropout(0.5), nn.Conv2d(6, 6, 3, padding=1),
            nn.LeakyReLU(), nn.AdaptiveMaxPool2d(2), nn.Flatten(), nn.LayerNorm(24), nn.Linear(24, 4),
        ),
    )
    x = sample((3, 1, 12, 12))
    with CamCapture(model, ["0"]) as cam:
        batched = cam.run(x)
    with CamCapture(model, ["0"], batched=False) as cam:
        looped = cam.run(x)
    assert batched.batched_backward and not looped.batched_backward
    torch.testing.assert_close(batched.gradients["0"], looped.gradients["0"])
    assert float(batched.gradients["0"].abs().sum()) > 0


class _ItemInBackward(torch.autograd.Function):
    """Doubles its input; its backward reads a Python number, which vmap cannot batch."""

    @staticmethod
    def forward(ctx, x):
        return x * 2

    @staticmethod
    def backward(ctx, grad):
        return grad * (2.0 if grad.abs().sum().item() >= 0 else 0.0)


class _Unbatchable(nn.Module):
    def forward(self, x):
        return _ItemInBackward.apply(x)


def test_a_head_vmap_cannot_batch_falls_back_to_one_backward_per_class():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), _Unbatchable(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))
    x = sample((2, 1, 8, 8))
    with CamCapture(model, ["0"]) as cam:
        capture = cam.run(x)
    assert not capture.batched_backward
    weight = model[4].weight.detach()  # d logit_k / d A_c = 2 w_kc / 36 at every position
    expected = (2 * weight / 36)[:, None, :, None, None].expand(4, 2, 3, 6, 6)
    torch.testing.assert_close(capture.gradients["0"], expected)
    assert hook_count(model) == 0


def test_several_layers_in_one_pass_match_separate_captures():
    model = tiny_densenet()
    x = sample((1, 1, 32, 32))
    layers = ["features.denseblock1", HEAD]
    with CamCapture(model, layers) as cam:
        both = cam.run(x, classes=[1])
    for layer in layers:
        with CamCapture(model, [layer]) as cam:
            alone = cam.run(x, classes=[1])
        torch.testing.assert_close(both.gradients[layer], alone.gradients[layer])
        torch.testing.assert_close(both.activations[layer], alone.activations[layer])


def test_mixed_classes_in_one_batch_equal_per_item_results():
    model = tiny_densenet()
    x = sample((2, 1, 32, 32))
    with CamCapture(model, [HEAD]) as cam:
        mixed = cam.run(x, target=ClassLogit([1, 2]))
        first = cam.run(x[:1], classes=[1])
        second = cam.run(x[1:], classes=[2])
    assert mixed.classes == (None,)
    a, g = mixed.activations[HEAD], mixed.gradients[HEAD][0]
    torch.testing.assert_close(g[0], first.gradients[HEAD][0, 0])
    torch.testing.assert_close(g[1], second.gradients[HEAD][0, 0])
    torch.testing.assert_close(grad_cam(a, g)[1], grad_cam(second.activations[HEAD], second.gradients[HEAD][0])[0])


def _hand_grad_cam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """Grad-CAM written out channel by channel, the way the paper states it."""
    out = torch.zeros((activations.shape[0],) + tuple(activations.shape[2:]))
    for b in range(activations.shape[0]):
        for c in range(activations.shape[1]):
            out[b] += gradients[b, c].mean() * activations[b, c]
    return out


@pytest.mark.parametrize("spatial_dims, shape", [(2, (2, 1, 32, 32)), (3, (2, 1, 16, 16, 16))])
def test_grad_cam_matches_hand_computation_and_monai(spatial_dims, shape):
    model = tiny_densenet(spatial_dims)
    x = sample(shape)
    with CamCapture(model, [HEAD]) as cam:
        capture = cam.run(x, classes=[0, 2])
    a = capture.activations[HEAD]
    monai_cam = GradCAM(nn_module=copy.deepcopy(model), target_layers=HEAD)  # it leaves hooks behind
    for t, k in enumerate((0, 2)):
        ours = grad_cam(a, capture.gradients[HEAD][t])
        torch.testing.assert_close(ours, _hand_grad_cam(a, capture.gradients[HEAD][t]))
        reference = monai_cam.compute_map(x, class_idx=k)[:, 0].detach()
        torch.testing.assert_close(rectify(ours), reference, rtol=1e-4, atol=1e-6)
        assert float(reference.max()) > 0 and reference.shape == ours.shape


def test_noisy_copies_ride_in_the_same_pass():
    """Clean gradients are unchanged; each noisy copy gets the gradients of its own input."""
    model = tiny_densenet()
    x = sample((2, 1, 32, 32))
    with CamCapture(model, ["features.denseblock1"]) as cam:
        plain = cam.run(x, classes=[0, 1])
        noisy = cam.run(x, classes=[0, 1], noise_samples=3, noise_level=0.2, seed=5)
        copies = cam.run(noisy_copies(x, 3, 0.2, seed=5), classes=[0, 1])
    layer = "features.denseblock1"
    torch.testing.assert_close(noisy.gradients[layer], plain.gradients[layer])
    torch.testing.assert_close(noisy.logits, plain.logits)
    assert noisy.noisy_gradients[layer].shape == (2, 3, 2) + tuple(plain.gradients[layer].shape[2:])
    expected = copies.gradients[layer].reshape(noisy.noisy_gradients[layer].shape)
    torch.testing.assert_close(noisy.noisy_gradients[layer], expected)
    assert not torch.allclose(noisy.noisy_gradients[layer][:, 0], plain.gradients[layer])


def test_noise_scales_with_each_items_range():
    x = torch.stack([torch.zeros(1, 8, 8), torch.linspace(0, 10, 64).reshape(1, 8, 8)])
    copies = noisy_copies(x, 200, 0.1, seed=0).reshape(200, 2, 1, 8, 8) - x
    assert float(copies[:, 0].abs().max()) == 0.0  # a flat image has no range: no noise
    assert abs(float(copies[:, 1].std()) - 1.0) < 0.05


def test_run_inside_inference_mode_and_empty_class_list():
    model = tiny_densenet()
    with torch.inference_mode():
        x = sample((1, 1, 32, 32))
        with CamCapture(model, [HEAD]) as cam:
            capture = cam.run(x, classes=[1])
            empty = cam.run(x, classes=[])
    assert float(capture.gradients[HEAD].abs().sum()) > 0
    assert empty.gradients[HEAD].shape == (0, 1, 6, 8, 8)
    torch.testing.assert_close(empty.logits, capture.logits)


def test_a_layer_that_runs_twice_is_refused_and_released():
    shared = nn.Conv2d(1, 1, 3, padding=1)
    model = nn.Sequential(shared, shared, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2))
    with pytest.raises(RuntimeError, match="ran twice"):
        with CamCapture(model, ["0"]) as cam:
            cam.run(sample((1, 1, 6, 6)))
    assert hook_count(model) == 0 and all(p.requires_grad for p in model.parameters())


def test_run_outside_the_context_is_refused():
    cam = CamCapture(tiny_densenet(), [HEAD])
    with pytest.raises(RuntimeError, match="context manager"):
        cam.run(sample((1, 1, 32, 32)))
