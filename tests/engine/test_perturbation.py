"""Score-CAM and occlusion on models whose evidence is known in advance."""

from __future__ import annotations

import itertools

import pytest

from tests.progress import RecordingProgress
import torch
from monai.networks.nets import DenseNet
from torch import nn

from engine.explain.targets import ClassLogit
from engine.explain.perturbation import PERTURBATION_METHODS, occlusion, score_cam, window_starts
from engine.progress import Cancelled


def orthant_masks(spatial: tuple[int, ...]) -> torch.Tensor:
    """``(2**n, *spatial)`` indicators of the 2**n orthants (quadrants in 2-D, octants in 3-D)."""
    masks = torch.zeros((2 ** len(spatial),) + spatial)
    for k, corner in enumerate(itertools.product((0, 1), repeat=len(spatial))):
        region = tuple(slice(0, s // 2) if c == 0 else slice(s // 2, s) for c, s in zip(corner, spatial))
        masks[(k,) + region] = 1.0
    return masks


class OrthantChannels(nn.Module):
    """Channel k holds the input's first channel inside orthant k and 0 elsewhere."""

    def __init__(self, spatial: tuple[int, ...]):
        super().__init__()
        self.register_buffer("masks", orthant_masks(spatial))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :1] * self.masks


class OrthantNet(nn.Module):
    """Two classes; logit 0 is ``gain`` times the mean input inside one orthant, logit 1 is 0.

    Evidence for class 0 therefore lies in orthant ``orthant`` and nowhere else.
    """

    def __init__(self, spatial: tuple[int, ...], orthant: int = 0, gain: float = 4.0):
        super().__init__()
        self.regions = OrthantChannels(spatial)
        self.head = nn.Linear(2 ** len(spatial), 2, bias=False)
        voxels = float(self.regions.masks[orthant].sum())
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.weight[0, orthant] = gain / voxels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.regions(x).flatten(2).sum(dim=2))


