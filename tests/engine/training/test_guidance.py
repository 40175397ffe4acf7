"""Map guidance: the evidence map of a pooling-then-linear head, the penalty, and centred logits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.models.network_config import build_network
from engine.training.guidance import GuidedObjective, centre_logits, evidence_map, last_linear, outside_share
from tests.engine.test_bundle_loading import TINY_NET


def test_outside_share_counts_positive_evidence_outside_the_widened_mask():
    evidence = torch.zeros(1, 4, 4)
    evidence[0, 0, 0] = 3.0  # inside the mask's cell
    evidence[0, 3, 3] = 1.0  # far outside
    evidence[0, 2, 0] = -5.0  # negative evidence never counts
    masks = torch.zeros(1, 8, 8)
    masks[0, 0, 0] = 1  # one pixel marks cell (0, 0)
    assert outside_share(evidence, masks, margin=0).item() == pytest.approx(0.25, abs=1e-5)
    evidence[0, 1, 1] = 4.0  # next to the mask: forgiven with a one-cell margin only
    assert outside_share(evidence, masks, margin=0).item() == pytest.approx(5 / 8, abs=1e-5)
    assert outside_share(evidence, masks, margin=1).item() == pytest.approx(1 / 8, abs=1e-5)
    assert outside_share(torch.full((1, 4, 4), -1.0), masks).item() == 0.0


def test_the_evidence_map_averages_to_the_log_odds_of_a_densenet():
    torch.manual_seed(0)
    network = build_network(TINY_NET, "test").eval()
    captured = []
    handle = network.class_layers.relu.register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.no_grad():
        logits = network(torch.rand(3, 3, 32, 32))
    handle.remove()
    linear = last_linear(network)
    evidence = evidence_map(captured[0], linear.weight, positive=1, negative=0)
    log_odds = logits[:, 1] - logits[:, 0]
    expected = evidence.mean(dim=(1, 2)) + linear.bias[1] - linear.bias[0]
    assert torch.allclose(expected, log_odds, atol=1e-5)


def test_centred_logits_keep_the_probabilities_and_halve_the_log_odds():
    torch.manual_seed(1)
    network = build_network(TINY_NET, "test").eval()
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        before = network(x)
        centre_logits(network)
        after = network(x)
    assert torch.allclose(torch.softmax(before, 1), torch.softmax(after, 1), atol=1e-6)
    assert torch.allclose(after[:, 1], -after[:, 0], atol=1e-6)
    assert torch.allclose(after[:, 1], (before[:, 1] - before[:, 0]) / 2, atol=1e-5)


def test_the_guided_objective_adds_the_penalty_on_positive_items_only():
    torch.manual_seed(2)
    network = build_network(TINY_NET, "test")
    batch = torch.rand(4, 4, 32, 32)
    batch[:, 3] = 0.0
    batch[:, 3, :4, :4] = 1.0  # a small mask in one corner
    labels = torch.tensor([1, 0, 1, 0])
    plain = nn.functional.cross_entropy(network(batch[:, :3]), labels)
    unguided = GuidedObjective("class_layers.relu", 3, weight=0.0)(network, batch, labels)
    guided = GuidedObjective("class_layers.relu", 3, weight=1.0)(network, batch, labels)
    assert torch.allclose(unguided, plain)
    assert guided > plain  # random evidence lies mostly outside a corner mask
    negatives_only = GuidedObjective("class_layers.relu", 3, weight=1.0)(network, batch, torch.zeros(4, dtype=torch.long))
    assert torch.allclose(negatives_only, nn.functional.cross_entropy(network(batch[:, :3]), torch.zeros(4, dtype=torch.long)))
    guided.backward()  # the penalty is differentiable through the network
    assert network.features.conv0.weight.grad is not None
    assert not network.class_layers.relu._forward_hooks  # the capture hook was removed
