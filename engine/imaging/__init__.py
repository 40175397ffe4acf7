"""Imaging I/O: every reader returns one ``ImageVolume`` (see ``engine.imaging.volume``)."""

from engine.imaging.open import read_image
from engine.imaging.volume import ImageVolume

__all__ = ["ImageVolume", "read_image"]