def positive_input(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.5 + torch.rand(shape, generator=generator)


class CountingModel(nn.Module):
    """Wraps a model and counts forward passes."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(x)


@pytest.mark.parametrize("spatial, orthant", [((16, 16), 1), ((8, 8, 8), 5)])
def test_occlusion_finds_the_only_region_that_matters(spatial, orthant):
    model = OrthantNet(spatial, orthant)
    x = positive_input((2, 1) + spatial)
    maps = occlusion(model, x, target=0, patch_size=4, stride=4)
    inside = orthant_masks(spatial)[orthant].bool()
    assert maps.shape == (2,) + spatial
    assert torch.all(maps[:, inside] > 0)
    assert torch.all(maps[:, ~inside] == 0)
    # Overlapping windows smear a little over the border, but the peak stays inside.
    smeared = occlusion(model, x, target=0, patch_size=4, stride=1)
    for item in smeared:
        assert inside.reshape(-1)[int(item.argmax())]


def test_occlusion_value_is_the_score_drop_of_the_covering_window():
    model = OrthantNet((8, 8), orthant=0)
    x = positive_input((1, 1, 8, 8))
    maps = occlusion(model, x, target=0, patch_size=4, stride=4, score="logit")
    # Hiding the 4x4 block at the top-left corner removes exactly its share of the logit.
    expected = 4.0 * float(x[0, 0, :4, :4].sum()) / 16.0
    assert torch.allclose(maps[0, :4, :4], torch.full((4, 4), expected), atol=1e-6)


@pytest.mark.parametrize("spatial, orthant", [((16, 16), 2), ((8, 8, 8), 3)])
def test_score_cam_peaks_in_the_region_that_matters(spatial, orthant):
    model = OrthantNet(spatial, orthant)
    x = positive_input((2, 1) + spatial)
    maps = score_cam(model, x, target=0, target_layer="regions")
    inside = orthant_masks(spatial)[orthant].bool()
    assert maps.shape == (2,) + spatial
    assert torch.all(maps[:, inside] > 0)
    assert torch.allclose(maps[:, ~inside], torch.zeros(1), atol=1e-7)
    # Only the channel that sees the orthant raises the score: the map is that channel, scaled.
    ratio = maps[:, inside] / x[:, 0][:, inside]
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-5)


def tiny_densenet(spatial_dims: int) -> nn.Module:
    torch.manual_seed(0)
    return DenseNet(
        spatial_dims=spatial_dims, in_channels=1, out_channels=3, init_features=2, growth_rate=2, block_config=(2,)
    )


def test_score_cam_memory_bound_adds_chunks_and_keeps_the_result():
    model = CountingModel(tiny_densenet(2))
    x = positive_input((2, 1, 16, 16))
    layer = "model.features.denseblock1"  # 6 channels -> 12 masked inputs for a batch of 2
    generous = score_cam(model, x, target=[0, 2], target_layer=layer, chunk_size=64)
    generous_calls = model.calls
    model.calls = 0
    one_input_bytes = 2 * 16 * 16 * 4  # masked input plus its mask, float32
    bounded = score_cam(model, x, target=[0, 2], target_layer=layer, max_batch_bytes=3 * one_input_bytes)
    assert generous_calls == 1 + 1 + 1  # capture, baseline, one chunk of 12
    assert model.calls == 1 + 1 + 4  # capture, baseline, 12 masked inputs in chunks of 3
    assert torch.allclose(generous, bounded, atol=1e-6)
    assert generous.abs().max() > 0


def test_score_cam_runs_on_2d_plus_time_clips():
    model = tiny_densenet(3)
    clip = positive_input((1, 1, 4, 16, 16))
    maps = score_cam(model, clip, target=1, target_layer="features.denseblock1", chunk_size=4)
    assert maps.shape == (1, 4, 16, 16)
    assert torch.isfinite(maps).all() and maps.abs().max() > 0


def test_registry_calls_every_method_with_one_signature():
    model = OrthantNet((16, 16), orthant=3)
    x = positive_input((1, 1, 16, 16))
    inside = orthant_masks((16, 16))[3].bool()
    for name, method in PERTURBATION_METHODS.items():
        maps = method(model, x, 0, "regions", progress=None)
        assert inside.reshape(-1)[int(maps[0].argmax())], name


@pytest.mark.parametrize("name", sorted(PERTURBATION_METHODS))
def test_progress_is_reported_and_cancellation_stops_the_work(name):
    model = OrthantNet((16, 16))
    x = positive_input((1, 1, 16, 16))
    progress = RecordingProgress()
    PERTURBATION_METHODS[name](model, x, 0, "regions", chunk_size=1, progress=progress)
    assert progress.fractions == sorted(progress.fractions) and progress.fractions[-1] == 1.0
    assert len(progress.fractions) > 2
    with pytest.raises(Cancelled):
        PERTURBATION_METHODS[name](model, x, 0, "regions", chunk_size=1, progress=RecordingProgress(cancel_after=2))


def test_target_objects_name_the_class():
    model = OrthantNet((8, 8), orthant=0)
    x = positive_input((2, 1, 8, 8))
    by_index = occlusion(model, x, target=1, patch_size=4, stride=4)
    by_object = occlusion(model, x, target=ClassLogit(1), patch_size=4, stride=4)
    per_item = occlusion(model, x, target=ClassLogit([1, 0]), patch_size=4, stride=4)
    assert torch.equal(by_index, by_object)
    assert torch.equal(per_item[0], by_index[0])
    assert per_item[1].max() > 0 and by_index[1].max() <= 0  # class 0 evidence vs. class 1


def test_training_flag_is_restored():
    model = OrthantNet((8, 8)).train()
    occlusion(model, positive_input((1, 1, 8, 8)), patch_size=4)
    score_cam(model, positive_input((1, 1, 8, 8)), target_layer="regions")
    assert model.training


def test_bad_arguments_raise_one_clear_error():
    model = OrthantNet((8, 8))
    x = positive_input((2, 1, 8, 8))
    with pytest.raises(ValueError, match="target_layer"):
        score_cam(model, x, target=0)
    with pytest.raises(ValueError, match="3 class indices for a batch of 2"):
        occlusion(model, x, target=[0, 1, 0])
    with pytest.raises(ValueError, match="out of range"):
        occlusion(model, x, target=5)
    with pytest.raises(ValueError, match="patch_size"):
        occlusion(model, x, patch_size=(4, 4, 4))


def test_window_starts_cover_the_border():
    assert window_starts(10, 4, 4) == [0, 4, 6]
    assert window_starts(8, 4, 4) == [0, 4]
    assert window_starts(5, 5, 2) == [0]
