"""Every export of a closed study read back with an independent reader: csv and json modules,
``salience mrmc`` for iMRMC, nibabel for NIfTI, json for GeoJSON, pydicom and highdicom for SEG.
Exports are de-identified, refuse paths that leave the folder, and are audited."""

from __future__ import annotations

import csv
import json

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import sqlalchemy as sa

from app.cli import EXIT_BAD_INPUT, main
from app.study_annotation_exports import RegionReading, geojson_feature
from app.study_exports import export_study, safe_target
from app.study_report import build_study_report
from db.models import AuditEvent
from db.study_export import export_study_records
from engine.errors import SalienceError
from engine.imaging import read_image
from engine.stats.regions import region_mask
from tests.app.study_sim import CASES, DICOM_CASES, PATCH_CASES, READERS, SECRET, lesion_slice, nifti_source, region
from tests.engine.stats.study_simulation import diseased

RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _pseudonym(sim, k: int) -> str:
    return next(p for p, index in sim.case_index.items() if index == k and p.startswith(f"S{sim.study_id}-"))


def _export(sim, fmt, folder):
    return export_study(sim.factory, sim.coordinator, sim.study_id, fmt, folder)


def test_csv_reads_back_with_the_csv_module_and_says_it_is_deidentified(sim_study, tmp_path) -> None:
    (path,) = _export(sim_study, "csv", tmp_path).files
    text = path.read_text(encoding="utf-8")
    comment, body = text.split("\n", 1)
    assert comment.startswith("# Salience study export") and "De-identified" in comment
    rows = list(csv.DictReader(body.splitlines()))
    with sim_study.factory.begin() as session:
        records = export_study_records(session, sim_study.coordinator, sim_study.study_id)
    assert len(rows) == len(records)
    for column in ("reader", "case", "arm", "session", "phase", "question", "first_answer", "final_answer",
                   "first_answer_given_at", "seconds_open", "shown_prediction_id", "shown_explanation_ids", "pairwise_left"):
        assert column in rows[0]
    outline = next(r for r in rows if r["question"] == "outline" and r["final_answer"])
    assert json.loads(outline["final_answer"])[0]["kind"] == "box"
    aided = next(r for r in rows if r["arm"] == "ai+gradcam")
    assert aided["shown_predicted_class"] in ("lesion", "no lesion") and "gradcam" in json.loads(aided["shown_explanation_ids"])
    assert SECRET not in text and "sources" not in text


def test_json_carries_metadata_and_the_same_records(sim_study, tmp_path) -> None:
    (path,) = _export(sim_study, "json", tmp_path).files
    document = json.loads(path.read_text(encoding="utf-8"))
    assert document["metadata"]["deidentified"] is True and document["metadata"]["study_id"] == sim_study.study_id
    records = document["records"]
    assert len(records) == READERS * CASES * 2 * 3 + READERS * CASES * 2  # 3 questions unaided, 5 aided
    assert {r["reader"] for r in records} == {f"r{j}" for j in range(READERS)}
    assert SECRET not in path.read_text()


