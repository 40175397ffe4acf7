"""The batched on-device CF-CAM clustering and Eigen-CAM projection give today's maps.

``tests.engine.reference_cams`` keeps the per-item host implementations they replaced; every
test here compares the two on random inputs (2-D and 3-D layers, batch 1 and 8) and on the edge
cases that take other branches: tied norms that give items different numbers of clustered
channels, all-noise layers, one tight cluster, border points, and too few channels to cluster.
"""

from __future__ import annotations

import pytest
import torch

from engine.explain import cluster_filter, principal
from engine.explain.all_methods import compute_maps
from engine.explain.capture import CamCapture
from engine.explain.cluster_filter import IMPORTANT, NOISE, cf_cam, dbscan
from engine.explain.cluster_filter import channel_clusters_batched as channel_clusters
from engine.explain.methods import smooth_grad_cam_pp
from engine.explain.principal import eigen_cam, eigen_grad_cam, orient_like
from tests.engine import reference_cams as reference
from tests.engine.test_capture import sample, tiny_densenet

SHAPES = [
    (1, 24, 5, 4),
    (8, 24, 5, 4),
    (1, 64, 3, 3, 3),
    (8, 64, 3, 3, 3),
    (8, 120, 7, 7),
    (8, 33, 2, 2, 2),  # C - 1 divisible by 4: the 75th percentile is one of the norms
]


def _layer(shape: tuple[int, ...], seed: int, kind: str) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    a = torch.relu(torch.randn(shape, generator=generator))
    if kind == "ties":
        a = a.round()  # many equal channels and equal distances
    elif kind == "scaled":
        a = a * 5 * torch.rand(shape[:2] + (1,) * (len(shape) - 2), generator=generator)
    return a


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("kind", ["plain", "ties", "scaled"])
def test_channel_clusters_and_cf_cam_equal_the_per_item_host_version(shape, kind):
    a = _layer(shape, seed=len(shape) * 7 + shape[0] + shape[1], kind=kind)
    g = torch.randn(shape, generator=torch.Generator().manual_seed(3))
    labels = channel_clusters(a)
    expected = reference.channel_clusters(a)
    assert torch.equal(labels, expected)
    assert bool((labels >= 0).any()), "the case should cluster something"
    torch.testing.assert_close(cf_cam(a, g, clusters=labels), reference.cf_cam(a, g, clusters=expected))
    torch.testing.assert_close(cf_cam(a, g), reference.cf_cam(a, g))


def test_items_with_different_numbers_of_clustered_channels_share_one_batch():
    """Tied norms make one item keep more channels as important, so its DBSCAN sees fewer."""
    a = _layer((3, 21, 4, 4), seed=5, kind="plain")
    a[1, :9] = a[1, 0]  # nine identical channels: one norm, tied at the 75th percentile or not
    a[2, :12] = a[2].flatten(1).norm(dim=1).max() / 4  # twelve constant channels with one norm
    important = (channel_clusters(a) == IMPORTANT).sum(dim=1)
    assert len(set(important.tolist())) > 1, "the items must differ in their number of important channels"
    assert torch.equal(channel_clusters(a), reference.channel_clusters(a))
    g = torch.randn(a.shape, generator=torch.Generator().manual_seed(6))
    torch.testing.assert_close(cf_cam(a, g), reference.cf_cam(a, g))


def test_a_layer_with_no_core_channel_is_all_noise_and_weighs_only_important_channels():
    a = _layer((8, 40, 3, 3), seed=11, kind="plain")
    labels = channel_clusters(a, min_share=0.9)  # min_samples = 90 % of the channels: nothing is core
    assert torch.equal(labels, reference.channel_clusters(a, min_share=0.9))
    assert set(labels.unique().tolist()) == {IMPORTANT, NOISE}
    g = torch.randn(a.shape, generator=torch.Generator().manual_seed(12))
    important = (labels == IMPORTANT).float()
    expected = ((g.mean(dim=(2, 3)) * important)[:, :, None, None] * a).sum(dim=1)
    torch.testing.assert_close(cf_cam(a, g, clusters=labels), expected)


def test_one_tight_group_is_one_cluster():
    base = torch.rand((1, 1, 4, 4), generator=torch.Generator().manual_seed(2))
    jitter = 1e-3 * torch.rand((2, 30, 4, 4), generator=torch.Generator().manual_seed(3))
    a = torch.cat([base.expand(2, 30, 4, 4) + jitter, 10 + torch.rand((2, 10, 4, 4))], dim=1)
    labels = channel_clusters(a)
    assert torch.equal(labels, reference.channel_clusters(a))
    assert bool((labels[:, 30:] == IMPORTANT).all())
    assert labels[:, :30].unique().tolist() == [0]


