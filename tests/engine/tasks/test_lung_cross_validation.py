"""Lung-ultrasound cross-validation: folds by clip and by patient group, the per-class arithmetic,
where the maps point, the frame cache, and ``salience evaluate lung-ultrasound`` on a tiny
synthetic bundle with synthetic out-of-fold predictions."""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from app.cli import EXIT_BAD_INPUT
from app.cli import main as cli_main
from engine.errors import SalienceError
from engine.tasks.lung_ultrasound.cross_validation import assign_folds, cv_file, fold_units
from engine.tasks.lung_ultrasound.data import CLASS_NAMES, FrameSet, Item
from engine.tasks.lung_ultrasound.evaluation import main as evaluate_main
from engine.tasks.lung_ultrasound.evaluation import out_of_fold, scheme_report, sensitivity_specificity
from engine.tasks.lung_ultrasound.frame_cache import select
from engine.tasks.lung_ultrasound.map_regions import depth_fraction, map_shares
from engine.tasks.lung_ultrasound.train import SPEC, fixed_epoch_judge
from engine.tasks.lung_ultrasound.train import main as train_main
from engine.training.bundle_writer import bundle_metadata, write_bundle
from engine.training.loop import FitSettings, seeded_network, training_record

PREFIX = {0: "Cov", 1: "Pneu", 2: "Reg"}


def _items(groups_per_class: int = 6, clips_per_group: tuple[int, ...] = (1, 2, 3)) -> list[Item]:
    """Synthetic clips: each class has groups of 1-3 clips, and one still per class."""
    items = []
    for label in range(3):
        for g in range(groups_per_class):
            size = clips_per_group[g % len(clips_per_group)]
            for c in range(size):
                path = f"pocus_videos/convex/{PREFIX[label]}_g{g}_c{c}.mp4"
                items.append(Item(path, label, True, f"{label}-{g}", "CC BY 4.0", "convex", f"p{label}{g}"))
        items.append(Item(f"pocus_images/convex/{PREFIX[label]}_still.png", label, False, f"{label}-0", "CC BY 4.0", "convex", ""))
    return sorted(items, key=lambda item: item.path)


def test_folds_by_patient_keep_each_group_in_one_fold_and_every_item_once():
    items = _items()
    folds = assign_folds(items, 3, "patient", seed=0)
    assert set(folds) == {item.path for item in items}  # every item exactly once
    fold_of_group: dict[str, int] = {}
    for item in items:
        assert fold_of_group.setdefault(item.group, folds[item.path]) == folds[item.path], f"{item.group} straddles folds"
    assert folds == assign_folds(items, 3, "patient", seed=0)
    assert folds != assign_folds(items, 3, "patient", seed=1)


def test_folds_are_stratified_by_class():
    """Each fold gets about a fold's share of each class's clips: within one unit's size of it."""
    items = _items()
    for scheme, slack in (("clip", 1), ("patient", 3)):
        folds = assign_folds(items, 3, scheme, seed=0)
        for label in range(3):
            counts = Counter(folds[i.path] for i in items if i.is_clip and i.label == label)
            total = sum(counts.values())
            assert set(counts) == {0, 1, 2}
            assert all(abs(n - total / 3) <= slack for n in counts.values()), (scheme, label, counts)
    # By clip, the clips of one patient may land in different folds (the paper's scheme).
    by_clip = assign_folds(items, 3, "clip", seed=0)
    assert any(len({by_clip[i.path] for i in items if i.group == g}) > 1 for g in {i.group for i in items})


def test_fold_units_and_bad_fold_requests_are_one_line_errors():
    items = _items()
    assert [u.group for u in fold_units(items, "clip")] == [i.path for i in items]
    with pytest.raises(SalienceError, match="unknown fold scheme 'frame'"):
        assign_folds(items, 3, "frame")
    with pytest.raises(SalienceError, match="at least 2 folds"):
        assign_folds(items, 1, "clip")
    with pytest.raises(SalienceError, match="without clips of a class"):
        assign_folds(_items(groups_per_class=2, clips_per_group=(1,)), 5, "patient")


