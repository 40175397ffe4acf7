"""``salience explain`` on a clip writes raw frame maps (.npy) and an overlay video (.mp4) a reviewer
can watch, prints the clip verdict with key frames, and refuses a bad output path in one line."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from app.cli import EXIT_BAD_INPUT, main
from app.outputs import output_paths, write_overlay_video
from engine.errors import SalienceError
from engine.imaging import read_image
from engine.imaging.volume import ImageVolume, plain_affine
from engine.tasks.lung_ultrasound.preprocess import scan_region

CLIP = "lung-ultrasound/pocus_videos/convex/Pneu_liftl_pneu_case3_clip5.mp4"  # 26 frames, 272 x 272, 15 fps


@pytest.fixture(scope="module")
def clip_path(shared_data: Path) -> Path:
    path = shared_data / CLIP
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


def _decoded(path: Path) -> tuple[list[np.ndarray], float]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return frames, float(stream.average_rate)


def test_overlay_video_colours_the_map_and_leaves_the_rest_grey(tmp_path):
    """Where the map is hot the video shows the colour map; where it is zero, the grey frame. Odd
    sizes are padded to even ones."""
    frames = np.full((1, 5, 41, 51), 100, np.uint8)
    volume = ImageVolume(
        array=frames, spacing=(1.0, 1.0, 1.0), affine=plain_affine((1.0, 1.0, 1.0)), modality="US", kind="clip",
        source="synthetic", frame_time_ms=100.0, window=(127.5, 255.0),
    )
    maps = np.zeros((5, 41, 51), np.float32)
    maps[:, 10:24, 10:24] = 2.0
    maps[:, 30:, 30:] = -5.0  # negative evidence is not drawn
    written = write_overlay_video(volume, maps, tmp_path / "overlay.mp4")
    assert written["frames"] == 5 and written["size"] == [42, 52] and written["fps"] == 10.0
    decoded, fps = _decoded(tmp_path / "overlay.mp4")
    assert len(decoded) == 5 and decoded[0].shape == (42, 52, 3) and fps == 10.0
    centre = decoded[2][17, 17].astype(int)
    corner = decoded[2][3, 45].astype(int)
    negative = decoded[2][36, 40].astype(int)
    assert np.all(np.abs(corner - 100) <= 8)
    assert np.all(np.abs(negative - 100) <= 8)
    assert centre[0] - centre[2] > 30 and centre[0] > 150  # inferno's hot end: yellow, not grey


def test_output_paths_and_bad_suffixes(tmp_path):
    assert output_paths(tmp_path / "x.npy") == (tmp_path / "x.npy", tmp_path / "x.mp4")
    assert output_paths(tmp_path / "x.MP4") == (None, tmp_path / "x.MP4")
    with pytest.raises(SalienceError, match="x.nii.gz"):
        output_paths(tmp_path / "x.nii.gz")
    with pytest.raises(SalienceError, match="does not exist"):
        output_paths(tmp_path / "missing" / "x.npy")


def test_cli_writes_maps_and_a_video_with_the_clip_verdict(clip_path, tmp_path, capsys):
    out = tmp_path / "maps.npy"
    assert main(["explain", "--bundle", "lung-ultrasound", str(clip_path), "-o", str(out)]) == 0
    payload = json.loads(capsys.readouterr().out)
    maps = np.load(out)
    assert maps.shape == (26, 272, 272) and maps.dtype == np.float32
    assert payload["shape"] == [26, 272, 272]
    verdict = payload["verdict"]
    assert list(verdict) == ["COVID-19", "Bacterial pneumonia", "Healthy"]
    assert abs(sum(verdict.values()) - 1) < 1e-5
    assert payload["class"] == payload["verdict_class"] == max(verdict, key=verdict.get)
    summary = payload["per_frame_probability"][payload["class"]]
    assert abs(summary["mean"] - verdict[payload["class"]]) < 1e-5
    keys = payload["key_frames"][payload["class"]]
    assert len(keys) == 3
    assert keys[0]["time_ms"] == pytest.approx(keys[0]["frame"] * 1000 / 15, abs=1.0)
    assert keys[0]["importance"] >= keys[1]["importance"] >= keys[2]["importance"]
    assert payload["crop_box"] == [0, 272, 0, 272]  # a square frame: the square window is the frame
    region = scan_region(read_image(clip_path)).mask
    assert np.abs(maps[:, ~region]).max() == 0.0 and np.abs(maps[:, region]).max() > 0
    decoded, fps = _decoded(out.with_suffix(".mp4"))
    assert len(decoded) == 26 and decoded[0].shape == (272, 272, 3)
    assert fps == pytest.approx(15.0, rel=0.01)
    assert payload["output"]["video"]["frames"] == 26


def test_cli_all_classes(clip_path, tmp_path, capsys):
    out = tmp_path / "all.npy"
    assert main(["explain", "--bundle", "lung-ultrasound", "--all-classes", "--class", "Healthy", str(clip_path), "-o", str(out)]) == 0
    payload = json.loads(capsys.readouterr().out)
    maps = np.load(out)
    assert maps.shape == (3, 26, 272, 272)
    assert payload["class"] == "all" and payload["class_shown"] == "Healthy"
    assert not np.array_equal(maps[0], maps[2])  # one map per class, not copies


@pytest.mark.parametrize("name", ["maps.nii.gz", "missing/maps.npy"])
def test_cli_refuses_a_bad_output_in_one_line(clip_path, tmp_path, capsys, name):
    out = tmp_path / name
    assert main(["explain", "--bundle", "lung-ultrasound", str(clip_path), "-o", str(out)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert (str(out) if name.endswith(".gz") else str(out.parent)) in err[0]
    assert not out.exists()


def test_video_only_with_quality_measured_on_the_key_frame(clip_path, tmp_path):
    """OUT.mp4 writes the video alone, and --quality measures the key frame's map."""
    from app.headless import explain

    payload = explain(clip_path, "lung-ultrasound", "gradcam", tmp_path / "q.mp4", "0", False, True)
    assert payload["output"]["maps"] is None and payload["class"] == "COVID-19"
    assert len(_decoded(tmp_path / "q.mp4")[0]) == 26
    assert not (tmp_path / "q.npy").exists()
    quality = payload["quality"]
    key = payload["key_frames"][payload["class"]][0]
    assert quality["item"] == key["frame"]
    assert quality["key_frame_time_ms"] == pytest.approx(key["time_ms"], abs=1e-3)
    assert 0.0 <= quality["deletion"]["auc"] <= 1.0 and 0.0 <= quality["insertion"]["auc"] <= 1.0
    assert "sanity" in quality


