"""The CAM engine: one capture per input, every method computed from it.

``CamCapture`` hooks target layers, runs one forward pass, and takes gradients back to the hooked
activations only. Methods in ``engine.explain.methods`` are pure functions of the captured
activations and gradients; ``explain_all`` computes all of them for all classes from one capture.
Targets (``engine.explain.targets``) say which score is explained. Maps stay raw and signed;
normalisation is explicit
(``engine.explain.summary``).

The names below load on first use (PEP 562): importing a light module of this package
(``engine.explain.summary``) costs no torch, and asking for any of them imports every method
module, so the registry ``METHODS`` is complete whichever name is asked for first.
"""

from __future__ import annotations

import importlib

#: The modules whose names this package exports; all are imported on first use, since the method
#: modules register themselves in ``METHODS`` when imported.
_MODULES = (
    "engine.explain.methods",
    "engine.explain.capture",
    "engine.explain.principal",
    "engine.explain.cluster_filter",
    "engine.explain.all_methods",
    "engine.explain.targets",
)

__all__ = [
    "CamCapture",
    "CamMethod",
    "Capture",
    "ClassLogit",
    "ClassLogits",
    "ClassProbabilities",
    "ClassProbability",
    "ClipVerdict",
    "GRADIENT_METHODS",
    "LayerNotFoundError",
    "METHODS",
    "SINGLE_CAPTURE_METHODS",
    "SlideScore",
    "Target",
    "cf_cam",
    "channel_clusters",
    "class_activation_map",
    "compute_maps",
    "eigen_cam",
    "eigen_grad_cam",
    "explain_all",
    "final_linear_weight",
    "grad_cam",
    "grad_cam_pp",
    "hires_cam",
    "layer_cam",
    "noisy_copies",
    "rectify",
    "resolve_layer",
    "smooth_grad_cam_pp",
    "upsample",
    "xgrad_cam",
]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    modules = [importlib.import_module(m) for m in _MODULES]
    for module in modules:
        if hasattr(module, name):
            value = getattr(module, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")  # pragma: no cover