def test_sensitivity_and_specificity_per_class_by_hand():
    """Labels 0 0 1 1 2 2, predictions 0 1 1 1 0 2: class 0 is found once of twice (sens 1/2) and
    wrongly named once of four others (spec 3/4); class 1 sens 2/2 spec 3/4; class 2 sens 1/2 spec 4/4."""
    rows = sensitivity_specificity(np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, 0, 2]), 3)
    assert [(r["tp"], r["fn"], r["tn"], r["fp"]) for r in rows] == [(1, 1, 3, 1), (2, 0, 3, 1), (1, 1, 4, 0)]
    assert [r["sensitivity"] for r in rows] == [0.5, 1.0, 0.5]
    assert [r["specificity"] for r in rows] == [0.75, 0.75, 1.0]
    assert math.isnan(sensitivity_specificity(np.array([0]), np.array([0]), 2)[1]["sensitivity"])


def test_depth_and_edge_shares_of_maps():
    region = np.zeros((20, 20), bool)
    region[2:18, 4:16] = True
    depth = depth_fraction(region)
    assert depth[2, 4] == 0 and np.isnan(depth[0, 0]) and depth[17, 10] == pytest.approx(15 / 16)
    uniform = region.astype(float)
    edge_only = region & ~np.pad(np.ones((12, 8), bool), ((4, 4), (6, 6)))
    top = np.zeros((20, 20))
    top[2:4, 4:16] = 1.0
    shares = map_shares(np.stack([uniform, edge_only.astype(float), top, np.zeros((20, 20))]), np.stack([region] * 4), 2.0, bins=4)
    assert shares["edge_energy"][0] == pytest.approx(shares["edge_area"][0])  # an even map: ratio 1
    assert shares["edge_energy"][1] == pytest.approx(1.0)
    assert shares["depth_energy"][2][0] == pytest.approx(1.0) and shares["depth_area"][2].sum() == pytest.approx(1.0)
    assert np.isnan(shares["edge_energy"][3])  # a map without positive energy


def test_select_takes_evenly_spaced_frames_and_renumbers_owners():
    items = tuple(_items()[:3])
    inputs = torch.arange(10, dtype=torch.float32).reshape(10, 1, 1, 1)
    owners = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    frames = FrameSet(inputs, torch.zeros(10, dtype=torch.int64), owners, items, torch.zeros(3, 2, 2, dtype=torch.bool))
    chosen = select(frames, (items[2], items[0]), 2)
    assert chosen.inputs.flatten().tolist() == [7.0, 9.0, 0.0, 3.0]
    assert chosen.owners.tolist() == [0, 0, 1, 1] and chosen.items == (items[2], items[0])
    assert chosen.regions.shape == (2, 2, 2)


def test_a_fixed_epoch_is_kept_whatever_the_validation_says(tmp_path, capsys):
    network_def = {"_target_": "monai.networks.nets.DenseNet", "spatial_dims": 2, "in_channels": 1, "out_channels": 3,
                   "init_features": 2, "growth_rate": 2, "block_config": [2], "bn_size": 2}
    network = seeded_network(network_def, 0)
    val = FrameSet(torch.rand(6, 1, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2]), torch.arange(6), ())
    judge = fixed_epoch_judge(val, 2)
    scores = [judge(network).score for _ in range(3)]
    assert scores == [math.inf, 0.0, math.inf]
    assert train_main(["--data", str(tmp_path), "--out", str(tmp_path / "b"), "--keep-epoch", "13"]) == 1
    assert "--keep-epoch 13: not one of the 12 epochs" in capsys.readouterr().err


# ---- salience evaluate lung-ultrasound on a synthetic bundle ----------------------------------------


