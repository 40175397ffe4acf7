"""The content-addressed blob store: atomic writes, verified reads."""

from __future__ import annotations

import hashlib

import pytest

from db.blobs import BlobStore
from db.errors import BlobCorrupted, BlobMissing, InvalidInput

PAYLOAD = b"\x93NUMPY" + bytes(range(256)) * 8


def test_put_then_get_round_trips_and_names_by_hash(tmp_path) -> None:
    store = BlobStore(tmp_path / "blobs")
    relative, sha = store.put(PAYLOAD, ".npy")
    assert sha == hashlib.sha256(PAYLOAD).hexdigest()
    assert relative == f"{sha[:2]}/{sha[2:]}.npy"
    assert (tmp_path / "blobs" / sha[:2] / f"{sha[2:]}.npy").read_bytes() == PAYLOAD
    assert store.get(relative, sha) == PAYLOAD


def test_same_bytes_are_stored_once_and_no_temporary_files_remain(tmp_path) -> None:
    store = BlobStore(tmp_path)
    first = store.put(PAYLOAD, ".npy")
    second = store.put(PAYLOAD, ".npy")
    other = store.put(PAYLOAD[:-1], ".npy")
    assert first == second and other != first
    assert sorted(p.name.startswith(".tmp-") for p in tmp_path.rglob("*") if p.is_file()) == [False, False]


def test_corruption_is_detected_and_put_repairs_it(tmp_path) -> None:
    store = BlobStore(tmp_path)
    relative, sha = store.put(PAYLOAD, ".npy")
    path = store.path_of(relative)
    path.write_bytes(PAYLOAD[:-1] + b"\x00")
    with pytest.raises(BlobCorrupted, match=f"sha256 is [0-9a-f]{{64}}, expected {sha}"):
        store.get(relative, sha)
    assert store.put(PAYLOAD, ".npy") == (relative, sha)
    assert store.get(relative, sha) == PAYLOAD


def test_missing_and_malformed_names_are_clear_errors(tmp_path) -> None:
    store = BlobStore(tmp_path)
    sha = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(BlobMissing, match="blob is missing"):
        store.get(f"{sha[:2]}/{sha[2:]}.npy", sha)
    with pytest.raises(InvalidInput, match="is not a blob name"):
        store.get("../../etc/passwd", sha)
    with pytest.raises(InvalidInput, match="not a plain extension"):
        store.put(b"x", "/../evil")
