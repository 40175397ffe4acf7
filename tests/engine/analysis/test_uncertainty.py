"""Uncertainty: Monte Carlo dropout and test-time augmentation, the entropy decomposition, and the
rule that says in words when a case is uncertain."""

from __future__ import annotations

import copy
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.networks.nets import DenseNet

from engine.analysis import analyse_case
from engine.analysis.test_time import Augmentation, apply, augmentation_plan
from engine.analysis.uncertainty import (
    MARGIN,
    STD_LIMIT,
    UncertaintyEstimate,
    decompose,
    dropout_layers,
    judge,
    resolve_method,
    sample_probabilities,
)
from engine.models.bundle import Bundle
from engine.models.inference import calibrated_probabilities
from tests.engine.analysis.test_case_analysis import counting, synthetic_volume, tiny_bundle


def dropout_bundle(p: float = 0.5) -> Bundle:
    """``tiny_bundle`` with a DenseNet whose dense layers drop channels with probability ``p``."""
    bundle = tiny_bundle()
    torch.manual_seed(1)
    network = DenseNet(spatial_dims=2, in_channels=3, out_channels=2, init_features=4, growth_rate=4,
                       block_config=(2,), bn_size=2, dropout_prob=p).eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return Bundle(path=bundle.path, metadata=copy.deepcopy(bundle.metadata), network=network)


def _holds(estimate: UncertaintyEstimate) -> None:
    """total = aleatoric + epistemic within float tolerance, every term >= 0."""
    np.testing.assert_allclose(estimate.total, estimate.aleatoric + estimate.epistemic, atol=1e-9)
    for part in (estimate.total, estimate.aleatoric, estimate.epistemic, estimate.top_std):
        assert (part >= 0).all()


def test_the_decomposition_of_a_worked_example():
    """Two samples (0.9, 0.1) and (0.5, 0.5): the mean is (0.7, 0.3); total H(0.7, 0.3), aleatoric the
    mean of H(0.9, 0.1) and log 2, epistemic their difference; the top class's std is 0.2."""
    estimate = decompose(np.array([[[0.9, 0.1]], [[0.5, 0.5]]]))
    h = lambda *p: -sum(x * np.log(x) for x in p)  # noqa: E731
    assert estimate.total[0] == pytest.approx(h(0.7, 0.3))
    assert estimate.aleatoric[0] == pytest.approx((h(0.9, 0.1) + np.log(2)) / 2)
    assert estimate.epistemic[0] == pytest.approx(h(0.7, 0.3) - (h(0.9, 0.1) + np.log(2)) / 2)
    assert estimate.top_std[0] == pytest.approx(0.2)
    _holds(estimate)


def test_identical_samples_have_no_epistemic_part_and_random_ones_keep_the_identity():
    same = np.repeat(np.array([[[0.6, 0.3, 0.1], [1.0, 0.0, 0.0]]]), 8, axis=0)
    estimate = decompose(same)
    assert estimate.epistemic.max() == pytest.approx(0.0, abs=1e-12)
    assert estimate.total[1] == 0.0 and estimate.top_std.max() == pytest.approx(0.0, abs=1e-12)
    rng = np.random.default_rng(0)
    _holds(decompose(rng.dirichlet([0.3, 0.3, 0.3, 0.3], size=(16, 50))))
    with pytest.raises(ValueError, match=r"\(S, n, K\)"):
        decompose(np.ones((3, 2)))


