"""``salience evaluate``: the figures, their intervals, and the card, on synthetic patients and a tiny bundle."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from app.cli import EXIT_BAD_INPUT, main
from engine.models import load_bundle
from engine.models.network_config import build_network
from engine.tasks.glioma.data import read_case
from engine.tasks.glioma.selection import RULE, SHIPPED_LABEL, TEST_SEEN_BEFORE, choose
from engine.training.bundle_writer import write_bundle
from engine.training.evaluate import (
    EVALUATION_FILE,
    CaseScores,
    group_bootstrap,
    localise,
    seed_ranges,
    summarise,
)
from engine.training.evaluation import roc_auc
from tests.engine.test_bundle_loading import TINY_NET

PATIENTS = {"train": ["CASE_T"], "val": ["CASE_V", "CASE_W"], "test": ["CASE_A", "CASE_B", "CASE_C"]}


def _write_patient(root: Path, name: str, seed: int) -> None:
    """A 6-slice 32 x 32 head (a disk) with a bright FLAIR lesion and its mask on slices 2-4."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:32, :32]
    head = (np.hypot(yy - 16, xx - 16) < 13).astype(np.float32)
    lesion = np.zeros((32, 32), bool)
    cy, cx = rng.integers(10, 22, size=2)
    lesion[cy - 2 : cy + 3, cx - 2 : cx + 3] = True
    folder = root / name
    folder.mkdir(parents=True)
    for sequence in ("t1", "flair", "t1ce", "seg"):
        volume = np.zeros((32, 32, 6), np.float32)
        for k in range(6):
            if sequence == "seg":
                volume[:, :, k] = lesion if 2 <= k <= 4 else 0
            else:
                volume[:, :, k] = head * (80 + 10 * rng.random((32, 32)))
                if sequence == "flair" and 2 <= k <= 4:
                    volume[:, :, k][lesion] = 200
        dtype = np.uint8 if sequence == "seg" else np.float32
        nib.save(nib.Nifti1Image(volume.astype(dtype), np.eye(4)), str(folder / f"{name}_{sequence}.nii.gz"))


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("glioma-synthetic")
    for i, name in enumerate(p for part in PATIENTS.values() for p in part):
        _write_patient(root, name, seed=i)
    return root


def _tiny_bundle(folder: Path, seed: int, split: dict | None = None) -> Path:
    torch.manual_seed(seed)
    network = build_network(TINY_NET, "test")
    metadata = {
        "name": "glioma", "version": "0.0.1", "task": "glioma", "description": "A tiny untrained test network.",
        "class_names": ["no FLAIR abnormality", "FLAIR abnormality"],
        "input_channels": ["t1", "flair", "t1ce"], "input_size": [32, 32],
        "target_layer": "class_layers.relu",
        "preprocessing": {"function": "engine.tasks.glioma.preprocess.glioma_slices", "upper_percentile": 99.5,
                          "clip_max": 2.0, "brain_margin": 2},
        "calibration": {"temperature": 1.5, "calibrated": True},
        "data_license": "synthetic",
        "pytorch_version": torch.__version__, "monai_version": "test",
        "training": {"seed": seed, "split_seed": 0, "epochs": 1, "best_epoch": 1, "batch_size": 4,
                     "learning_rate": 0.01, "torch_threads": 1, "options": {"guidance": 0.5}},
        "split": split or PATIENTS,
        "target_layer_grid": [8, 8],
    }
    return write_bundle(folder, metadata, TINY_NET, network.state_dict(), "placeholder card of the test")


def test_localise_scores_each_map_against_its_mask_and_organ():
    maps = np.zeros((2, 4, 4))
    maps[0, 0, 0], maps[0, 3, 3] = 3.0, 1.0  # peak inside, a quarter of the energy outside
    maps[1, 3, 3] = 2.0  # peak outside
    masks = np.zeros((2, 4, 4), bool)
    masks[:, 0, :2] = True
    region = np.zeros((2, 4, 4), bool)
    region[:, :2, :] = True  # the organ: the top half (8 pixels), which holds the mask
    hits, energy, share = localise(maps, masks, region)
    assert hits.tolist() == [True, False]
    assert energy.tolist() == pytest.approx([0.75, 0.0])
    assert share.tolist() == pytest.approx([2 / 8, 2 / 8])
    _, _, whole_slice = localise(maps, masks, None)
    assert whole_slice.tolist() == pytest.approx([2 / 16, 2 / 16])
    _, no_evidence, _ = localise(-np.ones((1, 4, 4)), masks[:1], None)
    assert math.isnan(no_evidence[0])


