"""The headless subcommands print JSON, and bad input ends in one clear line and a non-zero exit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from app.cli import EXIT_BAD_INPUT, main
from engine.explain.summary import map_summary
from engine.imaging import nifti


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], capture_output=True, text=True, timeout=300)


def test_inspect_prints_geometry_of_a_nifti_case(glioma_case, capsys):
    assert main(["inspect", str(glioma_case)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "volume"
    assert info["modality"] == "MR"
    assert info["channels"] == ["t1", "flair", "t1ce"]
    assert info["shape"] == {"channels": 3, "slices": 23, "rows": 128, "cols": 128}
    assert info["spacing_mm"] == {"slice": 1.0, "row": 2.0, "col": 2.0}
    assert info["orientation"] == "SPL"
    assert info["labels"]["values"] == [0, 1]


def test_inspect_of_a_synthetic_nifti_reports_reoriented_geometry(tmp_path, capsys):
    data = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    affine = np.diag([0.5, 0.7, 3.0, 1.0])  # RAS: i->R, j->A, k->S
    path = tmp_path / "x.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(path))
    assert main(["inspect", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == {"channels": 1, "slices": 6, "rows": 5, "cols": 4}
    assert info["spacing_mm"] == {"slice": 3.0, "row": 0.7, "col": 0.5}
    assert info["orientation"] == "SPL"


@pytest.mark.parametrize(
    "content, reason",
    [(None, "no such file"), (b"", "empty"), (b"\x00garbage" * 40, "")],
)
def test_bad_path_exits_non_zero_with_one_line(tmp_path, content, reason):
    path = tmp_path / "scan.nii.gz"
    if content is not None:
        path.write_bytes(content)
    result = run_cli("inspect", str(path))
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and reason in lines[0]
    assert "Traceback" not in result.stderr


def test_unknown_bundle_is_one_line(glioma_case):
    result = run_cli("predict", "--bundle", "no-such-bundle", str(glioma_case))
    assert result.returncode == EXIT_BAD_INPUT
    assert len(result.stderr.strip().splitlines()) == 1
    assert "no-such-bundle" in result.stderr


def test_explain_refuses_an_unknown_output_kind(glioma_case, tmp_path):
    result = run_cli("explain", "--bundle", "glioma", str(glioma_case), "-o", str(tmp_path / "map.png"))
    assert result.returncode == EXIT_BAD_INPUT
    assert "must end in" in result.stderr


def test_explain_writes_a_nifti_that_overlays_the_input(glioma_case, tmp_path, capsys):
    """The map lands on the input's voxel grid and world space, so any viewer overlays it."""
    out = tmp_path / "cam.nii.gz"
    assert main(["explain", "--bundle", "glioma", "--method", "gradcam", str(glioma_case), "-o", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["class"] == "FLAIR abnormality" and info["method"] == "gradcam"
    assert set(info["stats"]) == set(map_summary(np.zeros(1)).to_dict())  # the database's keys
    written = nib.load(str(out))
    flair = nib.load(str(glioma_case / f"{glioma_case.name}_flair.nii.gz"))
    assert written.shape == flair.shape
    # Same voxel order as the source file; the affine is the corrected one (see engine.imaging.quirks).
    np.testing.assert_allclose(written.affine, nifti.file_affine(glioma_case / f"{glioma_case.name}_flair.nii.gz"), atol=1e-5)
    np.testing.assert_allclose(np.sign(np.diag(written.affine)[:3]), [-1, -1, 1])
    cam = np.asarray(written.dataobj)
    mask = np.asarray(nib.load(str(glioma_case / f"{glioma_case.name}_seg.nii.gz")).dataobj) > 0
    # Raw and signed: not min-max scaled into [0, 1].
    assert cam.min() < 0 < cam.max() or cam.max() > 1
    # On the slice with the most lesion, the positive map is denser inside the mask than outside.
    k = int(np.argmax(mask.sum(axis=(0, 1))))
    positive = np.clip(cam[:, :, k], 0, None)
    assert positive[mask[:, :, k]].mean() > positive[~mask[:, :, k]].mean()


def test_explain_all_classes_writes_one_map_per_class(glioma_case, tmp_path, capsys):
    out = tmp_path / "cams.npy"
    assert main(["explain", "--bundle", "glioma", "--method", "layercam", "--all-classes", str(glioma_case), "-o", str(out)]) == 0
    maps = np.load(out)
    assert maps.shape == (2, 23, 128, 128)
    assert not np.allclose(maps[0], maps[1])


def test_explain_quality_reports_faithfulness_localisation_and_sanity(shared_data, tmp_path, capsys):
    case = shared_data / "glioma-lgg" / "TCGA_HT_7692_19960724"  # held out from the shipped model
    assert main(["explain", "--bundle", "glioma", "--quality", str(case), "-o", str(tmp_path / "m.npy")]) == 0
    quality = json.loads(capsys.readouterr().out)["quality"]
    assert quality["class"] == "FLAIR abnormality"
    # A faithful map: deleting what it highlights drops the score faster than inserting it raises it.
    assert quality["deletion"]["auc"] < quality["insertion"]["auc"]
    assert 0.0 <= quality["confidence"]["average_drop"] <= 100.0
    assert quality["confidence"]["masked_scores"][0] != quality["confidence"]["full_scores"][0]
    # The lesion slice has a mask: the map's energy there beats the mask's share of the slice.
    assert quality["energy_inside_mask"]["fraction"] > quality["mask_area_fraction"]
    assert set(quality["pointing_game"]) >= {"hit", "distance"}
    sanity = quality["sanity"]
    # Decided inside the input's foreground: the black background ranks alike before and after
    # randomisation and would vouch for any map. Glioma 2.x blacks out all but the brain, which
    # covers 20% of this slice (the whole head covered about a third under 1.x).
    assert sanity["decided_on"] == "region" and 0.1 < sanity["region_fraction"] < 0.6
    final = sanity["steps"][-1]
    assert sanity["trustworthy"] == (final["spearman_in_region"] < sanity["threshold"])
    assert final["spearman"] > final["spearman_in_region"]


def test_explain_writes_a_patch_overlay_png(shared_data, tmp_path, capsys):
    """A histopathology patch explained to a PNG: the overlay has the patch's size and is not the
    patch itself (the map was blended on)."""
    import imageio.v3 as iio

    patch = shared_data / "histopathology-lc25000" / "lung_n" / sorted(
        p.name for p in (shared_data / "histopathology-lc25000" / "lung_n").iterdir())[0]
    out = tmp_path / "overlay.png"
    assert main(["explain", "--bundle", "histopathology", str(patch), "-o", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["class"] in ("Adenocarcinoma", "Squamous cell carcinoma", "Benign")
    overlay, original = iio.imread(out), iio.imread(patch)
    assert overlay.shape[:2] == original.shape[:2]
    assert np.abs(overlay[..., :3].astype(int) - original.astype(int)).mean() > 1.0
    bad = run_cli("explain", "--bundle", "histopathology", "--all-classes", str(patch), "-o", str(tmp_path / "a.png"))
    assert bad.returncode == EXIT_BAD_INPUT and ".png for a single image" in bad.stderr


def test_a_closed_pipe_ends_quietly(glioma_case):
    """``salience predict ... | head -1``: the reader leaves early; no "internal error", no traceback,
    and the shell's usual status for a closed pipe (128 + SIGPIPE)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "app.cli", "predict", "--bundle", "glioma", str(glioma_case)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        process.stdout.close()  # the pipe's reader is gone before the first line is written
        error = process.stderr.read().decode()
        code = process.wait(timeout=120)
    assert "internal error" not in error and "Traceback" not in error and "BrokenPipe" not in error
    assert code == 141


def test_predict_says_the_case_answer_its_probability_and_uncertainty(glioma_case, capsys):
    """A volume's case answer is its slice most likely to show the finding; ``--uncertainty none``
    leaves the uncertainty out and MC dropout on a network without dropout is one line."""
    assert main(["predict", "--bundle", "glioma", "--summary", "--samples", "4", str(glioma_case)]) == 0
    payload = json.loads(capsys.readouterr().out)
    found = payload["uncertainty"]
    assert found["method"] == "tta" and found["samples"] == 4 and found["entropy_unit"] == "nats"
    assert "items" not in found and "probabilities" not in payload  # --summary
    case = found["case"]
    finding = payload["summary"][case["class"]]
    assert case["answer"] == f"item {finding['at_item']}"
    assert case["probability"] == pytest.approx(finding["max_probability"], abs=1e-6)
    assert set(case) >= {"total_entropy", "aleatoric_entropy", "epistemic_mutual_information", "top_class_std",
                         "uncertain", "words"}
    assert main(["predict", "--bundle", "glioma", "--uncertainty", "none", str(glioma_case)]) == 0
    assert "uncertainty" not in json.loads(capsys.readouterr().out)
    result = run_cli("predict", "--bundle", "glioma", "--uncertainty", "mc-dropout", str(glioma_case))
    assert result.returncode == EXIT_BAD_INPUT and result.stdout == ""
    assert result.stderr.strip() == ("salience: error: glioma: this network has no dropout layer (or only p = 0): "
                                     "Monte Carlo dropout is not available; use test-time augmentation")


def test_explain_lists_every_method_without_needing_a_file(capsys):
    from engine.models.inference import method_names

    with pytest.raises(SystemExit) as stop:
        main(["explain", "--list"])
    assert stop.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == method_names()
    assert any("Zhou et al. CVPR 2016" in line for line in lines)  # each with its paper
