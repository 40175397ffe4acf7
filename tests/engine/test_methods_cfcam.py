"""CF-CAM: DBSCAN over channels, Gaussian-smoothed cluster gradients, weighted sum."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from engine.explain.cluster_filter import IMPORTANT, NOISE, cf_cam, channel_clusters, dbscan, gaussian_smooth
from engine.explain.methods import grad_cam


def test_dbscan_finds_two_blobs_a_bridge_point_and_an_outlier():
    left = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [0.1, 0.1]])
    right = left + torch.tensor([5.0, 5.0])
    border = torch.tensor([[0.35, 0.0]])  # within eps of one left point only: not core, joins left
    outlier = torch.tensor([[20.0, -20.0]])
    labels = dbscan(torch.cat([left, right, border, outlier]), eps=0.3, min_samples=3)
    assert labels[:4].unique().tolist() == [labels[0].item()]
    assert labels[4:8].unique().tolist() == [labels[4].item()]
    assert labels[0] != labels[4] and {labels[0].item(), labels[4].item()} == {0, 1}
    assert labels[8] == labels[0]
    assert labels[9] == NOISE


def test_dbscan_with_no_core_point_is_all_noise():
    points = torch.tensor([[0.0], [10.0], [20.0]])
    assert dbscan(points, eps=1.0, min_samples=2).tolist() == [NOISE] * 3


@pytest.mark.parametrize("sigma", [0.7, 1.0, 1.5])
@pytest.mark.parametrize("shape", [(2, 9, 7), (1, 5, 6, 4)])
def test_gaussian_smooth_matches_scipy(sigma, shape):
    maps = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ours = gaussian_smooth(maps, sigma).numpy()
    for i in range(shape[0]):
        expected = gaussian_filter(maps[i].numpy(), sigma, mode="nearest", truncate=2.0)
        np.testing.assert_allclose(ours[i], expected, rtol=1e-10, atol=1e-12)


def _clustered_layer() -> torch.Tensor:
    """8 channels over 4x4: two strong ones, two tight groups of weak ones, one stray."""
    positions = torch.arange(16, dtype=torch.float32).reshape(4, 4)
    channels = [
        10 + positions, 12 - positions / 2,  # strong: important
        torch.full((4, 4), 1.0), torch.full((4, 4), 1.05), torch.full((4, 4), 0.95),  # group A
        positions / 20, positions / 20 + 0.02,  # group B
        torch.full((4, 4), -6.0) * (positions % 2),  # stray
    ]
    return torch.stack(channels).unsqueeze(0)


def test_channel_clusters_split_important_grouped_and_noisy_channels():
    labels = channel_clusters(_clustered_layer(), keep_quantile=0.75, eps_quantile=0.25, min_share=0.05)[0]
    assert labels[:2].tolist() == [IMPORTANT, IMPORTANT]
    assert len(set(labels[2:5].tolist())) == 1 and labels[2] >= 0
    assert len(set(labels[5:7].tolist())) == 1 and labels[5] >= 0 and labels[5] != labels[2]
    assert labels[7] == NOISE


def test_cf_cam_weights_by_hand():
    a = _clustered_layer()
    g = torch.randn(a.shape, generator=torch.Generator().manual_seed(4))
    labels = channel_clusters(a)
    weights = torch.zeros(8)
    weights[:2] = g[0, :2].mean(dim=(1, 2))
    for members in ([2, 3, 4], [5, 6]):
        mean_gradient = g[0, members].mean(dim=0).double().numpy()
        smoothed = gaussian_filter(mean_gradient, 1.0, mode="nearest", truncate=2.0)
        weights[members] = float(smoothed.mean())
    expected = (weights[:, None, None] * a[0]).sum(dim=0)
    torch.testing.assert_close(cf_cam(a, g, clusters=labels, sigma=1.0)[0], expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(cf_cam(a, g, sigma=1.0), cf_cam(a, g, clusters=labels, sigma=1.0))


def test_cf_cam_with_every_channel_important_is_grad_cam():
    generator = torch.Generator().manual_seed(5)
    a, g = torch.rand((2, 6, 3, 4, 5), generator=generator), torch.randn((2, 6, 3, 4, 5), generator=generator)
    everything = channel_clusters(a, keep_quantile=0.0)
    assert bool((everything == IMPORTANT).all())
    torch.testing.assert_close(cf_cam(a, g, clusters=everything), grad_cam(a, g))
