"""How each CAM method is named to a reader: one table beside the method registries.

The registries (``engine.explain.methods.METHODS``, ``engine.explain.perturbation.PERTURBATION_METHODS``)
key methods by short identifiers that the command line, the database and the bundles use
("gradcampp"); people read the names the papers gave them ("Grad-CAM++"). This module imports no
torch, so the window can name a method without loading the model layer.
"""

from __future__ import annotations

#: Identifier -> the name its paper uses.
DISPLAY_NAMES: dict[str, str] = {
    "cam": "CAM",
    "gradcam": "Grad-CAM",
    "gradcampp": "Grad-CAM++",
    "smoothgradcampp": "Smooth Grad-CAM++",
    "xgradcam": "XGrad-CAM",
    "hirescam": "HiResCAM",
    "layercam": "LayerCAM",
    "eigencam": "Eigen-CAM",
    "eigengradcam": "Eigen-Grad-CAM",
    "cfcam": "CF-CAM",
    "scorecam": "Score-CAM",
    "occlusion": "Occlusion",
}

#: Methods that explain by perturbing the input: one forward pass per mask or window, so slow.
PERTURBATION_NAMES = frozenset({"scorecam", "occlusion"})


def display_name(method: str) -> str:
    """The name a reader sees for a method identifier; an unknown identifier is shown as given."""
    return DISPLAY_NAMES.get(method, method)
