"""CF-CAM's channel clustering on the CPU: numpy DBSCAN, one item at a time.

``engine.explain.cluster_filter.channel_clusters`` runs this for tensors on the CPU and its
batched torch version (``channel_clusters_batched``) on an accelerator. On a CPU, connected
components grown a frontier at a time over one item's few hundred channels cost a third of the
batched version's rounds of min-label propagation over every item's full matrix, and the CPU path
must stay as fast as it was (CF-CAM within 1.15 x inference). Both give the same labels (tests
compare them); the distance matrix is made exactly symmetric here as there, so a pair at exactly
``eps`` is a neighbour both ways.
"""

from __future__ import annotations

import numpy as np
import torch

IMPORTANT = -2  # label of channels kept individually
NOISE = -1  # label of channels DBSCAN leaves out


def _connected_components(adjacency: np.ndarray) -> np.ndarray:
    """Component index ``0..k-1`` of each node of a symmetric boolean adjacency ``(n, n)``,
    grown breadth-first from each node not yet labelled, a whole frontier at a time."""
    labels = np.full(adjacency.shape[0], -1, dtype=np.int64)
    component = 0
    for start in range(adjacency.shape[0]):
        if labels[start] >= 0:
            continue
        members = adjacency[start].copy()
        members[start] = True
        while True:
            grown = members | adjacency[members].any(axis=0)
            if np.array_equal(grown, members):
                break
            members = grown
        labels[members] = component
        component += 1
    return labels


def squared_distances(points) -> np.ndarray:
    """``(n, n)`` float32 squared Euclidean distances: Gram form, exactly symmetric (the smaller of
    the two rounded directions), zero diagonal, never negative."""
    x = torch.as_tensor(points, dtype=torch.float32)
    squared_norms = (x * x).sum(dim=1)
    distances = torch.addmm(squared_norms[:, None] + squared_norms[None, :], x, x.T, alpha=-2.0).clamp_(min=0.0)
    distances = torch.minimum(distances, distances.T)
    return distances.fill_diagonal_(0.0).numpy()


def pairwise_quantile(distances: np.ndarray, q: float) -> float:
    """The ``q`` quantile (``"lower"`` rank) of the off-diagonal entries of a symmetric distance
    matrix with a zero diagonal: sorted, the flattened matrix is the ``n`` zeros followed by each
    pair's distance twice, so the ``j``-th smallest pair sits at position ``n + 2 j``."""
    n = distances.shape[0]
    rank = int(np.floor(q * (n * (n - 1) // 2 - 1)))
    return float(np.partition(distances.ravel(), n + 2 * rank)[n + 2 * rank])


def dbscan_squared(squared: np.ndarray, eps_squared: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels (Ester et al., KDD 1996) from squared distances: clusters ``0..k-1`` of the
    connected core points, a border point joining its nearest core point's cluster, noise -1."""
    n = squared.shape[0]
    labels = np.full(n, NOISE, dtype=np.int64)
    neighbours = squared <= eps_squared
    core = np.flatnonzero(neighbours.sum(axis=1) >= min_samples)
    if core.size == 0:
        return labels
    core_labels = _connected_components(neighbours.take(core, axis=0).take(core, axis=1))
    labels[core] = core_labels
    others = np.setdiff1d(np.arange(n), core, assume_unique=True)
    if others.size:
        to_core = squared.take(others, axis=0).take(core, axis=1)
        border = (to_core <= eps_squared).any(axis=1)
        labels[others[border]] = core_labels[to_core[border].argmin(axis=1)]
    return labels


def channel_clusters_host(
    activations: torch.Tensor, keep_quantile: float = 0.75, eps_quantile: float = 0.25, min_share: float = 0.05
) -> torch.Tensor:
    """Per item, each channel's label (``IMPORTANT``, ``NOISE`` or a cluster), item by item in numpy.

    Same arguments and result as ``engine.explain.cluster_filter.channel_clusters``; ``(B, C)``
    long labels on the CPU.
    """
    flat = activations.detach().flatten(2).float().cpu().numpy()
    out = np.empty(flat.shape[:2], dtype=np.int64)
    for b, channels in enumerate(flat):
        norms = np.sqrt(np.einsum("ij,ij->i", channels, channels))
        important = norms >= np.quantile(norms, keep_quantile)
        rest = channels[~important]
        labels = np.full(channels.shape[0], IMPORTANT, dtype=np.int64)
        if rest.shape[0] >= 2:
            squared = squared_distances(rest)
            eps_squared = max(pairwise_quantile(squared, eps_quantile), 1e-24)
            labels[~important] = dbscan_squared(squared, eps_squared, max(2, int(rest.shape[0] * min_share)))
        else:
            labels[~important] = NOISE
        out[b] = labels
    return torch.from_numpy(out)