def test_imrmc_export_runs_through_salience_mrmc_to_the_reports_aucs(sim_study, tmp_path, capsys) -> None:
    (path,) = _export(sim_study, "imrmc", tmp_path).files
    text = path.read_text()
    header = dict(line.split(": ") for line in text.splitlines() if line[:3] in ("NR:", "N0:", "N1:", "NM:"))
    assert header == {"NR": str(READERS), "N0": str(CASES // 2), "N1": str(CASES // 2), "NM": "2"}
    data = text.split("BEGIN DATA:\n", 1)[1].splitlines()
    assert all(int(line.split(",")[1]) > 0 for line in data) and SECRET not in text
    assert main(["mrmc", str(path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    result = build_study_report(sim_study.factory, sim_study.coordinator, sim_study.study_id, sim_study.home / "maps").mrmc.result
    for i, modality in enumerate(result.modalities):
        assert printed["reader_averaged_auc"][modality] == pytest.approx(result.modality_means[i], abs=1e-12)
        for j, reader in enumerate(result.readers):
            assert printed["reader_auc"][modality][reader]["auc"] == pytest.approx(result.auc[i, j], abs=1e-12)
    assert printed["analyses"]["RRRC"]["p_value"] == pytest.approx(result.rrrc.p_value)


def test_nifti_label_maps_lie_on_the_source_volume(sim_study, tmp_path) -> None:
    """Labelled voxels of the exported map sit at the same patient positions as the region drawn
    on the displayed volume, and the file keeps the source's own grid and affine."""
    result = _export(sim_study, "nifti", tmp_path)
    maps = [p for p in result.files if p.name.endswith(".nii.gz")]
    assert len(maps) == (CASES // 2) * READERS * 2 and not result.skipped
    k, j = 0, 3
    pseudonym = _pseudonym(sim_study, k)
    path = tmp_path / f"{pseudonym}_r{j}_unaided_p1_outline.nii.gz"
    image = nib.load(path)
    source_file = nifti_source(sim_study.home / "sources", k)
    source = nib.load(source_file)
    assert image.shape == source.shape and np.allclose(image.affine, source.affine)
    assert image.get_data_dtype() == np.uint8 and "de-identified" in image.header["descrip"].item().decode()
    labelled = np.argwhere(np.asarray(image.dataobj) == 1)
    world = (image.affine @ np.c_[labelled, np.ones(len(labelled))].T)[:3].T
    volume = read_image(source_file)
    mask = region_mask(region(k, j, volume.shape[0]), volume.shape)
    drawn = np.argwhere(mask)
    expected = (RAS_FROM_LPS @ volume.affine @ np.c_[drawn, np.ones(len(drawn))].T)[:3].T
    assert sorted(map(tuple, np.round(world, 4))) == sorted(map(tuple, np.round(expected, 4)))
    sidecar = json.loads(path.with_name(path.name.replace(".nii.gz", ".json")).read_text())
    assert sidecar["labels"] == {"1": "lesion"} and sidecar["reader"] == f"r{j}" and sidecar["deidentified"] is True
    assert not any(SECRET in p.name for p in result.files)


def test_geojson_is_a_qupath_feature_collection_for_patches(sim_study, tmp_path) -> None:
    result = _export(sim_study, "geojson", tmp_path)
    k = next(k for k in PATCH_CASES if diseased(k))
    (path,) = result.files
    assert path.name == f"{_pseudonym(sim_study, k)}.geojson"
    assert len(result.skipped) == CASES // 2 - 1 and "GeoJSON is written for patches and slides" in result.skipped[0]
    collection = json.loads(path.read_text())
    assert collection["type"] == "FeatureCollection" and collection["metadata"]["deidentified"] is True
    assert len(collection["features"]) == READERS * 2
    feature = next(f for f in collection["features"] if f["properties"]["reader"] == "r0")
    assert feature["properties"]["classification"] == {"name": "lesion"}
    ring = feature["geometry"]["coordinates"][0]
    (r1, c1), (r2, c2) = region(k, 0, 1)[0]["points"]
    assert ring[0] == ring[-1] and len(ring) == 5
    assert ring[0] == [c1 + 0.5, r1 + 0.5] and ring[2] == [c2 + 0.5, r2 + 0.5]


def test_a_slide_region_is_scaled_to_level_zero_pixels() -> None:
    reading = RegionReading("S1-C1", "r0", "ai", 1, 1, False, "outline", ())
    point = geojson_feature({"kind": "point", "points": [[10, 20]], "label": "tumour"}, reading, scale=4.0)
    assert point["geometry"] == {"type": "Point", "coordinates": [82.0, 42.0]}


def test_seg_reads_back_with_highdicom_on_the_source_images(sim_study, tmp_path) -> None:
    result = _export(sim_study, "seg", tmp_path)
    k = next(k for k in DICOM_CASES if diseased(k))
    pseudonym = _pseudonym(sim_study, k)
    assert len(result.files) == READERS * 2 and all(p.name.startswith(pseudonym) for p in result.files)
    assert len(result.skipped) == CASES // 2 - 1 and all("single-frame DICOM" in line for line in result.skipped)
    path = tmp_path / f"{pseudonym}_r1_ai+gradcam_p1_outline.dcm"
    ds = pydicom.dcmread(path)
    assert (ds.PatientName.family_name, ds.PatientID, ds.PatientIdentityRemoved) == (pseudonym, pseudonym, "YES")
    assert "SYNTH-0001" not in str(ds) and "Phantom" not in str(ds) and SECRET not in str(ds)
    seg = hd.seg.segread(path)
    assert seg.get_segment_description(1).segment_label == "lesion"
    source_folder = sim_study.home / "sources" / f"{SECRET}_series{k}"
    sources = sorted((pydicom.dcmread(p) for p in source_folder.iterdir()), key=lambda d: float(d.ImagePositionPatient[2]))
    uids = [d.SOPInstanceUID for d in sources]
    pixels = seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, segment_numbers=[1])[..., 0]
    volume = read_image(source_folder)
    expected = region_mask(region(k, 1, volume.shape[0]), volume.shape)
    assert pixels.shape == expected.shape and (pixels.astype(bool) == expected).all()
    assert expected[lesion_slice(volume.shape[0])].sum() > 0


def test_export_names_that_would_leave_the_folder_are_refused(tmp_path) -> None:
    assert safe_target(tmp_path, "S1-C2", "r0", "ai+gradcam", suffix=".json") == tmp_path.resolve() / "S1-C2_r0_ai+gradcam.json"
    for bad in ("..", "../evil", "a/b", "a\\b", ".hidden", "x..y", ""):
        with pytest.raises(SalienceError, match="outside"):
            safe_target(tmp_path, "S1-C2", bad, suffix=".json")


def test_exports_are_audited_and_refused_to_readers(sim_study, tmp_path) -> None:
    _export(sim_study, "json", tmp_path / "one")
    with sim_study.factory() as session:
        events = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "study.export_written")).all()
    assert any(e.detail["format"] == "json" and e.actor == "carol" for e in events)
    with pytest.raises(SalienceError, match="may not"):
        export_study(sim_study.factory, sim_study.readers[0], sim_study.study_id, "csv", tmp_path / "two")
    with pytest.raises(SalienceError, match="not one of"):
        export_study(sim_study.factory, sim_study.coordinator, sim_study.study_id, "xlsx", tmp_path / "three")


def test_cli_export_prints_what_it_wrote(sim_env, tmp_path, capsys) -> None:
    folder = tmp_path / "out"
    assert main(["study", "export", str(sim_env.study_id), "--format", "csv", "-o", str(folder)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["deidentified"] is True and printed["files"] == [f"study-{sim_env.study_id}-records.csv"]
    assert (folder / printed["files"][0]).is_file()
    assert main(["study", "export", str(sim_env.sequential_id), "--format", "imrmc", "-o", str(folder)]) == EXIT_BAD_INPUT
    assert "probability" in capsys.readouterr().err
