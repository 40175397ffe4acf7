"""Maps of the class probability, not only of the logit: what a clip verdict or a slide score
(means of probabilities) is made of.

Known answer: for two classes, p1 = sigmoid(z1 - z0), so dp1/dA = p0 p1 (dz1/dA - dz0/dA). Grad-CAM
is linear in the gradients, so the probability map of class 1 is p0 p1 times the difference of the
two classes' logit maps, item by item.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.explain import ClassProbabilities, ClassProbability
from engine.models.bundle import load_bundle
from engine.models.inference import explain_with


def test_class_probabilities_stack_the_single_class_targets():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.3, 0.1]])
    both = ClassProbabilities([2, 0])(logits)
    assert torch.allclose(both, torch.cat([ClassProbability(2)(logits), ClassProbability(0)(logits)]))
    assert both.shape == (2, 2)


def test_probability_grad_cam_is_the_logit_difference_scaled_by_p0_p1(glioma_case):
    from engine.imaging import read_image

    bundle = load_bundle("glioma")
    volume = read_image(glioma_case)
    inputs = bundle.preprocess(volume)[8:12]
    size = tuple(inputs.shape[2:])
    logit_maps = explain_with(bundle.network, inputs, bundle.target_layer, "gradcam", [0, 1], size, score="logit")
    probability_maps = explain_with(bundle.network, inputs, bundle.target_layer, "gradcam", [1], size,
                                    score="probability")
    with torch.no_grad():
        p = torch.softmax(bundle.network(inputs), dim=1).numpy()
    expected = (p[:, 0] * p[:, 1])[:, None, None] * (logit_maps[1] - logit_maps[0])
    np.testing.assert_allclose(probability_maps[0], expected, rtol=1e-3, atol=1e-6 * np.abs(expected).max())
    assert not np.allclose(probability_maps[0], logit_maps[1])  # a different question, a different map


def test_scores_reach_perturbation_methods_and_bad_scores_are_refused(glioma_case):
    from engine.imaging import read_image

    bundle = load_bundle("glioma")
    volume = read_image(glioma_case)
    # A 48 x 48 slice keeps occlusion's hundreds of forward passes quick; the network pools globally.
    small = torch.nn.functional.interpolate(bundle.preprocess(volume)[10:11], size=(48, 48), mode="area")

    def occlusion(score):
        return explain_with(bundle.network, small, bundle.target_layer, "occlusion", [1], (48, 48), score=score)

    by_default = occlusion(None)
    assert np.array_equal(by_default, occlusion("probability"))  # the papers' default
    assert not np.allclose(by_default, occlusion("logit"))
    with pytest.raises(ValueError, match="score must be one of"):
        bundle.explain(volume, method="gradcam", classes=[1], slices=[10], score="odds")
