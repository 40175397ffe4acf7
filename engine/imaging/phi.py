"""The PHI-free summary of a DICOM header, and PHI scrubbing of messages.

The summary is an allow-list: only technical attributes that say how the image was made and
stored are copied, never who it shows or where it was made. Anything a user types (series
description) passes only when it holds no name-like or date-like content. Patient name, id,
birth date, accession number, institution and every other attribute not listed here never
reach the summary.
"""

from __future__ import annotations

import re
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID

#: Technical attributes copied as they are (keyword -> summary key).
_ALLOWED = {
    "Modality": "modality",
    "Manufacturer": "manufacturer",
    "ManufacturerModelName": "manufacturer_model",
    "SOPClassUID": "sop_class",
    "Rows": "rows",
    "Columns": "columns",
    "SamplesPerPixel": "samples_per_pixel",
    "BitsAllocated": "bits_allocated",
    "BitsStored": "bits_stored",
    "HighBit": "high_bit",
    "PixelRepresentation": "pixel_representation",
    "PhotometricInterpretation": "photometric_interpretation",
    "NumberOfFrames": "number_of_frames",
    "PixelSpacing": "pixel_spacing",
    "ImagerPixelSpacing": "imager_pixel_spacing",
    "SliceThickness": "slice_thickness",
    "SpacingBetweenSlices": "spacing_between_slices",
    "FrameTime": "frame_time_ms",
    "CineRate": "cine_rate",
    "RescaleSlope": "rescale_slope",
    "RescaleIntercept": "rescale_intercept",
    "RescaleType": "rescale_type",
    "BodyPartExamined": "body_part",
    "ImageType": "image_type",
    "KVP": "kvp",
    "MagneticFieldStrength": "field_strength_t",
    "ConvolutionKernel": "convolution_kernel",
    "LossyImageCompression": "lossy_compression",
}

#: Attributes whose values must never appear in a summary, message or log.
PHI_KEYWORDS = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "PatientBirthDate",
    "PatientBirthName",
    "PatientMotherBirthName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "AccessionNumber",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "StationName",
    "StudyID",
)

_SAFE_TEXT = re.compile(r"^[A-Za-z0-9 +\-_.,/()#:%*&]*$")
_DATE_LIKE = re.compile(r"\d{6,}|\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}")


def _plain(value: Any) -> Any:
    """DICOM values as JSON-friendly Python values."""
    if value is None:
        return None
    if isinstance(value, UID):  # its registered name ("CT Image Storage"), else the number
        return value.name or str(value)
    if isinstance(value, (list, tuple, MultiValue)):
        return [_plain(v) for v in value]
    if isinstance(value, (int, float, str)):
        kind = type(value).__mro__
        if float in kind:
            return round(float(value), 6)
        if int in kind:
            return int(value)
        return str(value)
    return str(value)


def _phi_tokens(ds: Dataset) -> list[str]:
    tokens: list[str] = []
    for keyword in PHI_KEYWORDS:
        try:
            value = ds.get(keyword)
        except Exception:  # a damaged element must not stop the scrubbing
            continue
        if value in (None, ""):
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            text = str(item)
            tokens.append(text)
            tokens.extend(part for part in re.split(r"[\^=\s,]+", text) if len(part) >= 2)
    return sorted({t for t in tokens if t.strip()}, key=len, reverse=True)


def safe_description(text: str | None, ds: Dataset | None = None) -> str | None:
    """A series description if it is plainly technical ("AX T2 FLAIR"), else None.

    Refused: anything with characters outside letters, digits and simple punctuation, a
    person-name separator (^), a date-like or long number, more than 64 characters, or any
    word of the patient's name or id.
    """
    if not text:
        return None
    text = str(text).strip()
    if len(text) > 64 or not _SAFE_TEXT.match(text) or _DATE_LIKE.search(text):
        return None
    if ds is not None:
        lowered = text.lower()
        if any(token.lower() in lowered for token in _phi_tokens(ds)):
            return None
    return text


def header_summary(ds: Dataset) -> dict[str, Any]:
    """The allow-listed technical attributes of ``ds`` (see the module docstring)."""
    summary: dict[str, Any] = {}
    for keyword, key in _ALLOWED.items():
        try:
            value = ds.get(keyword)
        except Exception:  # an unparsable value is left out, never guessed
            continue
        if value is None or value == "":
            continue
        summary[key] = _plain(value)
    for key in ("manufacturer", "manufacturer_model", "body_part", "convolution_kernel"):
        if key in summary and safe_description(str(summary[key]), ds) is None:
            del summary[key]
    file_meta = getattr(ds, "file_meta", None)
    syntax = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    if syntax is not None:
        summary["transfer_syntax"] = str(getattr(syntax, "name", "") or syntax)
    description = safe_description(ds.get("SeriesDescription"), ds)
    if description:
        summary["series_description"] = description
    return summary


def scrub(text: str, ds: Dataset | None) -> str:
    """``text`` with every PHI value of ``ds`` (name parts, ids, dates) replaced by ``***``."""
    if ds is None:
        return text
    for token in _phi_tokens(ds):
        text = re.sub(re.escape(token), "***", text, flags=re.IGNORECASE)
    return text
