"""The per-item host implementations (the clustering is now shipped for the CPU path as
``engine.explain.cluster_host``, imported here) of CF-CAM's clustering and of Eigen-CAM's projection that
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
from engine.explain.cluster_host import channel_clusters_host as channel_clusters
from engine.explain.cluster_host import dbscan_squared, squared_distances


def dbscan(points: torch.Tensor, eps: float, min_samples: int) -> torch.Tensor:
    if points.shape[0] == 0:
        return torch.full((0,), NOISE, dtype=torch.long)
    squared = squared_distances(points.detach().cpu())
    return torch.from_numpy(dbscan_squared(squared, float(eps) ** 2, min_samples))


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
