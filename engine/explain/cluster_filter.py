"""CF-CAM: Grad-CAM with density-clustered channels and smoothed cluster gradients.

He, Pan & Yao, "CF-CAM: Cluster Filter Class Activation Mapping for Reliable Gradient-Based
Interpretability", arXiv:2504.00060, 2025.

What was verified and what was not. The paper's full text (its equations) was not available to
us; this implementation follows its abstract and the authors' public reference code
(github.com/jerryp-hfut/CF-CAM, ``cfcam.py``), re-implemented here in torch (no scikit-learn),
for any number of spatial dimensions, for a whole batch at once on the input's device:

1. Hierarchical importance: channels whose activation L2 norm is at or above the 75th
   percentile are "important" and keep their own Grad-CAM weight (mean gradient).
2. Density-aware clustering: the other channels are clustered by DBSCAN on their flattened
   activations (Euclidean), with ``eps`` the 25th percentile of their pairwise distances (taken
   at the lower rank; the reference code interpolates) and ``min_samples`` 5 % of them (at
   least 2). DBSCAN's noise channels are discarded (weight 0).
3. Cluster-conditioned gradient filtering: each cluster's mean gradient map is smoothed with a
   Gaussian filter (the paper's abstract says Gaussian; the reference code uses a bilateral
   filter); every channel of the cluster gets the smoothed map's mean as its weight.
4. The map is ``sum_c w_c A_c`` over important and clustered channels.

Deliberate departures: the reference code passes the channel weights through a softmax before
combining. We do not: a softmax of gradient means (typically ~1e-3) is almost uniform, which
makes the map nearly class-agnostic and always positive; we keep raw signed weights like the
rest of the family. The smoothing width ``sigma`` (in layer positions) is ours: the abstract
gives none. Clustering depends only on the activations, so ``channel_clusters`` can be computed
once and reused for every class.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from engine.explain.cluster_host import IMPORTANT, NOISE  # the one definition of the labels

_FAR = 1e30  # a float32 penalty far above any channel index


def _squared_distances(points: torch.Tensor) -> torch.Tensor:
    """``(B, n, n)`` float32 squared Euclidean distances between the rows of ``points`` ``(B, n, d)``.

    Gram form ``|a|^2 + |b|^2 - 2 a.b`` (one batched matrix product), clamped at zero, with an
    exact zero diagonal, and exactly symmetric: a matrix product may round ``a.b`` and ``b.a``
    apart, and a pair at exactly ``eps`` (the quantile is one of the distances) would then be
    a neighbour one way only.
    """
    x = points.float()
    squared_norms = (x * x).sum(dim=2)
    distances = squared_norms.unsqueeze(2) + squared_norms.unsqueeze(1)
    distances.baddbmm_(x, x.transpose(1, 2), alpha=-2.0).clamp_(min=0.0)
    distances = torch.minimum(distances, distances.transpose(1, 2))
    distances.diagonal(dim1=1, dim2=2).zero_()
    return distances


@functools.lru_cache(maxsize=4)
def _upper_triangle(n: int, device: torch.device) -> torch.Tensor:
    """Flat indices of the entries above the diagonal of an ``(n, n)`` matrix, row by row."""
    i, j = torch.triu_indices(n, n, offset=1, device=device)
    return i * n + j


def _pair_quantile(squared: torch.Tensor, count: torch.Tensor, q: float, uniform: bool = False) -> torch.Tensor:
    """Per item, the ``q`` quantile (``"lower"`` rank) of the squared distances between its points.

    Item ``b``'s points are its first ``count[b]``; its other entries must be +inf. The rank
    ``floor(q (m - 1))`` among an item's ``m`` pairs differs between items with different counts;
    one selection over the upper triangles serves the whole batch all the same: item ``b``
    gets ``K - rank_b`` extra zeros, ``K`` the rank of a full item, so the ``K``-th smallest entry
    is each item's own order statistic. A lower-rank quantile is an order statistic, so the
    quantile of squared distances is the square of the quantile of distances. Items with fewer
    than two points give 0.

    Args:
        squared: ``(B, n, n)`` squared distances.
        count: ``(B,)`` long, points per item.
        q: quantile in ``[0, 1]``.
        uniform: every item has ``n`` points (then no padding is needed).

    Returns:
        ``(B,)`` squared distances.
    """
    batch, n = squared.shape[:2]
    if n < 2:
        return squared.new_zeros((batch,))
    pairs = squared.flatten(1).index_select(1, _upper_triangle(n, squared.device))
    top = math.floor(q * (pairs.shape[1] - 1))
    if not uniform:
        valid_pairs = count * (count - 1) // 2
        rank = torch.floor(q * (valid_pairs - 1).clamp(min=0).double()).long()
        below = torch.arange(top, device=squared.device).unsqueeze(0) < (top - rank).unsqueeze(1)
        pairs = torch.cat([pairs, torch.where(below, 0.0, float("inf")).to(pairs.dtype)], dim=1)
    # The largest of the top+1 smallest is the top-th order statistic; on the CPU this costs
    # three quarters of a kthvalue, on CUDA both are radix selections.
    kth = pairs.topk(top + 1, dim=1, largest=False, sorted=False).values.amax(dim=1)
    return torch.where(count >= 2, kth, 0.0)


def _component_roots(links: torch.Tensor, members: torch.Tensor) -> torch.Tensor:
    """The smallest index in each member's connected component of ``links`` among members.

    Minimum-label propagation with pointer jumping: every member starts as its own root, takes
    the smallest root among its linked members, then follows roots to their roots until the
    chains are flat; rounds repeat until nothing changes (two or three for the dense
    neighbourhoods DBSCAN makes; one host read per round, for the whole batch). Labels are
    exact small integers in float32, so a round is one broadcast add of a far-away penalty on
    missing links and one ``amin``.

    Args:
        links: ``(B, n, n)`` symmetric bool adjacency (links to non-members are ignored).
        members: ``(B, n)`` bool; non-members get ``n``.

    Returns:
        ``(B, n)`` long.
    """
    batch, n = members.shape
    if n == 0:
        return torch.zeros((batch, 0), dtype=torch.long, device=members.device)
    penalty = links.logical_not().to(torch.float32).mul_(_FAR)  # cheaper than a where of two scalars
    candidates = torch.empty_like(penalty)  # reused each round: fresh large buffers cost page faults on the CPU
    # Roots with one extra slot ``n`` that points to itself, so non-members jump in place.
    roots = torch.where(members, torch.arange(n, device=members.device), n)
    roots = torch.cat([roots, roots.new_full((batch, 1), n)], dim=1)
    while True:
        neighbour = torch.add(penalty, roots[:, :n].unsqueeze(1).float(), out=candidates).amin(dim=2).long()
        lowered = torch.where(members, torch.minimum(roots[:, :n], neighbour), n)
        lowered = torch.cat([lowered, roots[:, n:]], dim=1)
        for _ in range(max(1, math.ceil(math.log2(n + 1)))):
            lowered = lowered.gather(1, lowered)
        if torch.equal(lowered, roots):
            return roots[:, :n]
        roots = lowered


def _dbscan_batched(
    squared: torch.Tensor, valid: torch.Tensor, eps_squared: torch.Tensor, min_samples: torch.Tensor
) -> torch.Tensor:
    """DBSCAN labels of every item's valid points (see ``dbscan``), invalid points ``NOISE``.

    Args:
        squared: ``(B, n, n)`` squared distances, +inf between a valid and an invalid point.
        valid: ``(B, n)`` bool.
        eps_squared: ``(B,)`` squared radius per item.
        min_samples: ``(B,)`` neighbours (self included) that make a core point, per item.

    Returns:
        ``(B, n)`` long: clusters ``0..k-1`` numbered in the order of their smallest core index.
    """
    neighbours = squared <= eps_squared.reshape(-1, 1, 1)
    counts = neighbours.view(torch.uint8).sum(dim=2, dtype=torch.int32)  # a bool sum is 25x slower
    core = valid & (counts >= min_samples.unsqueeze(1))
    roots = _component_roots(neighbours, core)
    n = valid.shape[1]
    is_root = core & (roots == torch.arange(n, device=valid.device))
    numbers = is_root.long().cumsum(dim=1) - 1
    labels = torch.where(core, numbers.gather(1, roots.clamp(max=n - 1)), NOISE)
    others = valid & ~core
    if not bool(others.any()):  # one host read: most layers leave no border candidates
        return labels
    off_core = torch.where(core, 0.0, float("inf")).to(squared.dtype)
    nearest_squared, nearest = torch.add(squared, off_core.unsqueeze(1)).min(dim=2)
    border = others & (nearest_squared <= eps_squared.unsqueeze(1))
    return torch.where(border, labels.gather(1, nearest), labels)


def dbscan(points: torch.Tensor, eps: float, min_samples: int, distances: torch.Tensor | None = None) -> torch.Tensor:
    """DBSCAN labels for ``points`` ``(n, d)``: clusters ``0..k-1``, noise ``-1``.

    Ester et al., "A Density-Based Algorithm for Discovering Clusters in Large Spatial Databases
    with Noise", KDD 1996. A point is a core point when at least ``min_samples`` points (itself
    included) lie within ``eps``; clusters are the connected groups of core points, numbered in
    the order of their first core point; a non-core point within ``eps`` of a core point joins
    the cluster of its nearest core point (the first of equally near ones).

    Args:
        points: ``(n, d)``.
        eps: neighbourhood radius.
        min_samples: neighbours (self included) that make a core point.
        distances: the ``(n, n)`` Euclidean distances if already computed.

    Returns:
        ``(n,)`` long labels on the points' device.
    """
    if distances is None:
        squared = _squared_distances(points.detach().unsqueeze(0))
    else:
        squared = distances.detach().square().unsqueeze(0)
    n = squared.shape[1]
    valid = torch.ones((1, n), dtype=torch.bool, device=squared.device)
    eps_squared = torch.full((1,), float(eps) ** 2, dtype=squared.dtype, device=squared.device)
    count = torch.full((1,), int(min_samples), device=squared.device)
    return _dbscan_batched(squared, valid, eps_squared, count)[0]


def channel_clusters(
    activations: torch.Tensor, keep_quantile: float = 0.75, eps_quantile: float = 0.25, min_share: float = 0.05
) -> torch.Tensor:
    """Per item, each channel's label: ``IMPORTANT``, ``NOISE`` or a cluster index.

    On the CPU item by item in numpy (``engine.explain.cluster_host``, faster there), elsewhere
    the whole batch at once on the device (``channel_clusters_batched``); the labels are the same.
    Arguments and result as ``channel_clusters_batched``.
    """
    if activations.device.type == "cpu":
        from engine.explain.cluster_host import channel_clusters_host

        return channel_clusters_host(activations, keep_quantile, eps_quantile, min_share)
    return channel_clusters_batched(activations, keep_quantile, eps_quantile, min_share)


def channel_clusters_batched(
    activations: torch.Tensor, keep_quantile: float = 0.75, eps_quantile: float = 0.25, min_share: float = 0.05
) -> torch.Tensor:
    """Per item, each channel's label: ``IMPORTANT``, ``NOISE`` or a cluster index.

    The whole batch at once on the activations' device: one batched distance matrix over all
    channels, with each item's important channels masked out of its DBSCAN.

    Args:
        activations: ``(B, C, *spatial)``.
        keep_quantile: channels with an activation norm at or above this quantile are important.
        eps_quantile: DBSCAN ``eps`` is this quantile of the other channels' pairwise distances.
        min_share: DBSCAN ``min_samples`` as a share of the other channels (at least 2).

    Returns:
        ``(B, C)`` long labels on the activations' device.
    """
    flat = activations.detach().flatten(2).float()
    batch, channels = flat.shape[:2]
    norms = (flat * flat).sum(dim=2).sqrt()
    important = norms >= torch.quantile(norms, keep_quantile, dim=1, keepdim=True)
    count = (~important).sum(dim=1)
    # Each item's other channels first, in their order, so every matrix below is only as wide
    # as the largest such group (one host read for the batch).
    order = torch.sort(important.to(torch.uint8), dim=1, stable=True).indices
    fewest, width = torch.stack(torch.aminmax(count)).tolist() if batch else (0, 0)
    kept = order[:, :width]
    valid = torch.arange(width, device=flat.device).unsqueeze(0) < count.unsqueeze(1)
    clustered = valid & (count >= 2).unsqueeze(1)
    squared = _squared_distances(flat.gather(1, kept.unsqueeze(2).expand(-1, -1, flat.shape[2])))
    if fewest < width:  # items with fewer other channels: their extra rows and columns are no one's
        squared.masked_fill_(~(valid.unsqueeze(2) & valid.unsqueeze(1)), float("inf"))
    eps_squared = _pair_quantile(squared, count, eps_quantile, uniform=fewest == width).clamp(min=1e-24)
    min_samples = torch.floor(count.double() * min_share).long().clamp(min=2)
    compact = _dbscan_batched(squared, clustered, eps_squared, min_samples)
    labels = torch.full((batch, channels), IMPORTANT, dtype=torch.long, device=flat.device)
    return labels.scatter_(1, kept, torch.where(valid, compact, IMPORTANT))


def _smoothing_matrix(length: int, sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``(length, length)`` matrix of the truncated Gaussian along one axis, borders replicated.

    Row ``i`` holds the kernel weights that ``i``'s neighbourhood puts on each position, with the
    weights of positions beyond an edge moved onto the edge.
    """
    radius = max(1, int(2 * sigma + 0.5))
    offsets = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    positions = torch.arange(length, device=device).unsqueeze(1)
    sources = (positions + torch.arange(-radius, radius + 1, device=device).unsqueeze(0)).clamp(0, length - 1)
    matrix = torch.zeros((length, length), dtype=dtype, device=device)
    return matrix.scatter_add_(1, sources, kernel.expand(length, -1).contiguous())


