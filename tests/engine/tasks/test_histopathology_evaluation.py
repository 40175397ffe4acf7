"""``salience evaluate histopathology``: the pyramid and mosaic builders, the figures, the card."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from app.cli import EXIT_BAD_INPUT, main
from engine.errors import SalienceError
from engine.imaging.open import read_image
from engine.imaging.pyramid import halve, write_pyramid
from engine.imaging.slide import SlideReader
from engine.models import load_bundle
from engine.tasks.histopathology.data import CLASS_NAMES, read_and_split
from engine.tasks.histopathology.evaluation import cell_scores, patch_report, slide_heatmap
from engine.tasks.histopathology.model_card import model_card
from engine.tasks.histopathology.mosaic import (
    BENIGN_CLASS,
    Mosaic,
    build_mosaic,
    dice,
    patch_pool,
    tile_counts,
    tumour_layout,
)
from engine.tasks.histopathology.train import train_histopathology
from engine.training.evaluate import EVALUATION_FILE
from tests.engine.tasks.test_histopathology import TINY_NET, lc25000  # noqa: F401 (fixture)

CELL = 32


def _solid_patches(folder: Path, per_class: int) -> dict[int, list[Path]]:
    """PNG patches of one flat colour each (class k: red channel 40 + 60 k, green the patch's number)."""
    pool: dict[int, list[Path]] = {}
    for k in range(3):
        pool[k] = []
        for i in range(per_class):
            path = folder / f"c{k}-{i}.png"
            Image.fromarray(np.full((CELL, CELL, 3), (40 + 60 * k, 10 * i, 90), np.uint8)).save(path)
            pool[k].append(path)
    return pool


def test_pyramid_levels_halve_and_carry_the_pixel_size(tmp_path: Path):
    rgb = np.random.default_rng(0).integers(0, 256, (300, 520, 3), dtype=np.uint8)
    path = write_pyramid(tmp_path / "p.tif", rgb, mpp=0.25, levels=3)
    with SlideReader(path) as slide:
        assert slide.levels == 3 and slide.dimensions == ((520, 300), (260, 150), (130, 75))
        assert slide.mpp == pytest.approx((0.25, 0.25)) and slide.downsamples == pytest.approx((1, 2, 4))
        np.testing.assert_array_equal(slide.read_region(0, (0, 0), (520, 300)), rgb)
        np.testing.assert_array_equal(slide.read_region(1, (0, 0), (260, 150)), halve(rgb))
    assert halve(np.array([[[0] * 3, [1] * 3], [[2] * 3, [5] * 3]], np.uint8))[0, 0, 0] == 2  # (0+1+2+5+2)//4
    with pytest.raises(SalienceError, match="needs \\(h, w, 3\\) uint8 RGB"):
        write_pyramid(tmp_path / "bad.tif", rgb[..., 0], mpp=0.5)
    with pytest.raises(SalienceError, match="cannot make 12 levels"):
        write_pyramid(tmp_path / "bad.tif", rgb, mpp=0.5, levels=12)


def test_mosaic_is_a_pyramid_whose_cells_hold_the_patches_it_says(tmp_path: Path):
    pool = _solid_patches(tmp_path, per_class=8)
    layout = np.array([[2, 2, 2, 2], [2, 0, 0, 2], [2, 0, 0, 2]])
    mosaic = build_mosaic(tmp_path / "m.tif", layout, pool, np.random.default_rng(1), mpp=0.5, margin=1, levels=2)
    assert mosaic.tumour.sum() == 4 and mosaic.cell == CELL
    assert len(set(mosaic.sources.ravel())) == layout.size  # no patch twice
    with SlideReader(mosaic.path) as slide:
        assert slide.levels == 2 and slide.dimensions[0] == (6 * CELL, 5 * CELL)
        for (r, c), k in np.ndenumerate(layout):
            x, y, w, h = mosaic.cell_box(r, c)
            cell = slide.read_region(0, (x, y), (w, h))
            expected = np.asarray(Image.open(tmp_path / mosaic.sources[r, c]).convert("RGB"))
            np.testing.assert_array_equal(cell, expected)
            assert mosaic.sources[r, c].startswith(f"c{k}-")
        glass = slide.read_region(0, (0, 0), (6 * CELL, CELL))
        assert glass.min() > 220
    with pytest.raises(SalienceError, match="needs 10 patches of class 2, the pool has 8"):
        build_mosaic(tmp_path / "n.tif", np.full((2, 5), 2), pool, np.random.default_rng(1))


def test_tumour_layout_is_one_seeded_rectangle_of_one_tumour_class_inside_benign():
    layouts = [tumour_layout(6, 8, np.random.default_rng(s)) for s in range(20)]
    np.testing.assert_array_equal(layouts[3], tumour_layout(6, 8, np.random.default_rng(3)))
    for layout in layouts:
        rows, cols = np.nonzero(layout != BENIGN_CLASS)
        height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
        assert 2 <= height <= 5 and 2 <= width <= 7 and len(rows) == height * width
        assert len(np.unique(layout[rows, cols])) == 1 and layout[rows[0], cols[0]] in (0, 1)
    assert len({int(layout[layout != BENIGN_CLASS][0]) for layout in layouts}) == 2
    with pytest.raises(SalienceError, match="too small: at least 3 x 3"):
        tumour_layout(2, 8, np.random.default_rng(0))


def test_dice_and_tile_counts_of_a_hand_example():
    truth = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], bool)
    hot = np.array([[1, 1, 1], [0, 0, 0], [0, 0, 0]], bool)
    counts = tile_counts(hot, truth)
    assert counts == {"tp": 2, "fp": 1, "fn": 1, "tn": 5}
    assert dice(counts) == pytest.approx(2 * 2 / (3 + 3))
    assert dice(tile_counts(np.zeros((2, 2)), np.zeros((2, 2)))) == 1.0
    assert dice(tile_counts(np.ones((2, 2)), np.zeros((2, 2)))) == 0.0


