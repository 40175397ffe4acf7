"""Readers' region answers of a closed study as files other tools open on the source images.

* ``nifti``: one label map per reading (``<case>_<reader>_<arm>_p<phase>.nii.gz``) on the source
  volume's grid and affine (``engine.imaging.nifti.write_on_grid``: NIfTI sources keep their
  own voxel order), values 1, 2, ... per region label, named in a JSON sidecar; volumes, clips
  and still images.
* ``geojson``: one QuPath-compatible FeatureCollection per case (every reader's regions; a
  painted mask is a MultiPolygon of one rectangle per run of painted pixels in a row), in
  pixel coordinates of the full image (``x`` = column, ``y`` = row, origin at the top-left
  corner of the first pixel, so a pixel centre ``(row, col)`` is ``(col + 0.5, row + 0.5)``; a
  slide's thumbnail coordinates are scaled by its downsample to level 0); patches and slides.
* ``seg``: one DICOM Segmentation (highdicom) per reading, referencing the source series'
  images; DICOM sources of single-frame images.

Reading the source images needs the study key (audited); the files written carry only the
pseudonym. A SEG must reference its source images, so it keeps their UIDs (that is how a viewer
lays it over them) but replaces the patient's name and id by the pseudonym and blanks birth
date, sex, accession number, study id, dates and referring physician (DICOM PS3.15 basic
profile for those attributes; the UIDs retained as its "Retain UIDs" option allows).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from app.study_exports import ExportResult, safe_target
from app.study_report import DEIDENTIFIED, software_version
from app.errors import user_errors
from db.study_materials import CaseMaterial, case_materials
from db.study_progress import study_key
from engine.errors import SalienceError
from engine.imaging import ImageVolume, read_image
from engine.imaging.mask_rle import MaskRLE
from engine.stats.regions import region_labels

NIFTI_KINDS = ("volume", "clip", "image")
GEOJSON_KINDS = ("image", "slide")


@dataclass(frozen=True)
class RegionReading:
    """One reading's region answer: who drew it, where, and the regions."""

    case: str
    reader: str
    arm: str
    phase: int
    session: int
    repeat: bool
    question: str
    regions: tuple[Mapping[str, Any], ...]

    def name_parts(self) -> tuple[str, ...]:
        extra = (f"s{self.session}",) if self.session != 1 else ()
        return (self.case, self.reader, self.arm, f"p{self.phase}", *extra, *(("repeat",) if self.repeat else ()),
                self.question)


def region_readings(records: list[dict[str, Any]]) -> list[RegionReading]:
    """Every submitted, non-empty region answer of the records."""
    return [
        RegionReading(r["case"], r["reader"], r["arm"], int(r["phase"]), int(r["session"]), bool(r["repeat"]),
                      r["question"], tuple(r["final_answer"]))
        for r in records
        if r.get("question_kind") == "region" and r.get("submitted") and r.get("final_answer")
    ]


def _label_codes(regions) -> dict[str, int]:
    return {label: k for k, label in enumerate(sorted({str(r.get("label", "region")) for r in regions}), start=1)}


def label_map(reading: RegionReading, grid: tuple[int, int, int]) -> tuple[np.ndarray, dict[str, int]]:
    """The reading's regions as one ``(N, H, W)`` label array (later labels win overlaps) and the codes."""
    codes = _label_codes(reading.regions)
    labels = np.zeros(grid, dtype=np.uint8 if len(codes) < 256 else np.uint16)
    for label, mask in region_labels(reading.regions, grid, f"{reading.case}, {reading.reader}").items():
        labels[mask] = codes[label]
    return labels, codes


def _metadata(reading: RegionReading, study_id: int, codes: Mapping[str, int]) -> dict[str, Any]:
    return {"study_id": study_id, "case": reading.case, "reader": reading.reader, "arm": reading.arm,
            "phase": reading.phase, "session": reading.session, "repeat": reading.repeat, "question": reading.question,
            "labels": {str(v): k for k, v in codes.items()}, "software": f"Salience {software_version()}",
            "deidentified": True, "note": DEIDENTIFIED}


def _write_nifti(reading: RegionReading, volume: ImageVolume, folder: Path, study_id: int) -> list[Path]:
    from engine.imaging.nifti import write_on_grid

    labels, codes = label_map(reading, volume.shape)
    target = safe_target(folder, *reading.name_parts(), suffix=".nii.gz")
    write_on_grid(labels, volume, target, dtype=labels.dtype,
                  description=f"Salience study {study_id} labels {reading.case}; de-identified")
    sidecar = target.with_name(target.name[: -len(".nii.gz")] + ".json")
    sidecar.write_text(json.dumps(_metadata(reading, study_id, codes), indent=1), encoding="utf-8")
    return [target, sidecar]


def _ring(points, scale: float) -> list[list[float]]:
    return [[(col + 0.5) * scale, (row + 0.5) * scale] for row, col in points]


def _mask_rectangles(mask: Mapping[str, Any], scale: float) -> list[list[list[list[float]]]]:
    """MultiPolygon coordinates of a painted mask: a rectangle per run of painted pixels in a row
    (pixel ``(r, c)`` covers ``x`` in ``[c, c + 1]``, ``y`` in ``[r, r + 1]``)."""
    painted = MaskRLE.from_json(mask).decode()
    rectangles = []
    for row in np.flatnonzero(painted.any(axis=1)):
        edges = np.diff(np.concatenate(([0], painted[row].astype(np.int8), [0])))
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            x0, x1, y0, y1 = (float(v) * scale for v in (start, stop, row, row + 1))
            rectangles.append([[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]])
    return rectangles


