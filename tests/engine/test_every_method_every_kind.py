"""Every CAM method ``salience explain`` offers runs on every kind of input a clinician brings:
a glioma MRI slice, a histopathology patch, a lung-ultrasound clip, a whole slide.

Each map must be finite, on the image's grid, not constant (the method saw something), and the
class-specific methods must give different maps for different classes.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.imaging import read_image
from engine.models.bundle import load_bundle
from engine.models.inference import method_names

CLASS_AGNOSTIC = {"eigencam"}


@pytest.fixture(scope="module")
def inputs(shared_data):
    """(bundle, volume, item) per kind: one item each keeps Score-CAM and occlusion quick."""
    glioma = read_image(shared_data / "glioma-lgg" / "TCGA_HT_7692_19960724")
    lesion = int(glioma.labels.reshape(glioma.n_slices, -1).sum(axis=1).argmax())
    patch = read_image(shared_data / "histopathology-lc25000" / "lung_scc" / "lungscc1116.jpeg")
    clip = read_image(shared_data / "lung-ultrasound" / "pocus_videos" / "convex" / "Cov-Atlas+(44).gif")
    return {
        "volume": (load_bundle("glioma"), glioma, lesion),
        "patch": (load_bundle("histopathology"), patch, 0),
        "clip": (load_bundle("lung-ultrasound"), clip, 12),
    }


def test_every_method_is_offered():
    assert set(method_names()) == {"cam", "gradcam", "gradcampp", "smoothgradcampp", "xgradcam", "hirescam",
                                   "layercam", "eigencam", "eigengradcam", "cfcam", "scorecam", "occlusion"}
    assert method_names()[0] == "gradcam"


@pytest.mark.parametrize("kind", ["volume", "patch", "clip"])
@pytest.mark.parametrize("method", method_names())
def test_every_method_maps_every_kind_on_its_grid(inputs, kind, method):
    bundle, volume, item = inputs[kind]
    maps = bundle.explain(volume, method=method, classes=[0, len(bundle.class_names) - 1], slices=[item])
    assert maps.shape == (2, 1) + volume.shape[1:]
    assert np.isfinite(maps).all()
    assert np.ptp(maps[1, 0]) > 0, f"{method} gave a constant map on a {kind}"
    if method not in CLASS_AGNOSTIC:
        assert not np.allclose(maps[0], maps[1]), f"{method} gave the same map for two classes on a {kind}"


@pytest.mark.parametrize("method", method_names())
def test_every_method_maps_a_whole_slide(shared_data, tmp_path_factory, method):
    from engine.analysis.slide import analyse_slide
    from tests.engine.analysis.test_slide_analysis import build_slide

    folder = tmp_path_factory.getbasetemp() / "every-method-slide"
    path = folder / "slide.tif"
    if not path.exists():
        folder.mkdir(exist_ok=True)
        build_slide(path, shared_data / "histopathology-lc25000", layout=(("lung_aca", None, "lung_n"),), levels=2)
    result = analyse_slide(load_bundle("histopathology"), path, methods=[method], classes=[0])
    stitched = result.maps[method].maps[0, 0]
    tissue = np.isfinite(stitched)
    assert 0 < tissue.mean() < 1  # tiles on tissue, nothing on the glass between
    assert np.ptp(stitched[tissue]) > 0