def test_cell_scores_read_each_cell_centre_of_a_coarser_heatmap():
    """A 2 x 3 mosaic of 40-px cells with a 1-cell margin (160 x 200 px) on a 16 x 20 heatmap."""
    classes = np.array([[0, 2, 2], [2, 2, 1]])
    mosaic = Mosaic(Path("unused.tif"), classes, np.full(classes.shape, "x"), cell=40, margin=1, mpp=0.5)
    heatmap = np.full((16, 20), np.nan)
    for (r, c), _ in np.ndenumerate(classes):
        heatmap[4 * (r + 1) : 4 * (r + 2), 4 * (c + 1) : 4 * (c + 2)] = 0.1 * (3 * r + c)
    heatmap[8:12, 12:16] = np.nan  # the tissue detector left out cell (1, 2)
    scores = cell_scores(heatmap, (160, 200), mosaic)
    np.testing.assert_allclose(scores[0], [0.0, 0.1, 0.2])
    np.testing.assert_allclose(scores[1, :2], [0.3, 0.4])
    assert np.isnan(scores[1, 2])


def test_patch_report_counts_by_hand_and_temperature_changes_only_calibration():
    labels = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    logits = np.eye(3)[[0, 1, 1, 1, 2, 2, 0, 0]] * 3.0  # two mistakes: 0 -> 1, 2 -> 0
    groups = np.array([0, 0, 1, 2, 3, 3, 4, 5])
    sharp, soft = (patch_report(labels, logits, groups, t) for t in (0.5, 2.0))
    assert sharp["accuracy"]["count"] == [6, 8] and sharp["groups"] == 6
    assert sharp["confusion"] == [[2, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert sharp["per_class"][CLASS_NAMES[0]]["sensitivity"]["count"] == [2, 3]
    assert sharp["per_class"][CLASS_NAMES[0]]["specificity"]["count"] == [4, 5]  # item 6 (class 2) called 0
    assert sharp["per_class"][CLASS_NAMES[1]]["specificity"]["count"] == [5, 6]
    low, high = sharp["accuracy"]["ci95"]
    assert low < 0.75 < high and sharp["macro_auc"]["ci95"][0] <= sharp["macro_auc"]["estimate"] <= 1.0
    assert sharp["calibration"]["ece_before"] == soft["calibration"]["ece_before"]
    assert sharp["calibration"]["ece_after"]["estimate"] != soft["calibration"]["ece_after"]["estimate"]
    assert sharp["accuracy"] == soft["accuracy"] and sharp["confusion"] == soft["confusion"]


@pytest.fixture(scope="module")
def tiny_bundle(lc25000: Path, tmp_path_factory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("tiny") / "bundle"
    train_histopathology(lc25000, out, epochs=1, seed=2, network_def=TINY_NET, batch_size=16, per_class=40)
    return out


def test_the_recipe_writes_a_card_from_its_held_back_figures(tiny_bundle: Path):
    card = (tiny_bundle / "docs" / "README.md").read_text()
    report = json.loads((tiny_bundle / EVALUATION_FILE).read_text())
    assert "Near-copy groups and split" in card and "95% CI" in card and "Not run for this card" in card
    assert report["items"] == len(load_bundle(tiny_bundle).metadata["split"]["test"]) and report["slides"] is None


def test_evaluate_writes_the_card_from_held_back_patches_and_slides(tiny_bundle: Path, lc25000: Path,  # noqa: F811
                                                                    tmp_path: Path, capsys):
    """The mosaics hold only held-back patches, none of the recomputed training part; the card and
    report are written by the command; a compared run gives each headline figure a range."""
    argv = ["evaluate", "histopathology", "--bundle", str(tiny_bundle), "--data", str(lc25000),
            "--mosaics", "2", "--grid", "3", "3", "--compare", str(tiny_bundle)]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    bundle = load_bundle(tiny_bundle)
    held_back = set(bundle.metadata["split"]["test"])
    grouped = read_and_split(lc25000, per_class=40, split_seed=0)
    used = {name for layout in report["slides"]["layouts"] for name in np.ravel(layout["sources"])}
    assert report["split"]["mosaic_patches"] == len(used) > 0
    assert used <= held_back and not used & set(grouped.names("train")) and not used & set(grouped.names("val"))
    assert report["split"]["mosaic_patches_in_train_or_val"] == 0
    slides = report["slides"]
    assert slides["mosaics"] == 2 and slides["tiles"] == 18
    assert slides["tp"] + slides["fp"] + slides["fn"] + slides["tn"] == 18
    assert slides["dice"]["estimate"] == pytest.approx(dice({k: slides[k] for k in ("tp", "fp", "fn", "tn")}))
    assert report["items"] == len(held_back) and sum(map(sum, report["confusion"])) == len(held_back)
    ranges = report["seed_runs"]["ranges"]
    assert ranges["accuracy"][0] == ranges["accuracy"][1] == report["accuracy"]["estimate"]
    card = (tiny_bundle / "docs" / "README.md").read_text()
    assert "## Slide heatmap check" in card and "Dice of hot tiles" in card and "## Seed to seed" in card
    assert "Near-copy groups and split" in card and "Data and licence" in card and "may still be optimistic" in card
    assert json.loads((tiny_bundle / EVALUATION_FILE).read_text())["slides"]["dice"] == slides["dice"]


def test_the_slide_heatmap_is_the_tile_probability_of_tumour(tiny_bundle: Path, lc25000: Path, tmp_path: Path):  # noqa: F811
    bundle = load_bundle(tiny_bundle)
    pool = patch_pool(lc25000, bundle.metadata["split"]["test"])
    layout = np.array([[2, 2, 2], [2, 1, 1], [2, 1, 1]])
    mosaic = build_mosaic(tmp_path / "m.tif", layout, pool, np.random.default_rng(0))
    heatmap, slide_shape = slide_heatmap(bundle, mosaic.path)
    scores = cell_scores(heatmap, slide_shape, mosaic)
    for (r, c), name in np.ndenumerate(mosaic.sources):
        patch = next(p for k in pool for p in pool[k] if p.name == name)
        probabilities = bundle.predict(read_image(patch)).probabilities[0]
        assert scores[r, c] == pytest.approx(probabilities[0] + probabilities[1], abs=1e-4)


@pytest.mark.parametrize(
    ("arguments", "reason"),
    [
        (["--grid", "2", "3"], "too small: at least 3 x 3"),
        (["--mosaics", "1", "--grid", "30", "30"], "patches of class"),
        (["--data", "{missing}"], "histopathology data folder not found"),
        (["--bundle", "glioma"], "is a 'glioma' model"),
        (["--bundle", "{othersplit}"], "differ from the split recomputed"),
        (["--mosaics", "-1"], "--mosaics must be 0 or more"),
    ],
)
def test_bad_evaluations_end_in_one_line(arguments, reason, tiny_bundle: Path, lc25000: Path,  # noqa: F811
                                         tmp_path: Path, capsys):
    other = tmp_path / "other"
    other.mkdir()
    for part in ("configs", "models", "docs"):
        for f in (tiny_bundle / part).iterdir():
            (other / part).mkdir(exist_ok=True)
            (other / part / f.name).write_bytes(f.read_bytes())
    metadata = json.loads((other / "configs" / "metadata.json").read_text())
    metadata["split"]["test"] = metadata["split"]["test"][1:]
    (other / "configs" / "metadata.json").write_text(json.dumps(metadata))
    paths = {"missing": tmp_path / "missing", "othersplit": other}
    argv = [a.format(**paths) for a in arguments]
    if "--bundle" not in argv:
        argv += ["--bundle", str(tiny_bundle)]
    if "--data" not in argv:
        argv += ["--data", str(lc25000)]
    assert main(["evaluate", "histopathology", "--out", str(tmp_path / "card.md"), *argv]) == EXIT_BAD_INPUT
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("[")]  # not progress
    assert len(err) == 1 and reason in err[0], err


def test_shipped_card_is_the_one_salience_evaluate_wrote():
    """The shipped card is exactly what the card writer makes of the shipped report: never edited by hand."""
    bundle = load_bundle("histopathology")
    report = json.loads((bundle.path / EVALUATION_FILE).read_text())
    training = json.loads((bundle.path / "docs" / "training_metrics.json").read_text())
    network_def = json.loads((bundle.path / "configs" / "inference.json").read_text())["network_def"]
    assert report["weights_sha256"] == bundle.weights_sha256 and report["items"] == len(bundle.metadata["split"]["test"])
    assert bundle.model_card.read_text() == model_card(bundle.metadata, network_def, report, training)
    assert report["accuracy"]["estimate"] >= 0.95 and report["slides"]["mosaics"] >= 5
    assert report["split"]["mosaic_patches_in_train_or_val"] == 0
    assert report["seed_runs"]["ranges"]["accuracy"][0] >= 0.95
