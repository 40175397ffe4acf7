"""Eigen-CAM and EigenGrad-CAM: maps from the first principal direction of a layer's channels.

A singular vector's sign is arbitrary, so a raw projection can come out negated from one image
to the next. Here the sign is fixed: the map is oriented to correlate positively with the
evidence it summarises (the channel sum of the activations for Eigen-CAM, the HiResCAM map
``sum_c g_c A_c`` for EigenGrad-CAM). Inputs are ``(B, C, *spatial)``, outputs ``(B, *spatial)``,
any number of spatial dimensions.
"""

from __future__ import annotations

import torch


#: Squarings of the normalised Gram matrix on a GPU: its power ``2**36`` leaves a second
#: eigenvalue within ``1e-9`` (relative) of the first below ``e**-69`` of it; a gap that small
#: leaves the direction itself undetermined to ``1e-7`` in float64 anyway.
SQUARINGS = 36


def _top_eigenpairs_by_squaring(gram: torch.Tensor, squarings: int = SQUARINGS) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest eigenvalue and its unit eigenvector of symmetric positive semi-definite ``(B, n, n)``.

    Repeated squaring (power iteration in doubling steps): ``P <- P @ P / trace``, which
    converges to the projector on the first eigenvector, whose column with the largest
    diagonal entry is that vector; two power steps on ``gram`` polish it. Only batched matrix
    products: no per-matrix solver calls and no host synchronisation, which is what a GPU wants
    (CUDA's ``eigh`` runs one solver call per matrix above 32 x 32). A zero matrix gives a zero
    vector and value.

    Returns:
        ``(values (B,), vectors (B, n))``.
    """
    n = gram.shape[-1]

    def normalised(matrix: torch.Tensor) -> torch.Tensor:
        trace = matrix.diagonal(dim1=1, dim2=2).sum(dim=1)
        return matrix / torch.where(trace > 0, trace, torch.ones_like(trace)).reshape(-1, 1, 1)

    power = normalised(gram)
    for _ in range(squarings):
        power = normalised(power @ power)
    column = power.diagonal(dim1=1, dim2=2).argmax(dim=1)
    vector = power.gather(2, column.reshape(-1, 1, 1).expand(-1, n, 1))
    for _ in range(2):
        vector = gram @ vector
        vector = vector / vector.norm(dim=1, keepdim=True).clamp(min=torch.finfo(gram.dtype).tiny)
    value = (vector * (gram @ vector)).sum(dim=(1, 2))
    return value, vector.squeeze(2)


def _top_eigenpairs(gram: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Largest eigenvalue and eigenvector of each matrix of ``gram`` ``(B, n, n)``.

    On the CPU LAPACK's ``eigh`` (fastest there); elsewhere repeated squaring (batched matrix
    products only). The two agree to float64 rounding wherever the first eigenvalue is apart
    from the second (tests compare them).
    """
    if gram.device.type == "cpu":
        values, vectors = torch.linalg.eigh(gram)
        return values[:, -1], vectors[:, :, -1]
    return _top_eigenpairs_by_squaring(gram)


def _first_component_projection(features: torch.Tensor) -> torch.Tensor:
    """Project each position's channel vector onto the first right singular vector.

    With ``M`` the positions x channels matrix, the projection ``M v1`` equals ``s1 u1``; it is
    read off the first eigenvector of the smaller Gram matrix (``M M^T`` or ``M^T M``, in
    float64), which is far cheaper than a full SVD when channels outnumber positions. The whole
    batch at once, on the features' device.

    Args:
        features: ``(B, C, *spatial)``.

    Returns:
        ``(B, S)`` projections, ``S`` the number of positions (sign not yet fixed).
    """
    matrix = features.flatten(2).transpose(1, 2).double()  # (B, S, C): positions are observations
    if matrix.shape[1] <= matrix.shape[2]:
        value, vector = _top_eigenpairs(matrix @ matrix.transpose(1, 2))
        top = vector * value.clamp(min=0).sqrt().unsqueeze(1)
    else:
        _, vector = _top_eigenpairs(matrix.transpose(1, 2) @ matrix)
        top = (matrix @ vector.unsqueeze(2)).squeeze(2)
    return top.to(features.dtype)


def orient_like(projection: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Flip each row of ``projection`` ``(B, S)`` so it correlates positively with ``reference``.

    The sign of the centred covariance decides; when either is constant over positions (one
    position, or a flat map) the sign of the plain dot product decides; if both vanish the row
    is left as it is.
    """
    p = projection - projection.mean(dim=1, keepdim=True)
    r = reference - reference.mean(dim=1, keepdim=True)
    covariance = (p * r).sum(dim=1)
    scale = p.norm(dim=1) * r.norm(dim=1)
    dot = (projection * reference).sum(dim=1)
    decisive = covariance.abs() > 1e-6 * scale
    sign = torch.where(decisive, torch.sign(covariance), torch.sign(dot))
    sign = torch.where(sign == 0, torch.ones_like(sign), sign)
    return projection * sign.unsqueeze(1)


def eigen_cam(activations: torch.Tensor, gradients: torch.Tensor | None = None) -> torch.Tensor:
    """Eigen-CAM: the activations projected on their first principal direction, sign fixed.

    Muhammad & Yeasin, "Eigen-CAM: Class Activation Map using Principal Components", IJCNN 2020:
    the activation matrix (positions x channels) is factorised by SVD and projected on the first
    right singular vector (the SVD of the activation matrix itself, uncentred, as the paper writes
    it; pytorch-grad-cam centres the channels first). The
    result does not depend on the class; ``gradients`` is accepted and ignored so the method has
    the same signature as the rest of the family.
    """
    projection = _first_component_projection(activations)
    reference = activations.sum(dim=1).flatten(1)
    return orient_like(projection, reference).reshape((activations.shape[0],) + tuple(activations.shape[2:]))


def eigen_grad_cam(activations: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
    """EigenGrad-CAM: first principal direction of ``gradients * activations``, sign fixed.

    The class-specific variant of Eigen-CAM (Muhammad & Yeasin, IJCNN 2020) popularised by
    pytorch-grad-cam: the SVD is taken of the element-wise product of gradients and activations,
    and the projection is oriented to correlate positively with the HiResCAM map
    ``sum_c g_c A_c`` (the class evidence).
    """
    product = gradients * activations
    projection = _first_component_projection(product)
    reference = product.sum(dim=1).flatten(1)
    return orient_like(projection, reference).reshape((activations.shape[0],) + tuple(activations.shape[2:]))
