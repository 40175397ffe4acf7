"""A content-addressed file store for large results (CAM maps as ``.npy`` bytes).

A blob's name is the sha256 of its bytes: ``root/ab/cdef...<suffix>``. Writing the same bytes
twice stores one file; a write is atomic (temporary file in the same folder, fsync,
``os.replace``), so a crash never leaves a half-written blob under its final name; a read checks
the hash, so a corrupted or replaced file is reported, never silently shown.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path, PurePosixPath

from db.errors import BlobCorrupted, BlobMissing, InvalidInput

_SUFFIX = re.compile(r"(\.[A-Za-z0-9]{1,16}){0,3}")
_BLOB_NAME = re.compile(r"[0-9a-f]{2}/[0-9a-f]{62}(\.[A-Za-z0-9]{1,16}){0,3}")


class BlobStore:
    """Files named by the sha256 of their bytes, under one root folder.

    Args:
        root: the store's folder (created on first ``put``).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def put(self, data: bytes, suffix: str = "") -> tuple[str, str]:
        """Store ``data`` and name it by its hash.

        Args:
            data: the bytes.
            suffix: a file extension such as ".npy" (letters and digits after each dot).

        Returns:
            ``(relative_path, sha256)``; ``relative_path`` uses "/" on every platform and is
            what ``get`` takes back.

        Raises:
            InvalidInput: a suffix that is not a plain extension.
        """
        if not _SUFFIX.fullmatch(suffix):
            raise InvalidInput(f"blob suffix {suffix!r} is not a plain extension like '.npy'")
        digest = hashlib.sha256(data).hexdigest()
        relative = f"{digest[:2]}/{digest[2:]}{suffix}"
        target = self.root / digest[:2] / f"{digest[2:]}{suffix}"
        if target.is_file() and _sha256_of(target) == digest:
            return relative, digest
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=suffix)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return relative, digest

    def path_of(self, relative_path: str) -> Path:
        """The absolute path of a stored blob's name (no check that it exists).

        Raises:
            InvalidInput: the name is not one ``put`` returns (e.g. tries to leave the root).
        """
        if not _BLOB_NAME.fullmatch(relative_path):
            raise InvalidInput(f"{relative_path!r} is not a blob name of the form 'ab/cdef...<suffix>'")
        return self.root.joinpath(*PurePosixPath(relative_path).parts)

    def get(self, relative_path: str, expected_sha256: str) -> bytes:
        """The bytes of a stored blob, checked against the hash recorded for it.

        Args:
            relative_path: as returned by ``put``.
            expected_sha256: as returned by ``put`` (e.g. ``Explanation.map_sha256``).

        Raises:
            BlobMissing: no such file under the root.
            BlobCorrupted: the file's bytes do not hash to ``expected_sha256``.
            InvalidInput: a malformed name.
        """
        path = self.path_of(relative_path)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobMissing(f"{path}: blob is missing from the store at {self.root}") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise BlobCorrupted(f"{path}: sha256 is {actual}, expected {expected_sha256}; the file was altered")
        return data


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
