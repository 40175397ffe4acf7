"""Targets: what score a CAM explains, and the gradients the capture takes of it."""

from __future__ import annotations

import pytest
import torch

from engine.explain.all_methods import explain_all
from engine.explain.capture import CamCapture, noisy_copies
from engine.explain.targets import ClassLogit, ClassLogits, ClassProbability, ClipVerdict, SlideScore
from tests.engine.test_capture import HEAD, sample, tiny_densenet

BLOCK = "features.denseblock1"
LOGITS = torch.tensor([[1.0, 3.0, -1.0], [0.5, -2.0, 4.0], [2.0, 2.5, 0.0]])


def test_class_targets_pick_the_right_scores():
    torch.testing.assert_close(ClassLogit(1)(LOGITS), torch.tensor([[3.0, -2.0, 2.5]]))
    torch.testing.assert_close(ClassLogit([2, 0, 1])(LOGITS), torch.tensor([[-1.0, 0.5, 2.5]]))
    torch.testing.assert_close(ClassLogits([2, 1])(LOGITS), LOGITS[:, [2, 1]].T)
    torch.testing.assert_close(ClassProbability(0)(LOGITS), torch.softmax(LOGITS, 1)[:, 0].unsqueeze(0))
    assert ClassLogit(1).classes == (1,) and ClassLogit([2, 0, 1]).classes == (None,)
    assert ClassLogits([2, 1]).classes == (2, 1)


def test_pooled_targets_give_one_score_per_row():
    torch.testing.assert_close(ClipVerdict(1)(LOGITS), torch.tensor([3.5 / 3]))
    torch.testing.assert_close(ClipVerdict(2, reduce="max")(LOGITS), torch.tensor([4.0]))
    probabilities = torch.softmax(LOGITS, 1)[:, 0]
    torch.testing.assert_close(SlideScore(0, score="probability")(LOGITS), probabilities.mean().unsqueeze(0))
    assert ClipVerdict(2, reduce="max").label == "clip max logit[2]"
    assert SlideScore(0).classes == (0,)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: ClassLogit(3)(LOGITS), "class 3 is out of range for a model with 3 outputs"),
        (lambda: ClassLogit([0, 1])(LOGITS), "2 per-item classes for a batch of 3"),
        (lambda: ClipVerdict(0, reduce="median"), "reduce must be one of"),
        (lambda: SlideScore(0, score="odds"), "score must be one of"),
        (lambda: ClassLogits([0, -1])(LOGITS), "class -1 is out of range"),
    ],
)
def test_bad_targets_say_what_is_wrong(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def _capture(target=None, classes=None, x=None, **kwargs):
    model = tiny_densenet()
    x = sample((3, 1, 32, 32)) if x is None else x
    with CamCapture(model, [BLOCK]) as cam:
        return cam.run(x, classes, target=target, **kwargs)


def test_probability_gradient_follows_the_softmax_rule():
    """dp_k = p_k (dz_k - sum_j p_j dz_j), from the per-class logit gradients of the same input."""
    logit_grads = _capture().gradients[BLOCK]  # (K, B, C, H, W)
    capture = _capture(target=ClassProbability(1))
    p = torch.softmax(capture.logits, dim=1)
    mixed = (p.T[:, :, None, None, None] * logit_grads).sum(dim=0)
    expected = p[:, 1, None, None, None] * (logit_grads[1] - mixed)
    torch.testing.assert_close(capture.gradients[BLOCK][0], expected, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(capture.scores, p[:, 1].unsqueeze(0))


def test_clip_verdict_mean_spreads_and_max_picks_one_frame():
    per_frame = _capture(classes=[2])
    mean = _capture(target=ClipVerdict(2, reduce="mean"))
    torch.testing.assert_close(mean.gradients[BLOCK], per_frame.gradients[BLOCK] / 3)
    top = _capture(target=ClipVerdict(2, reduce="max"))
    winner = int(per_frame.logits[:, 2].argmax())
    for frame in range(3):
        expected = per_frame.gradients[BLOCK][0, frame] if frame == winner else torch.zeros_like(per_frame.gradients[BLOCK][0, frame])
        torch.testing.assert_close(top.gradients[BLOCK][0, frame], expected)
    torch.testing.assert_close(top.scores, per_frame.logits[:, 2].max().unsqueeze(0))


def test_pooled_target_with_noise_pools_each_noisy_copy_on_its_own():
    x = sample((3, 1, 32, 32))
    noisy = _capture(target=SlideScore(0), x=x, noise_samples=2, noise_level=0.3, seed=2)
    copies = noisy_copies(x, 2, 0.3, seed=2)
    for n in range(2):
        alone = _capture(target=SlideScore(0), x=copies[3 * n : 3 * n + 3])
        torch.testing.assert_close(noisy.noisy_gradients[BLOCK][:, n], alone.gradients[BLOCK])


def test_explain_all_explains_a_clip_verdict_frame_by_frame():
    model = tiny_densenet()
    x = sample((4, 1, 32, 32))
    verdict = explain_all(model, x, HEAD, target=ClipVerdict(1), methods=["gradcam", "cam"])
    frames = explain_all(model, x, HEAD, classes=[1], methods=["gradcam", "cam"])
    assert verdict["gradcam"].shape == (1, 4, 32, 32)
    torch.testing.assert_close(verdict["gradcam"], frames["gradcam"] / 4)
    torch.testing.assert_close(verdict["cam"], frames["cam"])
