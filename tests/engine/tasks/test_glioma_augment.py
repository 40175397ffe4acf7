"""Augmentation of glioma training slices: seeded, background kept black, masks moved with the image."""

from __future__ import annotations

import torch

from engine.tasks.glioma.augment import AUGMENTATIONS, augment_strong, random_affine


def _batch(count: int = 32) -> torch.Tensor:
    """Three image channels with a bright square off-centre, and the square's mask as channel 4."""
    x = torch.zeros(count, 4, 32, 32)
    x[:, :3, 4:28, 4:28] = 0.5  # "brain"
    x[:, :3, 6:12, 18:26] = 1.5  # "lesion"
    x[:, 3, 6:12, 18:26] = 1.0
    return x


def test_strong_augmentation_is_drawn_from_the_generator_only():
    a = augment_strong(_batch(), torch.Generator().manual_seed(5))
    b = augment_strong(_batch(), torch.Generator().manual_seed(5))
    c = augment_strong(_batch(), torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_the_mask_channel_moves_with_the_lesion_and_stays_binary():
    out = augment_strong(_batch(), torch.Generator().manual_seed(0))
    mask = out[:, 3]
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (mask.sum(dim=(1, 2)) > 20).all()  # the lesion is still there after a zoom of at most 10%
    # The moved mask still covers the moved lesion: its pixels are the brightest of FLAIR.
    flair = out[:, 1]
    inside = (flair * mask).sum(dim=(1, 2)) / mask.sum(dim=(1, 2))
    outside = (flair * (1 - mask)).sum(dim=(1, 2)) / (1 - mask).sum(dim=(1, 2))
    assert (inside > 2 * outside).all()


def test_intensity_changes_leave_the_background_black_and_the_mask_untouched():
    x = _batch()
    out = AUGMENTATIONS["light"][0](x, torch.Generator().manual_seed(1))
    assert float(out[:, :3, :4, :].abs().max()) == 0.0 and float(out[:, :3, 28:, :].abs().max()) == 0.0
    mirrored = out[:, 3, 6:12, 6:14].sum(dim=(1, 2)) > 0
    assert torch.equal(out[~mirrored, 3], x[~mirrored, 3]) and torch.equal(out[mirrored, 3], x[mirrored, 3].flip(-1))


def test_an_identity_affine_leaves_a_batch_as_it_was():
    x = _batch(4)
    same = random_affine(x, torch.Generator().manual_seed(0), degrees=0.0, zoom=0.0, translate=0.0)
    assert torch.allclose(same, x, atol=1e-5)