def geojson_feature(region: Mapping[str, Any], reading: RegionReading, scale: float = 1.0) -> dict[str, Any]:
    """One region as a QuPath annotation Feature (coordinates: see the module docstring)."""
    points = [tuple(map(float, p)) for p in region["points"]]
    if region["kind"] == "mask":
        geometry = {"type": "MultiPolygon", "coordinates": _mask_rectangles(region["mask"], scale)}
    elif region["kind"] == "point":
        geometry = {"type": "Point", "coordinates": _ring(points, scale)[0]}
    else:
        if region["kind"] == "box":
            (r1, c1), (r2, c2) = points
            points = [(r1, c1), (r1, c2), (r2, c2), (r2, c1)]
        ring = _ring(points, scale)
        geometry = {"type": "Polygon", "coordinates": [ring + [ring[0]]]}
    label = str(region.get("label", "region"))
    return {
        "type": "Feature", "geometry": geometry,
        "properties": {"objectType": "annotation", "name": f"{reading.reader} {reading.arm} p{reading.phase}",
                       "classification": {"name": label}, "isLocked": True, "reader": reading.reader,
                       "arm": reading.arm, "phase": reading.phase, "session": reading.session,
                       "repeat": reading.repeat, "question": reading.question,
                       "slice_index": int(region.get("slice_index", 0))},
    }


def _write_geojson(case: str, readings: list[RegionReading], scale: float, folder: Path, study_id: int) -> list[Path]:
    features = [geojson_feature(region, reading, scale) for reading in readings for region in reading.regions]
    collection = {"type": "FeatureCollection", "features": features,
                  "metadata": {"study_id": study_id, "case": case, "coordinates": "full-resolution image pixels, origin "
                               "at the top-left corner", "software": f"Salience {software_version()}",
                               "deidentified": True, "note": DEIDENTIFIED}}
    target = safe_target(folder, case, suffix=".geojson")
    target.write_text(json.dumps(collection, indent=1), encoding="utf-8")
    return [target]


@dataclass(frozen=True)
class _Sources:
    """Where each pseudonym's image is (from the audited study key) and its content hash."""

    paths: Mapping[str, str]
    hashes: Mapping[str, str]

    def volume(self, case: str) -> ImageVolume:
        volume = read_image(self.paths[case])
        if volume.content_hash != self.hashes[case]:
            raise SalienceError(f"{case}: its source image changed since the study was created; not exported")
        return volume


def _read(session_factory: sessionmaker[Session], requester_id: int, study_id: int):
    from app.study_report import load_study_data

    with user_errors(), session_factory.begin() as session:
        data = load_study_data(session, requester_id, study_id)
        materials = {m.pseudonym: m for m in case_materials(session, requester_id, study_id)}
        key = study_key(session, requester_id, study_id)
    sources = _Sources({row["pseudonym"]: row["source"] for row in key}, {row["pseudonym"]: row["content_hash"] for row in key})
    return data, materials, sources


def export_annotations(factory: sessionmaker[Session], requester_id: int, study_id: int, fmt: str, folder: Path) -> ExportResult:
    """Write the study's region answers as NIfTI label maps, GeoJSON or DICOM SEG into ``folder``.

    Cases whose kind or source the format does not suit are listed in ``skipped``, one line each.
    """
    data, materials, sources = _read(factory, requester_id, study_id)
    readings = region_readings(data.records)
    if not readings:
        raise SalienceError(f"study {study_id}: no submitted region answer to export")
    by_case: dict[str, list[RegionReading]] = {}
    for reading in readings:
        by_case.setdefault(reading.case, []).append(reading)
    files: list[Path] = []
    skipped: list[str] = []
    for case, mine in sorted(by_case.items()):
        material: CaseMaterial = materials[case]
        try:
            files.extend(_export_case(fmt, case, material, mine, sources, folder, study_id))
        except _Skip as reason:
            skipped.append(f"{case}: {reason}")
    return ExportResult(fmt, folder, tuple(files), tuple(skipped))


class _Skip(Exception):
    """This case cannot be written in this format (the message says why)."""


def _export_case(fmt: str, case: str, material: CaseMaterial, readings: list[RegionReading], sources: _Sources,
                 folder: Path, study_id: int) -> list[Path]:
    if fmt == "nifti":
        if material.kind not in NIFTI_KINDS:
            raise _Skip(f"a {material.kind}: NIfTI label maps are written for {', '.join(NIFTI_KINDS)}; use geojson")
        volume = sources.volume(case)
        return [path for reading in readings for path in _write_nifti(reading, volume, folder, study_id)]
    if fmt == "geojson":
        if material.kind not in GEOJSON_KINDS:
            raise _Skip(f"a {material.kind}: GeoJSON is written for patches and slides; use nifti or seg")
        scale = float(sources.volume(case).header.get("thumbnail_downsample", 1.0)) if material.kind == "slide" else 1.0
        return _write_geojson(case, readings, scale, folder, study_id)
    from app.study_seg import write_seg

    volume = sources.volume(case)
    try:
        return [write_seg(reading, volume, sources.paths[case], folder, study_id) for reading in readings]
    except ValueError as exc:
        raise _Skip(f"not written as DICOM SEG: {exc}") from None
