"""Model-parameter randomisation (Adebayo et al. 2018) tells weight-blind maps from real ones."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from engine.explain.capture import CamCapture
from engine.explain.methods import grad_cam
from engine.explain.quality import (
    layers_in_forward_order,
    randomisation_check,
    spearman_similarity,
    structural_similarity,
)


class BlobNet(nn.Module):
    """Two conv layers, global pooling and a linear head: says whether a bright blob is present."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 8, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.relu2(self.conv2(self.relu1(self.conv1(x))))).flatten(1))


def blob_images(count: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Faint noise; class 1 images also hold a bright 4x4 blob at a random place."""
    images = torch.rand((count, 1, 16, 16), generator=generator) * 0.3
    labels = torch.randint(0, 2, (count,), generator=generator)
    for i in torch.nonzero(labels).flatten().tolist():
        row, col = torch.randint(0, 13, (2,), generator=generator).tolist()
        images[i, 0, row : row + 4, col : col + 4] += 1.0
    return images, labels


@pytest.fixture(scope="module")
def trained_blob_net():
    """BlobNet after 60 Adam steps (a second or so; one thread avoids oversubscribing the cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(1)
        model = BlobNet()
        generator = torch.Generator().manual_seed(1)
        optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(60):
            images, labels = blob_images(32, generator)
            loss = nn.functional.cross_entropy(model(images), labels)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        model.eval()
        held_out, labels = blob_images(100, generator)
        with torch.no_grad():
            accuracy = float((model(held_out).argmax(dim=1) == labels).float().mean())
        return model, held_out[labels == 1][:1], accuracy
    finally:
        torch.set_num_threads(threads)


def grad_cam_of_blob_class(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with CamCapture(model, ["relu2"]) as cam:
        capture = cam.run(x, classes=[1])
    return grad_cam(capture.activations["relu2"], capture.gradients["relu2"][0])[0]


def edge_map(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """An "explanation" computed from the input alone: gradient magnitude of the image."""
    rows, cols = np.gradient(x[0, 0].numpy())
    return np.hypot(rows, cols)


def test_a_map_that_ignores_the_weights_is_flagged(trained_blob_net):
    model, x, _ = trained_blob_net
    for mode in ("cascading", "independent"):
        result = randomisation_check(model, x, edge_map, mode=mode)
        assert not result.trustworthy
        assert "does not depend on what the model learned" in result.reason
        assert [step.spearman for step in result.steps] == pytest.approx([1.0, 1.0, 1.0])
        assert [step.ssim for step in result.steps] == pytest.approx([1.0, 1.0, 1.0])


def test_grad_cam_of_a_trained_model_passes(trained_blob_net):
    model, x, accuracy = trained_blob_net
    assert accuracy > 0.9  # the model really learned the blob
    before = copy.deepcopy(model.state_dict())
    result = randomisation_check(model, x, grad_cam_of_blob_class, mode="cascading", seed=0)
    assert result.trustworthy, result.reason
    assert [step.layers for step in result.steps] == [["fc"], ["fc", "conv2"], ["fc", "conv2", "conv1"]]
    assert result.steps[-1].spearman < 0.5
    independent = randomisation_check(model, x, grad_cam_of_blob_class, mode="independent")
    assert independent.trustworthy and [step.layers for step in independent.steps] == [["fc"], ["conv2"], ["conv1"]]
    # The model under test is never modified: the check works on a deep copy.
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), name
    summary = json.loads(json.dumps(result.to_dict()))
    assert summary["trustworthy"] is True and len(summary["steps"]) == 3


def test_layers_follow_the_forward_pass():
    assert layers_in_forward_order(BlobNet(), torch.zeros(1, 1, 8, 8)) == ["conv1", "conv2", "fc"]


def test_similarity_measures_on_known_pairs():
    ramp = np.arange(64, dtype=float).reshape(8, 8)
    assert spearman_similarity(ramp, ramp**3) == pytest.approx(1.0)  # same ranks
    assert spearman_similarity(ramp, -ramp) == pytest.approx(-1.0)
    assert spearman_similarity(np.ones(5), np.ones(5)) == 1.0
    assert spearman_similarity(np.ones(5), np.arange(5)) == 0.0
    assert structural_similarity(ramp, 2 * ramp + 1) == pytest.approx(1.0)  # scaled copies
    noise = np.random.default_rng(0).normal(size=(8, 8))
    assert structural_similarity(ramp, noise) < 0.5


def test_bad_arguments():
    model = BlobNet()
    with pytest.raises(ValueError, match="cascading"):
        randomisation_check(model, torch.zeros(1, 1, 8, 8), edge_map, mode="shuffled")
    with pytest.raises(KeyError, match="nope"):
        randomisation_check(model, torch.zeros(1, 1, 8, 8), edge_map, layers=["nope"])


def weight_hash_inside_square(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Zero on a black border; inside the central square, values drawn from the weights' sum.

    Inside the square the map depends only on the weights, so after randomisation it is unrelated
    to the original; the border is zero before and after.
    """
    weights_sum = float(sum(p.detach().double().sum() for p in model.parameters()))
    rng = np.random.default_rng(abs(int(weights_sum * 1e6)) % (2**32))
    cam = np.zeros(x.shape[2:])
    cam[4:12, 4:12] = rng.uniform(0.1, 1.0, (8, 8))
    return cam


def test_a_shared_black_border_no_longer_vouches_for_a_map_inside_the_region():
    model = BlobNet()
    x = torch.zeros(1, 1, 16, 16)
    region = np.zeros((16, 16), bool)
    region[4:12, 4:12] = True
    whole = randomisation_check(model, x, weight_hash_inside_square)
    # The border ties at zero in both maps, so the whole-map ranks agree (75 % of the pixels).
    assert not whole.trustworthy and whole.steps[-1].spearman > 0.5
    assert whole.decided_on == "whole map" and whole.steps[-1].spearman_in_region is None
    inside = randomisation_check(model, x, weight_hash_inside_square, region=region)
    assert inside.trustworthy, inside.reason
    assert inside.decided_on == "region" and inside.region_fraction == pytest.approx(0.25)
    assert abs(inside.steps[-1].spearman_in_region) < 0.4
    assert inside.steps[-1].spearman == pytest.approx(whole.steps[-1].spearman)  # still reported
    assert "inside the image's foreground" in inside.reason
    with pytest.raises(ValueError, match="does not fit"):
        randomisation_check(model, x, weight_hash_inside_square, region=np.ones((8, 8), bool))


def test_foreground_is_what_differs_from_flat_corners():
    from engine.analysis.quality import foreground

    head = torch.zeros(3, 16, 16)
    head[:, 3:13, 2:14] = torch.rand(3, 10, 12) + 0.1
    mask = foreground(head)
    assert mask is not None and mask.sum() == 120 and mask[3:13, 2:14].all()
    patch = torch.rand(3, 16, 16) + 0.1  # tissue to every edge: no background to exclude
    assert foreground(patch) is None
    framed = torch.zeros(3, 16, 16)
    framed[:, 1:15, 1:15] = 1.0  # a one-pixel black frame: 77 % foreground
    assert foreground(framed).sum() == 196
    one_corner_differs = framed.clone()
    one_corner_differs[0, 15, 15] = 0.5
    assert foreground(one_corner_differs) is None
    assert foreground(torch.zeros(3, 16, 16)) is None  # nothing but background