def _cv_result(scheme: str, clips: list[Item], rng: np.random.Generator, wrong: set[str]) -> dict:
    """Two folds; each clip 3 frames whose logits favour its class, or (clips in ``wrong``) the next class."""
    folds = {item.path: i % 2 for i, item in enumerate(clips)}
    table = [{"path": c.path, "class": CLASS_NAMES[c.label], "label": c.label, "group": c.group,
              "b_lines": c.label == 0, "consolidations": False, "fold": folds[c.path]} for c in clips]
    region = np.zeros((16, 16), bool)
    region[2:14, 2:14] = True
    frames = {"clip": [], "owner": [], "logits": [], "map_shares": {}}
    runs = []
    for fold in range(2):
        mine = [c for c in clips if folds[c.path] == fold]
        maps = []
        for i, c in enumerate(mine):
            target = (c.label + 1) % 3 if c.path in wrong else c.label
            for _ in range(3):
                logits = rng.normal(0, 0.1, 3)
                logits[target] += 3.0
                frames["owner"].append(len(frames["clip"]) + i)
                frames["logits"].append(logits.tolist())
                m = np.zeros((16, 16))
                m[2:6, 4:12] = 1.0  # the upper part, away from the sides
                maps.append(m)
        frames["clip"] += [c.path for c in mine]
        shares = map_shares(np.stack(maps), np.stack([region] * len(maps)), 2.0)
        for key, value in shares.items():
            frames["map_shares"].setdefault(key, []).extend(value.tolist())
        runs.append({"fold": fold, "temperature": 2.0, "best_epoch": 1, "seconds": 1.0, "cpu_seconds": 1.0})
    return {"scheme": scheme, "folds": 2, "clips": table, "runs": runs, "frames": frames, "seed": 0, "split_seed": 0,
            "epochs": 1, "frames_per_clip": 2, "eval_frames_per_clip": 3, "val_fraction": 0.3, "measured_edge_band": 0.1,
            "seconds_total": 60.0, "cpu_seconds_total": 50.0}


