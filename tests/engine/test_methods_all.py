"""explain_all: every method for every class from one capture, equal to each computed alone."""

from __future__ import annotations

import pytest
import torch

from engine.explain.all_methods import SINGLE_CAPTURE_METHODS, compute_maps, explain_all
from engine.explain.capture import CamCapture
from engine.explain.cluster_filter import cf_cam
from engine.explain.methods import GRADIENT_METHODS, METHODS, class_activation_map, final_linear_weight, upsample
from engine.explain.methods import smooth_grad_cam_pp
from engine.explain.targets import ClassLogit
from tests.engine.test_capture import HEAD, sample, tiny_densenet

BLOCK = "features.denseblock1"


@pytest.mark.parametrize(
    "spatial_dims, shape",
    [(2, (2, 1, 32, 32)), (3, (1, 1, 16, 16, 16)), (3, (1, 1, 8, 24, 24))],  # 2-D, 3-D, 2-D + time
    ids=["2d", "3d", "2d+time"],
)
def test_every_method_gives_finite_maps_of_the_input_shape(spatial_dims, shape):
    model = tiny_densenet(spatial_dims)
    maps = explain_all(model, sample(shape), BLOCK, methods=list(METHODS), noise_samples=2)
    assert set(maps) == set(METHODS)
    for name, m in maps.items():
        assert m.shape == (3, shape[0]) + shape[2:], name
        assert bool(torch.isfinite(m).all()), name
        assert float(m.abs().max()) > 0, name
    # Class-specific methods differ between classes; Eigen-CAM does not.
    assert not torch.allclose(maps["gradcam"][0], maps["gradcam"][1])
    torch.testing.assert_close(maps["eigencam"][0], maps["eigencam"][2])


def test_explain_all_equals_each_method_computed_alone():
    model = tiny_densenet()
    x = sample((2, 1, 32, 32))
    classes = [2, 0]
    maps = explain_all(model, x, BLOCK, classes=classes, methods=list(METHODS), noise_samples=3, seed=7)
    with CamCapture(model, [BLOCK]) as cam:
        capture = cam.run(x, classes=classes, noise_samples=3, seed=7)
    a, g = capture.activations[BLOCK], capture.gradients[BLOCK]
    weight = final_linear_weight(model, a.shape[1])
    for t, k in enumerate(classes):
        alone = {name: fn(a, g[t]) for name, fn in GRADIENT_METHODS.items()}
        alone["cfcam"] = cf_cam(a, g[t])
        alone["cam"] = class_activation_map(a, weight[k])
        alone["smoothgradcampp"] = smooth_grad_cam_pp(a, capture.noisy_gradients[BLOCK][t])
        for name, layer_map in alone.items():
            torch.testing.assert_close(maps[name][t], upsample(layer_map, (32, 32)), msg=f"{name} class {k}")
    assert not torch.allclose(maps["smoothgradcampp"], maps["gradcampp"])


def test_defaults_leave_out_smooth_grad_cam_pp_and_keep_layer_resolution_on_request():
    model = tiny_densenet()
    maps = explain_all(model, sample((1, 1, 32, 32)), HEAD, upsample_to_input=False)
    assert tuple(maps) == SINGLE_CAPTURE_METHODS
    assert "smoothgradcampp" not in maps and "cam" in maps
    assert all(m.shape == (3, 1, 8, 8) for m in maps.values())


def test_cam_needs_one_class_per_row():
    model = tiny_densenet()
    x = sample((2, 1, 32, 32))
    maps = explain_all(model, x, HEAD, target=ClassLogit([0, 2]))
    assert "cam" not in maps and maps["gradcam"].shape == (1, 2, 32, 32)
    with pytest.raises(ValueError, match="CAM needs the final linear layer"):
        explain_all(model, x, HEAD, target=ClassLogit([0, 2]), methods=["cam"])
    with pytest.raises(ValueError, match="unknown CAM methods \\['gradcam\\+\\+'\\]"):
        explain_all(model, x, HEAD, methods=["gradcam++"])


def test_smooth_grad_cam_pp_needs_noisy_gradients():
    model = tiny_densenet()
    with CamCapture(model, [HEAD]) as cam:
        capture = cam.run(sample((1, 1, 32, 32)), classes=[0])
    with pytest.raises(ValueError, match="smoothgradcampp needs a capture run with noise_samples > 0"):
        compute_maps(capture, HEAD, ["smoothgradcampp"])
    assert compute_maps(capture, HEAD, ["gradcam"])["gradcam"].shape == (1, 1, 8, 8)


def test_a_given_fc_weight_is_used_for_cam():
    model = tiny_densenet()
    x = sample((1, 1, 32, 32))
    weight = torch.zeros(3, 6)
    weight[1, 4] = 2.0
    maps = explain_all(model, x, HEAD, classes=[1], methods=["cam"], fc_weight=weight, upsample_to_input=False)
    with CamCapture(model, [HEAD]) as cam:
        activations = cam.run(x, classes=[]).activations[HEAD]
    torch.testing.assert_close(maps["cam"][0], 2.0 * activations[:, 4])