def test_group_bootstrap_is_seeded_and_brackets_the_estimate():
    values = [0.2, 0.9, 0.8, 0.95, 0.7, 0.85]
    low, high = group_bootstrap(values, lambda v: float(np.mean(v)), seed=3)
    assert (low, high) == group_bootstrap(values, lambda v: float(np.mean(v)), seed=3)
    assert low < np.mean(values) < high and 0.2 <= low and high <= 0.95
    assert group_bootstrap([0.5], lambda v: float(np.mean(v))) == (0.5, 0.5)
    assert all(math.isnan(x) for x in group_bootstrap([], lambda v: 0.0))
    assert all(math.isnan(x) for x in group_bootstrap([1, 2], lambda v: math.nan))


def _case(name: str, labels: list[int], positive_logit: list[float], hits: list[bool]) -> CaseScores:
    logits = np.stack([np.zeros(len(labels)), np.array(positive_logit)], axis=1)
    n = len(hits)
    return CaseScores(name, np.array(labels), logits, np.array(hits), np.full(n, 0.5), np.full(n, 0.1))


def test_summarise_averages_the_pointing_game_per_patient_then_over_patients():
    cases = [
        _case("A", [1, 1, 0], [2.0, 1.0, -1.0], [True, True]),  # 2 of 2 hits
        _case("B", [1, 1, 1, 1, 0, 0], [1.0, -2.0, 3.0, 1.0, -3.0, 2.0], [False] * 4),  # 0 of 4
    ]
    report = summarise(cases, positive_class=1, temperature=1.0)
    loc = report["localisation"]
    assert loc["pointing_game"]["estimate"] == pytest.approx(0.5)  # per patient, then averaged
    assert loc["pointing_game_items"] == pytest.approx(2 / 6)  # pooled slices would say 1/3
    assert loc["energy_ratio"]["estimate"] == pytest.approx(5.0)  # 0.5 of the energy in 0.1 of the brain
    assert report["sensitivity"]["count"] == [5, 6] and report["specificity"]["count"] == [2, 3]
    low, high = report["sensitivity"]["ci95"]
    assert low < 5 / 6 < high
    labels = np.array([1, 1, 0, 1, 1, 1, 1, 0, 0])
    scores = np.array([2.0, 1.0, -1.0, 1.0, -2.0, 3.0, 1.0, -3.0, 2.0])
    assert report["auc"]["estimate"] == pytest.approx(roc_auc(labels, scores))
    assert [c["pointing_game"] for c in report["per_case"]] == [1.0, 0.0]


def test_temperature_changes_calibration_but_not_the_ranking():
    cases = [_case("A", [1, 0, 1, 0], [4.0, -4.0, 4.0, 3.0], [True, True])]
    sharp, soft = summarise(cases, 1, 1.0), summarise(cases, 1, 4.0)
    assert sharp["auc"]["estimate"] == soft["auc"]["estimate"]
    assert sharp["calibration"]["ece_before"] == soft["calibration"]["ece_before"]
    assert soft["calibration"]["ece_after"] != sharp["calibration"]["ece_after"]


def test_seed_ranges_give_each_figure_of_every_run_and_its_spread():
    def report(seed, auc, pointing):
        figure = lambda x: {"estimate": x}  # noqa: E731
        return {"seed": seed, "weights_sha256": f"{seed}" * 4, "auc": figure(auc), "accuracy": figure(0.9),
                "sensitivity": figure(0.8), "specificity": figure(0.95),
                "localisation": {"pointing_game": figure(pointing), "energy_ratio": figure(4.0)},
                "calibration": {"ece_after": 0.02}}

    ranges = seed_ranges([report(0, 0.95, 0.81), report(1, 0.93, 0.86), report(2, 0.96, 0.79)])
    assert [r["seed"] for r in ranges["runs"]] == [0, 1, 2]
    assert ranges["ranges"]["auc"] == [0.93, 0.96] and ranges["ranges"]["pointing_game"] == [0.79, 0.86]


