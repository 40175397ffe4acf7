"""MONAI model bundles: loading (checked, no pickle), preprocessing, prediction, explanation.

``load_bundle(name_or_path)`` returns a ``Bundle`` whose ``predict`` and ``explain`` run on an
``ImageVolume``; ``list_bundles()`` names the bundles shipped in ``engine/bundles``.
"""

from engine.models.bundle import Bundle, BundlePrediction, list_bundles, load_bundle, read_metadata

__all__ = ["Bundle", "BundlePrediction", "list_bundles", "load_bundle", "read_metadata"]
