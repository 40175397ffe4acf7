"""``salience explain`` on a whole slide (.npy and .png) and a patch overlay PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.headless import explain
from app.cli import main
from engine.errors import SalienceError
from engine.imaging.open import read_image
from engine.models import load_bundle
from tests.engine.analysis.test_slide_analysis import CELL, build_slide

#: One adenocarcinoma cell, glass, one squamous cell carcinoma cell.
LAYOUT = (("lung_aca", None, "lung_scc"),)


@pytest.fixture(scope="module")
def slide_path(shared_data: Path, tmp_path_factory) -> Path:
    lc25000 = shared_data / "histopathology-lc25000"
    if not lc25000.is_dir():
        pytest.skip(f"{lc25000} is missing")
    return build_slide(tmp_path_factory.mktemp("cli") / "slide.tif", lc25000, layout=LAYOUT, levels=2).path


def test_cli_writes_the_stitched_map_on_the_thumbnail_grid(slide_path: Path, tmp_path: Path, capsys):
    out = tmp_path / "map.npy"
    assert main(["explain", "--bundle", "histopathology", "--class", "Adenocarcinoma", str(slide_path), "-o", str(out)]) == 0
    payload = json.loads(capsys.readouterr().out)
    cam = np.load(out)
    assert cam.shape == (CELL, 3 * CELL)  # the slide fits the thumbnail: its grid is level 0
    assert np.isfinite(cam[:, :CELL]).all() and np.isfinite(cam[:, 2 * CELL :]).all()
    assert np.isnan(cam[:, CELL : 2 * CELL]).all()  # glass: no tile, no map
    assert payload["class"] == "Adenocarcinoma" and payload["tiles"] == 2 and payload["layer"] == "class_layers.relu"
    assert set(payload["slide_score"]) == {"Adenocarcinoma", "Squamous cell carcinoma", "Benign"}
    assert sum(payload["slide_score"].values()) == pytest.approx(1.0, abs=1e-5)
    top = payload["top_tiles"]
    assert len(top) == 2 and top[0]["probability"] >= top[1]["probability"] and {t["col0"] for t in top} == {0, 2 * CELL}
    assert payload["stats"]["max"] == pytest.approx(float(np.nanmax(cam)), rel=1e-5)


def test_png_overlay_colours_tissue_and_leaves_glass_alone(slide_path: Path, tmp_path: Path):
    volume = read_image(slide_path)
    try:
        out = tmp_path / "overlay.png"
        payload = explain(slide_path, "histopathology", "gradcam", out, None)
        thumbnail = np.moveaxis(volume.array[:, 0], 0, 2)
    finally:
        volume.extras["slide"].close()
    png = np.asarray(Image.open(out))
    assert png.shape == thumbnail.shape == (CELL, 3 * CELL, 3)
    np.testing.assert_array_equal(png[:, CELL : 2 * CELL], thumbnail[:, CELL : 2 * CELL])
    tissue_changed = (png[:, :CELL] != thumbnail[:, :CELL]).any(axis=2).mean() + (png[:, 2 * CELL :] != thumbnail[:, 2 * CELL :]).any(axis=2).mean()
    assert tissue_changed > 0.2
    assert payload["output"] == str(out) and payload["shape"] == [CELL, 3 * CELL, 3]


def test_all_classes_npy_holds_one_map_per_class(slide_path: Path, tmp_path: Path, capsys):
    out = tmp_path / "all.npy"
    assert main(["explain", "--bundle", "histopathology", "--all-classes", "--method", "layercam", str(slide_path), "-o", str(out)]) == 0
    assert np.load(out).shape == (3, CELL, 3 * CELL)
    assert json.loads(capsys.readouterr().out)["class"] == "all"


def test_bad_output_suffix_exits_with_status_2(slide_path: Path, tmp_path: Path, capsys):
    assert main(["explain", "--bundle", "histopathology", str(slide_path), "-o", str(tmp_path / "map.txt")]) == 2
    assert "map.txt" in capsys.readouterr().err
    with pytest.raises(SalienceError, match=r"\.npy \(raw\) or \.png"):
        explain(slide_path, "histopathology", "gradcam", tmp_path / "m.nii.gz")
    with pytest.raises(SalienceError, match="not available for whole slides"):
        explain(slide_path, "histopathology", "gradcam", tmp_path / "m.npy", with_quality=True)


def test_a_single_patch_is_written_as_an_overlay_png(shared_data: Path, tmp_path: Path):
    patch = next((shared_data / "histopathology-lc25000" / "lung_scc").iterdir())
    volume = read_image(patch)
    out = tmp_path / "patch.png"
    bundle = load_bundle("histopathology")
    payload = explain(patch, "histopathology", "gradcam", out)  # the most likely class
    png = np.asarray(Image.open(out))
    original = np.moveaxis(volume.array[:, 0], 0, 2)
    assert png.shape == original.shape == (224, 224, 3)
    cam = bundle.explain(volume, classes=[bundle.class_names.index(payload["class"])])[0, 0]
    assert cam.max() > 0
    changed = (png != original).any(axis=2)
    assert not changed[cam <= 0].any()  # negative evidence is not drawn
    assert changed.mean() > 0.5 * (cam > 0.1 * cam.max()).mean()  # clear positive evidence is
    assert sum(payload["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)


def test_predict_on_a_slide_scores_its_tissue_tiles_not_its_thumbnail(slide_path: Path, capsys):
    assert main(["predict", "--bundle", "histopathology", str(slide_path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["item_axis"] == "tile" and payload["n_items"] == 2  # two tissue cells, glass skipped
    rows = np.array(payload["probabilities"])
    assert rows.shape == (2, 3)
    aca, scc = payload["classes"].index("Adenocarcinoma"), payload["classes"].index("Squamous cell carcinoma")
    boxes = payload["tile_boxes_level0"]
    left, right = (0, 1) if boxes[0][1] < boxes[1][1] else (1, 0)
    assert rows[left].argmax() == aca and rows[right].argmax() == scc
    assert payload["slide_scores"]["Adenocarcinoma"] == pytest.approx(rows[:, aca].mean(), abs=1e-5)
    assert payload["slide_scores_rule"] == "mean tile probability over tissue tiles"  # the second figure
    # The verdict: two tumour tiles of two (the minimum is 2): a finding, named with the tile counts.
    assert payload["verdict_tiles"] == {"tissue_tiles": 2, "minimum_for_a_finding": 2, "finding_present": True,
                                        "called": {"Adenocarcinoma": 1, "Squamous cell carcinoma": 1, "Benign": 0}}
    assert payload["verdict"] == {"Adenocarcinoma": 0.5, "Squamous cell carcinoma": 0.5, "Benign": 0.0}
    assert payload["verdict_class"] in payload["verdict_label"] and payload["verdict_class"] != "Benign"
    assert payload["verdict_label"].endswith(" in 1 of 2 tissue tiles (50%) (also "
                                             f"{({'Adenocarcinoma', 'Squamous cell carcinoma'} - {payload['verdict_class']}).pop()} in 1)")
