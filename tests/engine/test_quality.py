"""Quality measures on cases whose answers are known in advance."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy import ndimage

from engine.explain.quality import (
    confidence_change,
    deletion_curve,
    energy_inside_mask,
    insertion_curve,
    pointing_game,
)
from tests.engine.test_perturbation import OrthantNet, orthant_masks, positive_input

SPATIAL = (16, 16)
ORTHANT = 2  # rows 8..15, cols 0..7


def class0_probability(model, x: torch.Tensor) -> float:
    with torch.no_grad():
        return float(torch.softmax(model(x), dim=1)[0, 0])


@pytest.fixture
def orthant_case():
    model = OrthantNet(SPATIAL, ORTHANT)
    x = positive_input((1, 1) + SPATIAL, seed=3)
    perfect = orthant_masks(SPATIAL)[ORTHANT]  # ranks the only evidence first
    return model, x, perfect


def test_deletion_of_a_perfect_map_falls_first(orthant_case):
    model, x, perfect = orthant_case
    good = deletion_curve(model, x, perfect, target=0, n_steps=16)
    bad = deletion_curve(model, x, -perfect, target=0, n_steps=16)
    full = class0_probability(model, x)
    fractions = np.array(good.fractions)
    assert good.scores[0] == pytest.approx(full) and bad.scores[0] == pytest.approx(full)
    # The orthant is a quarter of the pixels: once it is gone the logits tie (probability 1/2).
    assert np.allclose(np.array(good.scores)[fractions >= 0.25], 0.5)
    assert np.allclose(np.array(bad.scores)[fractions <= 0.75], full)
    assert 0.0 <= good.auc < bad.auc <= 1.0
    assert good.auc == pytest.approx(np.trapezoid(good.scores, good.fractions))


def test_insertion_of_a_perfect_map_rises_first(orthant_case):
    model, x, perfect = orthant_case
    good = insertion_curve(model, x, perfect, target=0, n_steps=16, baseline=0.0)
    bad = insertion_curve(model, x, -perfect, target=0, n_steps=16, baseline=0.0)
    full = class0_probability(model, x)
    fractions = np.array(good.fractions)
    assert np.allclose(np.array(good.scores)[fractions >= 0.25], full)
    assert np.allclose(np.array(bad.scores)[fractions <= 0.75], 0.5)
    assert good.auc > bad.auc
    assert good.kind == "insertion" and good.class_index == 0


def test_curves_work_on_volumes():
    spatial = (8, 8, 8)
    model = OrthantNet(spatial, orthant=6)
    x = positive_input((1, 1) + spatial, seed=4)
    perfect = orthant_masks(spatial)[6]
    good, bad = (deletion_curve(model, x, m, target=0, n_steps=8) for m in (perfect, -perfect))
    # An octant is an eighth of the voxels: one step removes all of the evidence.
    assert good.scores[1] == pytest.approx(0.5) and bad.scores[-2] == pytest.approx(good.scores[0])
    assert good.auc < bad.auc


def test_curves_do_not_depend_on_how_steps_are_batched(orthant_case):
    model, x, perfect = orthant_case
    saliency = perfect + torch.rand(SPATIAL, generator=torch.Generator().manual_seed(1))
    one_by_one = deletion_curve(model, x, saliency, n_steps=12, chunk_size=1)
    batched = deletion_curve(model, x, saliency, n_steps=12, chunk_size=5)
    assert one_by_one.scores == pytest.approx(batched.scores, abs=1e-7)
    assert len(batched.scores) == 13 and batched.fractions[0] == 0.0 and batched.fractions[-1] == 1.0


def test_blur_baseline_starts_insertion_from_the_blurred_image():
    model = OrthantNet(SPATIAL, ORTHANT)
    x = torch.zeros((1, 1) + SPATIAL)
    x[0, 0, 8:, :8] = 2.0  # bright orthant; blurring spills part of it into the other orthants
    curve = insertion_curve(model, x, orthant_masks(SPATIAL)[ORTHANT], n_steps=4, baseline="blur", blur_sigma=3.0)
    blurred = torch.from_numpy(ndimage.gaussian_filter(x.numpy(), (0, 0, 3.0, 3.0)))
    assert curve.scores[0] == pytest.approx(class0_probability(model, blurred), abs=1e-6)
    assert curve.scores[0] < curve.scores[-1] == pytest.approx(class0_probability(model, x))


def test_average_drop_and_increase_in_confidence(orthant_case):
    model, x, perfect = orthant_case
    full = class0_probability(model, x)
    batch = x.repeat(2, 1, 1, 1)
    elsewhere = orthant_masks(SPATIAL)[0]
    result = confidence_change(model, batch, torch.stack([perfect * 3.0, elsewhere]), target=0)
    # Keeping the orthant keeps the score; keeping another orthant ties the logits at 1/2.
    assert result.masked_scores == pytest.approx([full, 0.5])
    assert result.average_drop == pytest.approx(100.0 * ((full - 0.5) / full) / 2)
    assert result.increase_in_confidence == 0.0
    boosted = confidence_change(model, x * 0.5, perfect[None] * 2.0, target=0)  # map > 1 is rescaled
    assert boosted.masked_scores == pytest.approx(boosted.full_scores)
    assert json.loads(json.dumps(result.to_dict()))["average_drop"] == pytest.approx(result.average_drop)


def test_pointing_game_hits_misses_and_tolerance():
    saliency = np.zeros((20, 20))
    saliency[3, 4] = 5.0
    mask = np.zeros((20, 20), dtype=bool)
    mask[2:6, 2:6] = True
    hit = pointing_game(saliency, mask)
    assert hit.hit and hit.peak == (3, 4) and hit.distance == 0.0
    far = np.zeros((20, 20), dtype=bool)
    far[3, 9:12] = True  # 5 pixels to the right of the peak
    assert not pointing_game(saliency, far).hit
    assert pointing_game(saliency, far).distance == pytest.approx(5.0)
    assert pointing_game(saliency, far, tolerance=5.0).hit
    assert not pointing_game(saliency, far, tolerance=5.0, spacing=(1.0, 2.0)).hit  # 10 mm away
    with pytest.raises(ValueError, match="non-empty mask"):
        pointing_game(saliency, np.zeros((20, 20)))


def test_pointing_game_in_3d():
    saliency = np.zeros((6, 8, 8))
    saliency[4, 1, 7] = 1.0
    mask = np.zeros((6, 8, 8))
    mask[4:, :3, 5:] = 1
    assert pointing_game(saliency, mask).hit
    assert not pointing_game(saliency, 1 - mask).hit


def test_energy_inside_mask_is_the_known_fraction():
    mask = np.zeros((8, 8), dtype=bool)
    mask[:4, :4] = True
    assert energy_inside_mask(np.ones((8, 8)), mask).fraction == pytest.approx(0.25)
    saliency = np.where(mask, 3.0, 1.0)
    saliency[7, 7] = -100.0  # negative evidence is not energy
    result = energy_inside_mask(saliency, mask)
    assert result.fraction == pytest.approx(48.0 / (48.0 + 47.0))
    assert (result.inside, result.total) == (48.0, 95.0)
    assert energy_inside_mask(-np.ones((8, 8)), mask).fraction == 0.0


@pytest.mark.needs_data
def test_energy_of_a_real_lesion_mask(shared_data):
    """Wiring on real geometry: a BUSI lesion mask, used as a map, holds all its own energy."""
    imageio = pytest.importorskip("imageio.v3")
    folder = shared_data / "breast-ultrasound-busi" / "malignant"
    masks = sorted(folder.glob("*_mask.png"))
    if not masks:
        pytest.skip(f"no BUSI lesion masks in {folder}")
    mask = imageio.imread(masks[0])
    mask = (mask if mask.ndim == 2 else mask[..., 0]) > 127
    image = imageio.imread(str(masks[0]).replace("_mask.png", ".png"))
    assert mask.shape == image.shape[:2] and 0 < mask.mean() < 1
    lesion_map = mask.astype(np.float32)
    assert energy_inside_mask(lesion_map, mask).fraction == 1.0
    assert energy_inside_mask(1.0 - lesion_map, mask).fraction == 0.0
    assert pointing_game(lesion_map * image, mask).hit
    assert not pointing_game((1.0 - lesion_map) * (image.astype(np.float32) + 1), mask).hit