@pytest.mark.parametrize("channels", [1, 2, 3, 5])
def test_too_few_channels_to_cluster(channels):
    a = _layer((4, channels, 3, 3), seed=channels, kind="plain")
    labels = channel_clusters(a)
    assert torch.equal(labels, reference.channel_clusters(a))
    g = torch.randn(a.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(cf_cam(a, g), reference.cf_cam(a, g))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("min_samples", [2, 3, 6])
def test_dbscan_equals_the_host_version_with_border_points(seed, min_samples):
    generator = torch.Generator().manual_seed(seed)
    centres = 4 * torch.randn((3, 2), generator=generator)
    points = torch.cat([c + 0.6 * torch.randn((12, 2), generator=generator) for c in centres])
    points = torch.cat([points, 10 * torch.randn((5, 2), generator=generator)])
    labels = dbscan(points, eps=0.5, min_samples=min_samples)
    assert torch.equal(labels, reference.dbscan(points, eps=0.5, min_samples=min_samples))
    given = dbscan(points, eps=0.5, min_samples=min_samples, distances=torch.cdist(points.double(), points.double()))
    assert torch.equal(given, labels)


def test_dbscan_of_no_points():
    assert dbscan(torch.zeros((0, 3)), eps=1.0, min_samples=2).shape == (0,)


def test_component_roots_follow_a_long_chain():
    """A path cut in two by a non-member: each part takes its smallest index as its root."""
    n = 40
    step = torch.ones(n - 1).diag(1).bool()
    links = (torch.eye(n, dtype=torch.bool) | step | step.T).unsqueeze(0)
    members = torch.ones((1, n), dtype=torch.bool)
    members[0, 25] = False  # cuts the chain in two
    roots = cluster_filter._component_roots(links, members)[0]
    assert roots[:25].tolist() == [0] * 25 and roots[25] == n and roots[26:].tolist() == [26] * (n - 26)


@pytest.mark.parametrize("n, rank_one", [(7, False), (49, False), (27, True)])
def test_repeated_squaring_finds_the_top_eigenpair(n, rank_one):
    generator = torch.Generator().manual_seed(n)
    features = torch.randn((6, n, 1 if rank_one else 2 * n), generator=generator, dtype=torch.float64)
    gram = features @ features.transpose(1, 2)
    values, vectors = torch.linalg.eigh(gram)
    value, vector = principal._top_eigenpairs_by_squaring(gram)
    torch.testing.assert_close(value, values[:, -1], rtol=1e-10, atol=1e-10)
    alignment = (vector * vectors[:, :, -1]).sum(dim=1).abs()
    torch.testing.assert_close(alignment, torch.ones_like(alignment), rtol=0, atol=1e-10)
    zero_value, zero_vector = principal._top_eigenpairs_by_squaring(torch.zeros((2, n, n), dtype=torch.float64))
    assert bool((zero_value == 0).all()) and bool((zero_vector == 0).all())


@pytest.mark.parametrize("shape", [(1, 32, 5, 5), (8, 32, 5, 5), (8, 16, 6, 6), (1, 24, 3, 3, 3), (8, 8, 3, 3, 3)])
@pytest.mark.parametrize("path", ["device default", "squaring"])
def test_eigen_cams_equal_the_eigh_version(shape, path, monkeypatch):
    """Both branches (positions <= channels and >) on the CPU's eigh and on the GPU's squaring."""
    if path == "squaring":
        monkeypatch.setattr(principal, "_top_eigenpairs", principal._top_eigenpairs_by_squaring)
    generator = torch.Generator().manual_seed(shape[0] + shape[1])
    a = torch.relu(torch.randn(shape, generator=generator))
    g = torch.randn(shape, generator=generator)
    spatial = (shape[0],) + shape[2:]
    expected_eigen = orient_like(reference.first_component_projection(a), a.sum(dim=1).flatten(1)).reshape(spatial)
    product = g * a
    expected_grad = orient_like(reference.first_component_projection(product), product.sum(dim=1).flatten(1))
    torch.testing.assert_close(eigen_cam(a), expected_eigen, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(eigen_grad_cam(a, g), expected_grad.reshape(spatial), rtol=1e-4, atol=1e-5)


def test_smooth_grad_cam_pp_rows_in_one_batch_equal_one_row_at_a_time():
    model, x = tiny_densenet(2, 1, classes=3), sample((3, 1, 16, 16))
    with CamCapture(model, ["class_layers.relu"]) as cam:
        capture = cam.run(x, noise_samples=3, noise_level=0.2)
    maps = compute_maps(capture, "class_layers.relu", ["smoothgradcampp"])["smoothgradcampp"]
    activations, noisy = capture.activations["class_layers.relu"], capture.noisy_gradients["class_layers.relu"]
    expected = torch.stack([smooth_grad_cam_pp(activations, noisy[t]) for t in range(noisy.shape[0])])
    torch.testing.assert_close(maps, expected)


def test_the_cpu_runs_the_host_clustering_and_it_equals_the_batched_one():
    """On the CPU ``channel_clusters`` takes the per-item numpy path (faster there); a
    DenseNet121-sized layer (1,024 channels, 7 x 7) gets the same labels either way."""
    from engine.explain import cluster_filter

    torch.manual_seed(5)
    a = torch.randn(3, 1024, 7, 7).relu()
    assert torch.equal(cluster_filter.channel_clusters(a), cluster_filter.channel_clusters_batched(a))
