"""A reader's region answer as a DICOM Segmentation (highdicom) over its source series.

The answer is drawn on Salience's display grid (slices ordered by position, radiological
orientation), which may be flipped or reordered relative to the stored images. So each stored
pixel is located in patient space from its own Image Position, Image Orientation and Pixel
Spacing, carried through the inverse of the volume's index-to-patient affine, and takes the
label found there: the SEG frames then match the source images pixel for pixel, whatever the
order of files or the direction of the axes.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from app.study_annotation_exports import RegionReading, label_map
from app.study_exports import safe_target
from app.study_report import software_version
from engine.imaging import ImageVolume

_BLANKED = ("PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyDate", "StudyTime",
            "ReferringPhysicianName", "SeriesDate", "SeriesTime", "ContentDate", "ContentTime")


def source_images(source: str | Path, n_slices: int) -> list[pydicom.Dataset]:
    """The single-frame images of the source's series that has ``n_slices`` images.

    Raises:
        ValueError: no such series (a multi-frame file, or several series of that size).
    """
    source = Path(source)
    paths = sorted(source.rglob("*")) if source.is_dir() else [source]
    series: dict[str, list[pydicom.Dataset]] = {}
    for path in paths:
        if not path.is_file():
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except (pydicom.errors.InvalidDicomError, OSError):
            continue
        if "ImagePositionPatient" in ds and "PixelSpacing" in ds and int(ds.get("NumberOfFrames", 1) or 1) == 1:
            series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    if not series:
        raise ValueError("its source is not a series of single-frame DICOM images; use nifti")
    matching = [images for images in series.values() if len(images) == n_slices]
    if len(matching) != 1:
        raise ValueError(f"no single series of {n_slices} single-frame images with a position in the source "
                         "(multi-frame sources are not written as SEG); use nifti")
    return matching[0]


def frames_on_sources(labels: np.ndarray, affine: np.ndarray, datasets: list[pydicom.Dataset]) -> np.ndarray:
    """``(frames, rows, cols)`` labels of each source image, sampled from the display grid."""
    inverse = np.linalg.inv(affine)
    grid = np.array(labels.shape)
    frames = []
    for ds in datasets:
        rows, cols = int(ds.Rows), int(ds.Columns)
        origin = np.array(ds.ImagePositionPatient, dtype=float)
        orientation = np.array(ds.ImageOrientationPatient, dtype=float)
        along_row, along_column = orientation[:3], orientation[3:]
        row_spacing, column_spacing = (float(v) for v in ds.PixelSpacing)
        i, j = np.mgrid[0:rows, 0:cols]
        world = (origin[:, None] + along_row[:, None] * (j.ravel() * column_spacing)
                 + along_column[:, None] * (i.ravel() * row_spacing))
        index = np.rint((inverse @ np.vstack([world, np.ones(world.shape[1])]))[:3]).astype(int)
        inside = ((index >= 0) & (index < grid[:, None])).all(axis=0)
        frame = np.zeros(rows * cols, dtype=labels.dtype)
        frame[inside] = labels[index[0, inside], index[1, inside], index[2, inside]]
        frames.append(frame.reshape(rows, cols))
    return np.stack(frames)


def write_seg(reading: RegionReading, volume: ImageVolume, source: str | Path, folder: Path, study_id: int) -> Path:
    """Write one reading's regions as a binary DICOM SEG (one segment per label) into ``folder``.

    Raises:
        ValueError: the source has no single-frame series matching the volume.
    """
    datasets = [_deidentified(ds, reading.case) for ds in source_images(source, volume.shape[0])]
    labels, label_codes = label_map(reading, volume.shape)
    frames = frames_on_sources(labels, volume.affine, datasets)
    segments = [
        hd.seg.SegmentDescription(
            segment_number=code, segment_label=label[:64],
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
            segmented_property_type=codes.SCT.Lesion, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for label, code in label_codes.items()
    ]
    seg = hd.seg.Segmentation(
        source_images=datasets, pixel_array=frames, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segments, series_instance_uid=generate_uid(), series_number=900, sop_instance_uid=generate_uid(),
        instance_number=1, manufacturer="Salience", manufacturer_model_name="Salience", software_versions=software_version(),
        device_serial_number="none", content_label="READER", content_description=f"study {study_id} {reading.question}"[:64],
        content_creator_name=f"{reading.reader[:62]}^", omit_empty_frames=False,
    )
    _deidentify(seg, reading.case, study_id)
    target = safe_target(folder, *reading.name_parts(), suffix=".dcm")
    seg.save_as(target)
    return target


def _deidentified(ds: pydicom.Dataset, pseudonym: str) -> pydicom.Dataset:
    """The source image's header (read without pixels) with the patient replaced by the pseudonym
    and the identifying type 2 attributes present but empty (highdicom copies them into the SEG)."""
    ds.PatientName = f"{pseudonym}^"  # a family name alone
    ds.PatientID = pseudonym
    for keyword in _BLANKED:
        setattr(ds, keyword, "")
    return ds


def _deidentify(seg: pydicom.Dataset, pseudonym: str, study_id: int) -> None:
    _deidentified(seg, pseudonym)
    seg.PatientIdentityRemoved = "YES"
    seg.DeidentificationMethod = "Salience study export: patient identifiers replaced by the study pseudonym; UIDs retained"
    seg.SeriesDescription = f"Salience study {study_id} {pseudonym}"[:64]