def test_cli_explains_the_clip_verdicts_probability_when_asked(clip_path, tmp_path, capsys):
    """--score probability: frame maps of the class probability the verdict averages; they differ
    from the logit maps and the payload says which score was explained."""
    logit_out, probability_out = tmp_path / "logit.npy", tmp_path / "probability.npy"
    assert main(["explain", "--bundle", "lung-ultrasound", "--class", "Healthy", str(clip_path),
                 "-o", str(logit_out)]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == "method default"
    assert main(["explain", "--bundle", "lung-ultrasound", "--class", "Healthy", "--score", "probability",
                 str(clip_path), "-o", str(probability_out)]) == 0
    assert json.loads(capsys.readouterr().out)["score"] == "probability"
    by_logit, by_probability = np.load(logit_out), np.load(probability_out)
    assert by_logit.shape == by_probability.shape
    assert not np.allclose(by_logit, by_probability)


def test_predict_prints_the_clip_verdict_beside_the_frame_probabilities(clip_path, capsys):
    assert main(["predict", "--bundle", "lung-ultrasound", str(clip_path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    frames = np.array(payload["probabilities"])
    assert payload["item_axis"] == "frame" and frames.shape == (26, 3)
    verdict = payload["verdict"]
    assert list(verdict) == ["COVID-19", "Bacterial pneumonia", "Healthy"]
    np.testing.assert_allclose(list(verdict.values()), frames.mean(axis=0), atol=1e-5)
    assert payload["verdict_class"] == max(verdict, key=verdict.get)
    assert payload["verdict_rule"] == "mean of the frame probabilities"
    # its uncertainty: the shipped network has no dropout, so "auto" is test-time augmentation
    found = payload["uncertainty"]
    assert found["method"] == "tta" and found["samples"] == 16 and found["augmentations"][0] == "identity"
    case = found["case"]
    assert case["answer"] == "verdict" and case["class"] == payload["verdict_class"]
    assert case["probability"] == pytest.approx(verdict[case["class"]], abs=1e-6)
    assert case["total_entropy"] == pytest.approx(case["aleatoric_entropy"] + case["epistemic_mutual_information"])
    assert min(case["aleatoric_entropy"], case["epistemic_mutual_information"], case["top_class_std"]) >= 0
    assert case["words"].startswith("Uncertain: " if case["uncertain"] else "Not flagged as uncertain: ")
    assert [len(v) for v in found["items"].values()] == [26] * 5
