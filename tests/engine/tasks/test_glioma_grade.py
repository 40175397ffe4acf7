"""The glioma-grade task: grades by patient, the stratified split, the head box, augmentation, and a
tiny end-to-end run of the recipe."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.errors import SalienceError
from engine.models import load_bundle
from engine.models.task_registry import task_spec
from engine.tasks.glioma_grade.data import GradedCase, graded_cases, patient_of, read_grades, split_by_grade
from engine.tasks.glioma_grade.preprocess import grade_input, head_box
from engine.tasks.glioma_grade.train import augment, shift_volumes, train_glioma_grade

TINY_3D = {"_target_": "monai.networks.nets.DenseNet", "spatial_dims": 3, "in_channels": 3, "out_channels": 2,
           "init_features": 2, "growth_rate": 2, "block_config": [2]}


def test_a_folder_names_its_patient_and_a_bad_name_says_so():
    assert patient_of("TCGA_CS_4941_19960909") == "TCGA_CS_4941"
    assert patient_of("TCGA_HT_A61A_20000127") == "TCGA_HT_A61A"
    with pytest.raises(SalienceError, match="not a TCGA patient folder"):
        patient_of("scan_01")


def test_grades_are_read_by_patient_skipping_blanks_and_refusing_unknown_codes(tmp_path: Path):
    table = tmp_path / "data.csv"
    table.write_text("Patient,age,neoplasm_histologic_grade\nTCGA_CS_0001,40,1\nTCGA_CS_0002,50,2\nTCGA_CS_0003,60,\n")
    assert read_grades(table) == {"TCGA_CS_0001": 0, "TCGA_CS_0002": 1}
    table.write_text("Patient,neoplasm_histologic_grade\nTCGA_CS_0001,4\n")
    with pytest.raises(SalienceError, match="line 2: grade '4'"):
        read_grades(table)
    table.write_text("Patient,grade\nTCGA_CS_0001,1\n")
    with pytest.raises(SalienceError, match="neoplasm_histologic_grade"):
        read_grades(table)


def test_split_is_by_patient_disjoint_seeded_and_stratified_by_grade():
    cases = [GradedCase(f"P{i:02d}", int(i % 5 < 2)) for i in range(50)]  # 20 grade III, 30 grade II
    split = split_by_grade(cases, (30, 10, 10), seed=4)
    parts = [set(split.train), set(split.val), set(split.test)]
    assert [len(p) for p in parts] == [30, 10, 10]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    grade = {c.folder: c.grade for c in cases}
    assert [sum(grade[f] for f in p) for p in parts] == [12, 4, 4]  # 40% grade III in every part
    assert split == split_by_grade(list(reversed(cases)), (30, 10, 10), seed=4)
    assert split != split_by_grade(cases, (30, 10, 10), seed=5)
    with pytest.raises(SalienceError, match="needs 51 patients"):
        split_by_grade(cases, (31, 10, 10), seed=0)


def test_the_head_box_ignores_stray_noise_and_the_input_has_the_network_size():
    array = np.zeros((3, 20, 40, 50), dtype=np.float32)
    array[:, 3:17, 5:35, 10:42] = 100.0
    array[:, 0, 0, 0] = 100.0  # one bright noise voxel in a corner
    scaled = array / 100.0
    box = head_box(scaled, head_threshold=0.1, box_margin=2)
    assert box.start == (3, 3, 8) and box.size == (14, 34, 36)  # the margin widens rows and columns only
    x, same = grade_input(array, (8, 16, 16))
    assert x.shape == (1, 3, 8, 16, 16) and x.dtype == torch.float32 and same == box
    assert float(x.max()) == pytest.approx(1.0) and float(x.min()) == 0.0  # the margin is black, the head 1.0
    assert task_spec("glioma-grade").item_axis == "volume"
    empty = head_box(np.zeros((3, 4, 5, 6), np.float32), 0.1, 2)
    assert empty.start == (0, 0, 0) and empty.size == (4, 5, 6)


def test_shift_moves_each_volume_with_zeros_coming_in_and_augment_keeps_the_background_black():
    x = torch.arange(2 * 1 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 1, 3, 4, 5) + 1
    moved = shift_volumes(x, torch.tensor([[1, 0, -2], [0, 0, 0]]))
    assert torch.equal(moved[0, 0, 1:, :, :3], x[0, 0, :-1, :, 2:])
    assert not moved[0, 0, 0].any() and not moved[0, 0, :, :, 3:].any()
    assert torch.equal(moved[1], x[1])
    blob = torch.zeros(16, 3, 8, 12, 12)
    blob[:, :, 3:5, 5:7, 5:7] = 1.0
    out = augment(blob, torch.Generator().manual_seed(0))
    assert out.shape == blob.shape
    assert ((out != 0).sum(dim=(1, 2, 3, 4)) == 3 * 2 * 2 * 2).all()  # shifted, not smeared
    assert 0.85 < float(out[out != 0].min()) and float(out.max()) < 1.16


def test_graded_cases_match_folders_to_the_grade_table(shared_data: Path):
    cases = graded_cases(shared_data / "glioma-lgg")
    assert len(cases) == 84
    by_folder = {c.folder: c.grade for c in cases}
    assert "TCGA_HT_A61B_19991127" not in by_folder  # the one of 85 folders whose grade is blank
    assert by_folder["TCGA_CS_4941_19960909"] == 1 and by_folder["TCGA_CS_5395_19981004"] == 0


@pytest.mark.slow
def test_tiny_training_run_writes_a_loadable_reproducible_3d_bundle(shared_data: Path, tmp_path: Path):
    data = shared_data / "glioma-lgg"
    kwargs = dict(epochs=1, seed=3, split=(2, 2, 2), network_def=TINY_3D, batch_size=2, input_size=(8, 16, 16),
                  repeats=1)
    metrics = train_glioma_grade(data, tmp_path / "a", **kwargs)
    bundle = load_bundle(tmp_path / "a")
    assert bundle.name == "glioma-grade" and bundle.whole_volume and bundle.input_size == (8, 16, 16)
    split = bundle.metadata["split"]
    assert len(set(split["train"]) | set(split["val"]) | set(split["test"])) == 6
    assert metrics["grade_iii"] == {"train": 1, "val": 1, "test": 1}  # stratified even at 2 patients a part
    assert len(metrics["test_predictions"]) == 2 and len(metrics["seed_range"]["runs"]) == 2
    assert metrics["test"]["auc_ci"] is not None and metrics["cam_localisation"]["predicted_class"]["patients"] == 2
    assert metrics["temperature"] == pytest.approx(bundle.temperature, rel=1e-5)
    card = bundle.model_card.read_text()
    assert "Results on the held-back test patients" in card and "95% CI" in card and "CC BY 3.0" in card
    again = train_glioma_grade(data, tmp_path / "b", **kwargs)
    assert load_bundle(tmp_path / "b").weights_sha256 == bundle.weights_sha256
    assert again["test"] == metrics["test"]
