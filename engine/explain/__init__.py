"""The CAM engine: one capture per input, every method computed from it.

``CamCapture`` hooks target layers, runs one forward pass, and takes gradients back to the hooked
activations only. Methods in ``engine.explain.methods`` are pure functions of the captured
activations and gradients; ``explain_all`` computes all of them for all classes from one capture.
Targets (``engine.explain.targets``) say which score is explained. Maps stay raw and signed;
normalisation is explicit.
"""

from engine.explain.all_methods import SINGLE_CAPTURE_METHODS, compute_maps, explain_all
from engine.explain.capture import CamCapture, Capture, LayerNotFoundError, noisy_copies, resolve_layer
from engine.explain.cluster_filter import cf_cam, channel_clusters
from engine.explain.methods import (
    GRADIENT_METHODS,
    METHODS,
    CamMethod,
    class_activation_map,
    final_linear_weight,
    grad_cam,
    grad_cam_pp,
    hires_cam,
    layer_cam,
    rectify,
    smooth_grad_cam_pp,
    upsample,
    xgrad_cam,
)
from engine.explain.principal import eigen_cam, eigen_grad_cam
from engine.explain.targets import (
    ClassLogit,
    ClassLogits,
    ClassProbabilities,
    ClassProbability,
    ClipVerdict,
    SlideScore,
    Target,
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