def test_mc_dropout_samples_differ_and_decompose():
    """A net with dropout: the draws differ, the decomposition holds, the draws are seeded, the
    dropout layers go back to eval mode and the global random state is left alone."""
    bundle = dropout_bundle()
    assert dropout_layers(bundle.network) and resolve_method(bundle.network, "auto") == "mc_dropout"
    x = torch.randn(5, 3, 32, 32)
    state = torch.get_rng_state()
    draws, described = sample_probabilities(bundle.network, [x], 5, method="mc_dropout", samples=12, batch_size=24)
    assert torch.equal(state, torch.get_rng_state())
    assert draws.shape == (12, 5, 2) and described == ()
    assert draws.std(axis=0).min() > 1e-4  # every item's draws differ
    np.testing.assert_allclose(draws.sum(axis=2), 1.0, atol=1e-5)
    assert not any(m.training for m in bundle.network.modules())
    again, _ = sample_probabilities(bundle.network, [x[:2], x[2:]], 5, method="mc_dropout", samples=12, batch_size=24)
    assert again.shape == draws.shape
    same_seed, _ = sample_probabilities(bundle.network, [x], 5, method="mc_dropout", samples=12, batch_size=24)
    np.testing.assert_array_equal(same_seed, draws)
    estimate = decompose(draws)
    _holds(estimate)
    assert estimate.epistemic.min() > 0


def test_a_net_without_dropout_falls_back_to_tta_and_refuses_mc_dropout():
    network = tiny_bundle().network
    assert resolve_method(network, "auto") == "tta"
    assert resolve_method(network, "tta") == "tta"
    assert resolve_method(dropout_bundle().network, "mc-dropout") == "mc_dropout"  # the CLI's spelling
    assert resolve_method(network, None) is None
    with pytest.raises(ValueError, match="no dropout layer"):
        resolve_method(network, "mc_dropout")
    with pytest.raises(ValueError, match="uncertainty must be one of"):
        resolve_method(network, "ensemble")
    zero = dropout_bundle(p=0.0).network  # dropout_prob 0: the layers drop nothing
    assert resolve_method(zero, "auto") == "tta"


def test_tta_draws_are_the_network_on_each_transformed_copy():
    """Sample 0 is the image itself (the shown probabilities); sample 1 is its mirror image;
    forward passes carry ``samples`` copies of ``batch_size // samples`` items each."""
    bundle = tiny_bundle()
    x = torch.randn(6, 3, 32, 32)
    with counting(bundle.network) as calls:
        draws, described = sample_probabilities(bundle.network, [x], 6, method="tta", samples=8,
                                                augmentations=("hflip", "intensity"), temperature=2.0,
                                                batch_size=24)
    assert calls == [24, 24]  # 3 items x 8 copies per pass
    assert described[0] == "identity" and described[1].startswith("hflip+gain")
    with torch.inference_mode():
        plain = calibrated_probabilities(bundle.network(x), 2.0)
        plan = augmentation_plan(("hflip", "intensity"), 8, square=True)
        second = calibrated_probabilities(bundle.network(apply(plan[1], x)), 2.0)
    np.testing.assert_allclose(draws[0], plain, atol=1e-6)
    np.testing.assert_allclose(draws[1], second, atol=1e-6)
    assert np.abs(draws[1] - draws[0]).max() > 1e-5
    _holds(decompose(draws))


def test_the_augmentation_plan_walks_the_declared_group():
    plan = augmentation_plan(("hflip", "vflip", "rot90"), 9, square=True)
    assert plan[0].is_identity and len(plan) == 9
    assert len(set(plan[:8])) == 8 and plan[8] == plan[0]  # the 8 symmetries of a square, then again
    wide = augmentation_plan(("rot90",), 4, square=False)
    assert {a.quarter_turns for a in wide} == {0, 2}  # a wide image turns by 180 degrees only
    jitter = augmentation_plan(("intensity",), 5, square=True)
    assert all(abs(a.gain - 1) <= 0.05 and abs(a.offset) <= 0.05 for a in jitter)
    assert len({a.gain for a in jitter[1:]}) == 4
    volume = torch.arange(2 * 1 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 1, 3, 4, 4)  # a 3-D batch
    turned = apply(Augmentation(hflip=True, quarter_turns=1), volume)
    assert turned.shape == volume.shape
    assert torch.equal(turned, torch.rot90(torch.flip(volume, (-1,)), 1, (-2, -1)))
    with pytest.raises(ValueError, match="unknown test-time augmentations"):
        augmentation_plan(("shear",), 4, square=True)


