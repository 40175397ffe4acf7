"""The CAM engine: one capture per input, every method computed from it.

``CamCapture`` hooks target layers, runs one forward pass, and takes gradients back to the hooked
activations only. Methods in ``engine.explain.methods`` are pure functions of the captured
activations and gradients. Maps stay raw and signed; normalisation is explicit.
"""

from engine.explain.capture import CamCapture, Capture, resolve_layer
from engine.explain.methods import GRADIENT_METHODS, grad_cam, upsample

__all__ = ["CamCapture", "Capture", "GRADIENT_METHODS", "grad_cam", "resolve_layer", "upsample"]