def test_read_case_gives_labels_masks_and_the_brain_inside_the_head(data: Path):
    case = read_case(data, "CASE_A")
    assert case.labels.tolist() == [0, 0, 1, 1, 1, 0]
    assert case.masks.shape == case.region.shape == (6, 32, 32)
    assert case.masks.sum() == 3 * 25
    # The head is a disk of radius 13; the brain is that disk less a 6-pixel rim.
    assert case.region[:, 16, 16].all() and case.region[:, 16, 10].all()
    assert not case.region[:, 16, 5].any() and not case.region[:, 16, 1].any()


def test_evaluate_prints_the_report_and_writes_the_card_from_the_held_back_patients(data: Path, tmp_path: Path, capsys):
    bundle_dir = _tiny_bundle(tmp_path / "tiny", seed=0)
    other = _tiny_bundle(tmp_path / "tiny-seed1", seed=1)
    card = tmp_path / "card.md"
    code = main(["evaluate", "glioma", "--bundle", str(bundle_dir), "--data", str(data), "--out", str(card),
                 "--compare", str(other)])
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["part"] == "test" and report["cases"] == PATIENTS["test"]
    assert report["items"] == 18 and report["positives"] == 9
    assert report["localisation"]["items"] == 9 and report["localisation"]["cases"] == 3
    assert 0.0 <= report["localisation"]["pointing_game"]["estimate"] <= 1.0
    # The figures are those of the bundle's own predictions and maps.
    bundle = load_bundle(bundle_dir)
    cases = [read_case(data, name) for name in PATIENTS["test"]]
    scores = np.concatenate([bundle.predict(c.volume).probabilities[:, 1] for c in cases])
    labels = np.concatenate([c.labels for c in cases])
    assert report["auc"]["estimate"] == pytest.approx(roc_auc(labels, scores))
    first = cases[0]
    maps = bundle.explain(first.volume, classes=[1], slices=[2, 3, 4])[0]
    hits = [bool(first.masks[s].flat[int(np.argmax(m))]) for m, s in zip(maps, [2, 3, 4])]
    assert report["per_case"][0]["pointing_game"] == pytest.approx(np.mean(hits))
    # Two seeds: every headline figure comes with its range; the card says so.
    assert [run["seed"] for run in report["seed_runs"]["runs"]] == [0, 1]
    text = card.read_text()
    assert "written by `salience evaluate glioma`" in text and "Seed to seed" in text
    assert f"| ROC AUC, slice level | {report['auc']['estimate']:.3f}" in text
    assert "`CASE_C`" in text
    # --out leaves the bundle's own card and report alone.
    assert (bundle_dir / "docs" / "README.md").read_text() == "placeholder card of the test"
    assert not (bundle_dir / EVALUATION_FILE).exists()


