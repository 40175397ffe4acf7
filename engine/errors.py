"""Errors the engine raises for bad input. Each names the file and what is wrong in one line."""

from __future__ import annotations

from pathlib import Path


class SalienceError(Exception):
    """Base of the errors a user sees as one clear line (never a traceback)."""


class ImageReadError(SalienceError):
    """A file or folder could not be read as an image.

    Args:
        path: the file or folder that was being read.
        reason: what is wrong, in words a clinician can act on ("truncated pixel data").
    """

    def __init__(self, path: str | Path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class BundleError(SalienceError):
    """A model bundle is missing, malformed, or fails its checksum."""

    def __init__(self, bundle: str | Path, reason: str):
        self.bundle = str(bundle)
        self.reason = reason
        super().__init__(f"bundle {self.bundle}: {reason}")