def _data_folder(root: Path, items: list[Item]) -> Path:
    for item in items:
        (root / item.path).parent.mkdir(parents=True, exist_ok=True)
        (root / item.path).write_bytes(b"")
    with (root / "dataset_metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["Filename", "License", "Probe", "Patient ID / Name", "B-lines", "Consolidations"])
        writer.writeheader()
        for item in items:
            writer.writerow({"Filename": Path(item.path).stem, "License": "CC BY 4.0", "Probe": "convex",
                             "Patient ID / Name": item.patient, "B-lines": "1" if item.label == 0 else "0", "Consolidations": "0"})
    return root


def _bundle(out: Path, items: list[Item], seed: int) -> Path:
    network_def = {"_target_": "monai.networks.nets.DenseNet", "spatial_dims": 2, "in_channels": 1, "out_channels": 3,
                   "init_features": 2, "growth_rate": 2, "block_config": [2], "bn_size": 2}
    network = seeded_network(network_def, seed)
    training = training_record(FitSettings(1, seed, 4, 1e-3), 0, 1, frames_per_clip=2, eval_frames_per_clip=3,
                               val_fraction=0.3, torch_threads=1)
    split = {"train": [i.path for i in items[:-3]], "val": [i.path for i in items[-3:]]}
    metadata = bundle_metadata(SPEC, {"upper_percentile": 99.0, "clip_max": 1.5, "edge_band": 0.05}, 1.5, training, split=split)
    metadata["target_layer_grid"] = SPEC.target_layer_grid(network)
    write_bundle(out, metadata, network_def, network.state_dict(), "written by the recipe")
    val_clip = {"n": 3, "correct": 2, "accuracy": 2 / 3, "accuracy_95ci": [0.2, 0.94], "macro_auc": 0.8}
    metrics = {"split": split, "excluded": [], "parameters": 100, "temperature": 1.5, "val_frame_ece": 0.05,
               "val_frame_ece_uncalibrated": 0.2, "groups": {"train": 5, "val": 2}, "frames": {"train": 20, "val": 6},
               "best_epoch": 1, "seconds_loading": 1.0, "seconds_training": 2.0, "cpu_seconds_training": 2.0,
               "seconds_total": 3.0, "val_clips": val_clip, "val_records": None}
    (out / "docs" / "training_metrics.json").write_text(json.dumps(metrics))
    return out


@pytest.fixture()
def synthetic(tmp_path: Path):
    items = _items(groups_per_class=4)
    clips = [i for i in items if i.is_clip]
    wrong = {clips[0].path}  # one COVID-19 clip called bacterial pneumonia
    bundle = _bundle(tmp_path / "bundle", items, seed=0)
    rng = np.random.default_rng(0)
    for scheme in ("clip", "patient"):
        (bundle / cv_file(scheme)).write_text(json.dumps(_cv_result(scheme, clips, rng, wrong)))
    return {"bundle": bundle, "data": _data_folder(tmp_path / "data", items), "clips": clips, "wrong": wrong, "tmp": tmp_path}


def test_evaluate_writes_the_card_from_the_out_of_fold_predictions(synthetic):
    report = evaluate_main(["--bundle", str(synthetic["bundle"]), "--data", str(synthetic["data"])])
    clips = synthetic["clips"]
    covid = sum(c.label == 0 for c in clips)
    s = report["schemes"]["clip"]
    assert s["clip_accuracy"]["count"] == [len(clips) - 1, len(clips)]
    sens = s["per_class"]["COVID-19"]["clips"]["sensitivity"]
    assert sens["pooled"]["count"] == [covid - 1, covid]
    # fold 0 holds the wrong clip: its COVID-19 sensitivity is one short; fold 1 finds all
    fold0 = sum(c.label == 0 for i, c in enumerate(clips) if i % 2 == 0)
    assert sens["folds"] == [pytest.approx((fold0 - 1) / fold0), 1.0]
    assert sens["sd"] == pytest.approx(np.std(sens["folds"], ddof=1))
    spec = s["per_class"]["Bacterial pneumonia"]["clips"]["specificity"]["pooled"]
    assert spec["count"] == [len(clips) - sum(c.label == 1 for c in clips) - 1, len(clips) - sum(c.label == 1 for c in clips)]
    assert s["confusion_clips"][0][1] == 1
    low, high = s["clip_accuracy"]["ci95"]
    assert low < s["clip_accuracy"]["estimate"] < high
    cal = s["calibration"]["frames"]
    assert cal["ece_before"]["estimate"] != cal["ece_after"]["estimate"]
    maps = s["maps"]["findings"]
    assert maps["clips"] == covid and maps["edge_ratio"]["estimate"] < 1 and maps["upper_ratio"]["estimate"] > 1
    card = (synthetic["bundle"] / "docs" / "README.md").read_text()
    assert "0.98 ± 0.04" in card and "split by patient group" in card and "Where the maps point" in card
    assert f"{covid - 1} of {covid}" in card and "CC BY 4.0" in card
    saved = json.loads((synthetic["bundle"] / "docs" / "evaluation.json").read_text())
    assert saved["schemes"]["patient"]["clip_accuracy"] == report["schemes"]["patient"]["clip_accuracy"]


def test_evaluate_gives_ranges_over_seeds(synthetic):
    other = _bundle(synthetic["tmp"] / "seed1", [i for i in _items(groups_per_class=4)], seed=1)
    result = json.loads((synthetic["bundle"] / cv_file("patient")).read_text())
    result["frames"]["logits"] = [[-x for x in row] for row in result["frames"]["logits"]]  # a seed that gets all wrong
    (other / cv_file("patient")).write_text(json.dumps(result))
    report = evaluate_main(["--bundle", str(synthetic["bundle"]), "--data", str(synthetic["data"]), "--compare", str(other),
                            "--out", str(synthetic["tmp"] / "card.md")])
    ranges = report["seed_runs"]["ranges"]
    assert report["seed_runs"]["seeds"] == [0, 1]
    assert ranges["patient:clip_accuracy"][0] < ranges["patient:clip_accuracy"][1]
    assert report["seed_runs"]["runs_per_figure"]["clip:clip_accuracy"] == 1  # seed 1 has no split-by-clip run
    assert "## Seeds" in (synthetic["tmp"] / "card.md").read_text()


def test_out_of_fold_verdicts_use_each_folds_temperature(synthetic):
    result = json.loads((synthetic["bundle"] / cv_file("clip")).read_text())
    oof = out_of_fold(result)
    assert oof["frame_probs"].max() < oof["frame_raw"].max()  # T = 2 softens
    assert np.allclose(oof["clip_probs"].sum(1), 1)
    assert scheme_report(result)["frames"] == 3 * len(result["clips"])


@pytest.mark.parametrize("case, expected", [
    ("missing", "no cross-validation results"),
    ("garbled", "not a cross-validation result"),
    ("task", "is a 'glioma' model, not 'lung-ultrasound'"),
])
def test_bad_input_is_one_line(synthetic, case, expected, capsys):
    bundle = synthetic["bundle"]
    if case == "missing":
        (bundle / cv_file("patient")).unlink()
    elif case == "garbled":
        (bundle / cv_file("clip")).write_text("{not json")
    else:
        bundle = "glioma"
    code = cli_main(["evaluate", "lung-ultrasound", "--bundle", str(bundle), "--data", str(synthetic["data"])])
    err = capsys.readouterr().err.strip()
    assert code == EXIT_BAD_INPUT
    assert expected in err and len(err.splitlines()) == 1 and "Traceback" not in err
