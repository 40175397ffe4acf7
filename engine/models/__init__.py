"""The generic model layer: bundles (loading and checking, no pickle), network config, inference,
class choice and the task registry.

``load_bundle(name_or_path)`` returns a ``Bundle`` whose ``predict`` and ``explain`` run on an
``ImageVolume``; ``list_bundles()`` names the shipped and the added bundles
(``engine.models.install`` adds a site's own). These names are loaded on first
use (PEP 562), so importing a light module of this package (``engine.models.classes``) costs no
torch and no MONAI.
"""

from __future__ import annotations

import importlib

_LAZY = {name: "engine.models.bundle" for name in ("Bundle", "BundlePrediction", "load_bundle")}
_LAZY.update({name: "engine.models.metadata" for name in ("list_bundles", "read_metadata")})

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
