"""CAM maps in the content-addressed blob store: written as ``.npy`` bytes with an Explanation
row that keeps their path and hash, read back with the hash checked (never unpickled)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
from sqlalchemy.orm import Session

from db import blobs, runs
from engine.explain.summary import map_summary


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as the bytes of a ``.npy`` file (no pickle)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def load_map(blob_store: blobs.BlobStore, path: str, sha256: str) -> np.ndarray:
    """Read a stored map back, verifying its hash (never unpickling)."""
    return np.load(io.BytesIO(blob_store.get(path, sha256)), allow_pickle=False)


def store_map(
    session: Session,
    blob_store: blobs.BlobStore,
    *,
    prediction_id: int,
    method: str,
    target_layer: str,
    class_index: int,
    array: np.ndarray,
    params: Mapping[str, Any] | None = None,
) -> int:
    """Store one class's ``(N, h, w)`` map of a prediction; returns the Explanation's id."""
    path, sha = blob_store.put(npy_bytes(array), ".npy")
    return runs.add_explanation(
        session, prediction_id=prediction_id, method=method, target_layer=target_layer, class_index=class_index,
        params=dict(params or {}), map_path=path, map_sha256=sha, map_stats=map_summary(array).to_dict(),
    ).id
