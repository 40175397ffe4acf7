"""Case analysis: predictions and maps of a volume, a clip or a slide from one capture per batch.

``analyse_case(volume, bundle, methods)`` returns a ``CaseAnalysis``; ``add_methods`` adds maps
to it (gradient-family methods from the kept capture, with no forward pass); ``check_map``
measures one of its maps (faithfulness, localisation, sanity). These names load on first use
(PEP 562).
"""

from __future__ import annotations

import importlib

_LAZY = {
    "analyse_case": "engine.analysis.case",
    "add_methods": "engine.analysis.case",
    "CaseAnalysis": "engine.analysis.result",
    "CaseVerdict": "engine.analysis.result",
    "MapSet": "engine.analysis.result",
    "SlideDetails": "engine.analysis.result",
    "CAPTURE_BUDGET_BYTES": "engine.analysis.result",
    "SHOWN": "engine.analysis.items",
    "MapQuality": "engine.analysis.quality",
    "check_map": "engine.analysis.quality",
    "Uncertainty": "engine.analysis.uncertainty",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
