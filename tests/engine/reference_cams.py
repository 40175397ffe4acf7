"""The per-item host implementations of CF-CAM's clustering and of Eigen-CAM's projection that
the batched on-device ones replaced (test code only: the yardstick the new ones must equal).

Copied from ``engine/explain/cluster_filter.py`` and ``engine/explain/principal.py`` as they
stood before the batching (commit 960b045): numpy DBSCAN with a Python loop over items, and the
batched ``torch.linalg.eigh`` of the smaller Gram matrix.

One change: the distance matrix is made exactly symmetric (the smaller of ``d[i, j]`` and
``d[j, i]``), as the batched version does. The matrix product rounds ``a.b`` and ``b.a`` apart
now and then, and the pair that defines ``eps`` (the quantile is one of the distances) was then
a neighbour in one direction only: with few channels that split a two-channel cluster into a
cluster and a noise channel.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from engine.explain.cluster_filter import IMPORTANT, NOISE, gaussian_smooth


def _connected_components(adjacency: np.ndarray) -> np.ndarray:
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


def _squared_distances(points) -> np.ndarray:
    x = torch.as_tensor(points, dtype=torch.float32)
    squared_norms = (x * x).sum(dim=1)
    distances = torch.addmm(squared_norms[:, None] + squared_norms[None, :], x, x.T, alpha=-2.0).clamp_(min=0.0)
    distances = torch.minimum(distances, distances.T)  # the one change, see the module docstring
    return distances.fill_diagonal_(0.0).numpy()


def _pairwise_quantile(distances: np.ndarray, q: float) -> float:
    n = distances.shape[0]
    rank = int(np.floor(q * (n * (n - 1) // 2 - 1)))
    return float(np.partition(distances.ravel(), n + 2 * rank)[n + 2 * rank])


def _dbscan_squared(squared: np.ndarray, eps_squared: float, min_samples: int) -> np.ndarray:
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


def dbscan(points: torch.Tensor, eps: float, min_samples: int) -> torch.Tensor:
    if points.shape[0] == 0:
        return torch.full((0,), NOISE, dtype=torch.long)
    return torch.from_numpy(_dbscan_squared(_squared_distances(points.detach().cpu()), float(eps) ** 2, min_samples))


def channel_clusters(activations, keep_quantile=0.75, eps_quantile=0.25, min_share=0.05) -> torch.Tensor:
    flat = activations.detach().flatten(2).float().cpu().numpy()
    out = np.empty(flat.shape[:2], dtype=np.int64)
    for b, channels in enumerate(flat):
        norms = np.sqrt(np.einsum("ij,ij->i", channels, channels))
        important = norms >= np.quantile(norms, keep_quantile)
        rest = channels[~important]
        labels = np.full(channels.shape[0], IMPORTANT, dtype=np.int64)
        if rest.shape[0] >= 2:
            squared = _squared_distances(rest)
            eps_squared = max(_pairwise_quantile(squared, eps_quantile), 1e-24)
            labels[~important] = _dbscan_squared(squared, eps_squared, max(2, int(rest.shape[0] * min_share)))
        else:
            labels[~important] = NOISE
        out[b] = labels
    return torch.from_numpy(out)


def cf_cam(activations, gradients, clusters=None, sigma=1.0) -> torch.Tensor:
    if clusters is None:
        clusters = channel_clusters(activations)
    weights = torch.zeros(activations.shape[:2], dtype=gradients.dtype, device=gradients.device)
    flat_gradients = gradients.flatten(2)
    for b in range(activations.shape[0]):
        labels = clusters[b].to(gradients.device)
        important = labels == IMPORTANT
        weights[b, important] = flat_gradients[b, important].mean(dim=1)
        n_clusters = int(labels.max()) + 1 if labels.numel() else 0
        if n_clusters <= 0:
            continue
        member = labels >= 0
        membership = F.one_hot(labels[member], n_clusters).T.to(gradients.dtype)
        cluster_means = membership @ flat_gradients[b, member] / membership.sum(dim=1, keepdim=True)
        smoothed = gaussian_smooth(cluster_means.reshape((n_clusters,) + tuple(gradients.shape[2:])), sigma)
        weights[b, member] = smoothed.flatten(1).mean(dim=1)[labels[member]]
    shape = tuple(weights.shape) + (1,) * (activations.ndim - 2)
    return (weights.reshape(shape) * activations).sum(dim=1)


def first_component_projection(features: torch.Tensor) -> torch.Tensor:
    matrix = features.flatten(2).transpose(1, 2).double()
    if matrix.shape[1] <= matrix.shape[2]:
        values, vectors = torch.linalg.eigh(matrix @ matrix.transpose(1, 2))
        top = vectors[:, :, -1] * values[:, -1].clamp(min=0).sqrt().unsqueeze(1)
    else:
        _, vectors = torch.linalg.eigh(matrix.transpose(1, 2) @ matrix)
        top = (matrix @ vectors[:, :, -1:]).squeeze(-1)
    return top.to(features.dtype)