def test_evaluate_without_out_rewrites_the_bundles_card_and_report(data: Path, tmp_path: Path, capsys):
    bundle_dir = _tiny_bundle(tmp_path / "tiny", seed=0)
    lever = _tiny_bundle(tmp_path / "lever", seed=2)
    assert main(["evaluate", "glioma", "--bundle", str(bundle_dir), "--data", str(data),
                 "--lever", f"no guidance={lever}"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["label"] for row in report["levers"]] == ["this bundle", "no guidance"]
    assert report["levers"][1]["setting"] == "guidance=0.5, epochs=1"
    stored = json.loads((bundle_dir / EVALUATION_FILE).read_text())
    assert stored["auc"] == report["auc"] and "card" not in stored
    assert "Which levers mattered (validation patients)" in (bundle_dir / "docs" / "README.md").read_text()


def test_the_card_states_how_the_bundle_was_chosen_and_keeps_the_earlier_levers(data: Path, tmp_path: Path, capsys):
    """With the shipped bundle as a lever row, the card applies the declared rule to the validation
    rows and says which candidate it picks; an earlier report's lever rows get a table of their own."""
    bundle_dir = _tiny_bundle(tmp_path / "tiny", seed=0)
    shipped = _tiny_bundle(tmp_path / "shipped", seed=1)
    candidate = _tiny_bundle(tmp_path / "candidate", seed=2)
    earlier = tmp_path / "earlier.json"
    rows = [{"label": "this bundle", "setting": "guidance=0.5", "auc": 0.9, "pointing_game": 0.5, "energy_ratio": 2.0},
            {"label": "no guidance", "setting": "guidance=0.0", "auc": 0.91, "pointing_game": 0.125, "energy_ratio": 1.0}]
    earlier.write_text(json.dumps({"version": "1.9.0", "weights_sha256": "a" * 64, "levers": rows,
                                   "levers_cases": PATIENTS["val"]}))
    argv = ["evaluate", "glioma", "--bundle", str(bundle_dir), "--data", str(data), "--earlier-levers", str(earlier),
            "--lever", f"{SHIPPED_LABEL}={shipped}", "--lever", f"other candidate={candidate}"]
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["earlier_levers"] == {"version": "1.9.0", "weights_sha256": "a" * 64, "rows": rows}
    by_label = {row["label"]: row for row in report["levers"]}
    selection = choose(by_label[SHIPPED_LABEL], [by_label["this bundle"], by_label["other candidate"]])
    card = (bundle_dir / "docs" / "README.md").read_text()
    assert "### How this bundle was chosen" in card and f"Rule, declared before any candidate was measured: {RULE}." in card
    assert f"Chosen by the rule: {selection.chosen or 'none (keep the shipped bundle)'}. {TEST_SEEN_BEFORE}" in card
    verdict = selection.verdicts[1]
    assert f"- other candidate: AUC {verdict.auc_change:+.4f}, pointing game {verdict.pointing_change:+.4f}: " in card
    assert ("passes" if verdict.eligible else "fails (") in card.split("- other candidate:")[1].splitlines()[0]
    assert "Levers tried on version 1.9.0" in card
    assert "| version 1.9.0 | guidance=0.5 | 0.900 | +0.000 | 0.500 | +0.000 | 2.00 |" in card
    assert "| no guidance | guidance=0.0 | 0.910 | +0.010 | 0.125 | -0.375 | 1.00 |" in card


def test_validation_part_prints_figures_but_writes_no_card(data: Path, tmp_path: Path, capsys):
    bundle_dir = _tiny_bundle(tmp_path / "tiny", seed=0)
    assert main(["evaluate", "glioma", "--bundle", str(bundle_dir), "--data", str(data), "--part", "val"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["cases"] == PATIENTS["val"] and "card" not in report
    assert (bundle_dir / "docs" / "README.md").read_text() == "placeholder card of the test"


def test_a_task_without_an_evaluation_says_so_in_one_line(monkeypatch, capsys):
    """Every shipped task registers one now, so a registry entry stripped of its evaluation stands in."""
    import engine.training.evaluate as evaluate

    registered = evaluate.task_spec
    monkeypatch.setattr(evaluate, "task_spec", lambda task: replace(registered(task), evaluation=None))
    assert main(["evaluate", "glioma-grade"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "task 'glioma-grade' has no held-back evaluation" in err[0], err


@pytest.mark.parametrize(
    "arguments, reason",
    [
        (["nonesuch"], "unknown task 'nonesuch'"),
        (["glioma", "--bundle", "{nosplit}"], "records no 'test' part of a split"),
        (["glioma", "--compare", "{othersplit}"], "was held back on other patients"),
        (["glioma", "--data", "{missing}"], "no such file or folder"),
        (["glioma", "--lever", "no-equals-sign"], "expected LABEL=BUNDLE_FOLDER"),
        (["glioma", "--method", "guesswork"], "unknown CAM method 'guesswork'"),
        (["glioma", "--earlier-levers", "{missing}"], "cannot read it as JSON"),
        (["glioma", "--earlier-levers", "{nolevers}"], "holds no lever rows"),
        (["glioma", "--earlier-levers", "{otherval}"], "measured on other validation patients"),
    ],
)
def test_bad_evaluations_end_in_one_line(arguments, reason, data: Path, tmp_path: Path, capsys):
    tiny = _tiny_bundle(tmp_path / "tiny", seed=0)
    paths = {
        "nosplit": _tiny_bundle(tmp_path / "nosplit", 0, split={"train": ["CASE_T"]}),
        "othersplit": _tiny_bundle(tmp_path / "other", 0, split={**PATIENTS, "test": ["CASE_A"]}),
        "missing": tmp_path / "missing",
        "nolevers": tmp_path / "nolevers.json",
    }
    paths["nolevers"].write_text(json.dumps({"levers": []}))
    paths["otherval"] = tmp_path / "otherval.json"
    paths["otherval"].write_text(json.dumps({"levers": [{"label": "this bundle"}], "levers_cases": ["CASE_X"]}))
    argv = ["evaluate", *[a.format(**paths) for a in arguments]]
    if arguments[0] == "glioma" and "--bundle" not in arguments:
        argv += ["--bundle", str(tiny)]
    if "--data" not in arguments:
        argv += ["--data", str(data)]
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and reason in err[0], err