def gaussian_smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian filter over every axis but the first of ``maps`` ``(n, *spatial)``.

    The kernel reaches ``2 sigma`` rounded to whole positions and borders replicate the edge
    values (scipy's ``gaussian_filter(..., mode="nearest", truncate=2.0)``). Each axis is one
    matrix product with a small banded matrix, cheap for the few positions a layer has.
    """
    if sigma <= 0:
        return maps
    out = maps
    for axis in range(1, maps.ndim):
        matrix = _smoothing_matrix(maps.shape[axis], sigma, maps.dtype, maps.device)
        out = (out.movedim(axis, -1) @ matrix.T).movedim(-1, axis)
    return out


def cf_cam(
    activations: torch.Tensor,
    gradients: torch.Tensor,
    clusters: torch.Tensor | None = None,
    sigma: float = 1.0,
) -> torch.Tensor:
    """CF-CAM raw signed map (see the module docstring for the method and its provenance).

    Args:
        activations: ``(B, C, *spatial)``.
        gradients: ``(B, C, *spatial)`` for one target.
        clusters: ``(B, C)`` labels from ``channel_clusters(activations)``; computed if None.
        sigma: Gaussian width, in layer positions, for smoothing each cluster's mean gradient.

    Returns:
        ``(B, *spatial)``.
    """
    if clusters is None:
        clusters = channel_clusters(activations)
    labels = clusters.to(gradients.device)
    batch = labels.shape[0]
    flat = gradients.flatten(2)
    member = labels >= 0
    # Each cluster's mean gradient map, for every item at once: channel c adds into slot
    # labels[c]; important and noise channels go to a spare slot that is dropped. The number of
    # slots is the batch's largest cluster count (one host read for the batch).
    slots_used = max(int(labels.max()) + 1, 0) if labels.numel() else 0
    slots = torch.where(member, labels, slots_used)
    sums = flat.new_zeros((batch, slots_used + 1, flat.shape[2]))
    sums.scatter_add_(1, slots.unsqueeze(2).expand_as(flat), flat)
    counts = flat.new_zeros((batch, slots_used + 1)).scatter_add_(1, slots, torch.ones_like(flat[:, :, 0]))
    means = sums[:, :slots_used] / counts[:, :slots_used].clamp(min=1).unsqueeze(2)
    smoothed = gaussian_smooth(means.reshape((batch * slots_used,) + tuple(gradients.shape[2:])), sigma)
    cluster_weights = F.pad(smoothed.reshape(batch, slots_used, flat.shape[2]).mean(dim=2), (0, 1))
    weights = torch.where(member, cluster_weights.gather(1, labels.clamp(min=0)), 0.0)
    weights = torch.where(labels == IMPORTANT, flat.mean(dim=2), weights)
    shape = tuple(weights.shape) + (1,) * (activations.ndim - 2)
    return (weights.reshape(shape) * activations).sum(dim=1)