def test_analyse_case_carries_the_uncertainty_of_each_item_and_of_the_case():
    """A volume's case answer is the item most likely to show the shown class; a clip's is its
    verdict, whose draws are the per-sample mean over frames. The shown probabilities stay the
    deterministic ones."""
    bundle = tiny_bundle()
    volume = synthetic_volume(slices=6)
    plain = analyse_case(volume, bundle, methods=())
    analysis = analyse_case(volume, bundle, methods=(), uncertainty="auto", uncertainty_samples=6)
    np.testing.assert_array_equal(analysis.probabilities, plain.probabilities)
    result = analysis.uncertainty
    assert result.method == "tta" and result.samples == 6 and len(result.augmentations) == 6
    assert result.items.total.shape == (6,)
    item = int(np.argmax(analysis.probabilities[:, analysis.class_to_show()]))
    assert result.case_from == f"item {item}"
    assert result.case.total[0] == pytest.approx(result.items.total[item])
    _holds(result.items)
    assert result.judgement.words.startswith(("Uncertain: ", "Not flagged as uncertain: "))
    assert len(result.item_judgements(analysis.probabilities, analysis.class_names)) == 6
    assert plain.uncertainty is None

    clip = replace(volume, kind="clip", frame_time_ms=40.0)
    clip_analysis = analyse_case(clip, dropout_bundle(), methods=(), uncertainty="auto", uncertainty_samples=4)
    assert clip_analysis.uncertainty.method == "mc_dropout" and clip_analysis.uncertainty.case_from == "verdict"
    _holds(clip_analysis.uncertainty.case)
    with pytest.raises(ValueError, match="no dropout layer"):
        analyse_case(volume, bundle, methods=(), uncertainty="mc_dropout")


def _estimate(epistemic: float = 0.0, std: float = 0.0, aleatoric: float = 0.5) -> UncertaintyEstimate:
    one = lambda v: np.array([v])  # noqa: E731
    return UncertaintyEstimate(np.array([[0.5, 0.5]]), one(aleatoric + epistemic), one(aleatoric), one(epistemic),
                               one(std))


def test_the_words_rule_names_each_clause_that_holds():
    names = ("healthy", "COVID-19")
    close = judge([0.45, 0.55], _estimate(), 0, names)
    assert close.uncertain and close.words.startswith("Uncertain: the top two classes are within 0.15")
    assert "COVID-19 55%" in close.words and len(close.reasons) == 1
    limit = 0.10 * np.log(2)
    disagree = judge([0.1, 0.9], _estimate(epistemic=limit + 1e-3), 0, names)
    assert disagree.reasons == (f"epistemic uncertainty high (mutual information {limit + 1e-3:.3f} nats, "
                                f"limit {limit:.3f})",)
    wobbly = judge([0.1, 0.9], _estimate(std=STD_LIMIT), 0, names)
    assert wobbly.uncertain and "varies across samples (std 0.100, limit 0.10)" in wobbly.words
    h = -(0.78 * np.log(0.78) + 0.22 * np.log(0.22))  # every sample says 78:22: just over 75% of log 2
    unsure = judge([0.22, 0.78], _estimate(aleatoric=h), 0, names)
    assert unsure.reasons == (f"aleatoric uncertainty high (expected entropy {h:.3f} nats, limit {0.75 * np.log(2):.3f})",)
    assert not judge([0.2, 0.8], _estimate(aleatoric=-(0.8 * np.log(0.8) + 0.2 * np.log(0.2))), 0, names).uncertain
    sure = judge([0.1, 0.9], _estimate(epistemic=limit - 1e-3, std=STD_LIMIT - 0.01), 0, names)
    assert not sure.uncertain and sure.reasons == ()
    assert sure.words.startswith("Not flagged as uncertain: COVID-19 90%, margin 0.80, expected entropy 0.500")
    assert judge([0.5 - MARGIN / 2 + 1e-3, 0.5 + MARGIN / 2 - 1e-3], _estimate(), 0, names).uncertain
    every = judge([0.48, 0.52], _estimate(epistemic=1.0, std=0.3, aleatoric=0.69), 0, names)
    assert len(every.reasons) == 4 and every.words.count(";") == 3
