"""DICOM single files and multi-frame objects into ``ImageVolume``.

What a reader sees follows the standard's pixel pipeline (PS3.3 C.7.6.3, C.11): stored values
go through the Modality LUT or Rescale Slope/Intercept into real-world units (HU for CT);
PALETTE COLOR goes through its lookup tables into RGB; YBR_FULL and YBR_FULL_422 are converted
to RGB; MONOCHROME1 (where low values are bright) is inverted so that bright means dense
everywhere in the program, and the header says so. The file's window (VOI) is the default
window; it is already in the units after the Modality LUT (PS3.3 C.11.2.1.2), so only the
MONOCHROME1 inversion moves it.

Decoding is pydicom's (with the pylibjpeg, libjpeg, openjpeg, rle and gdcm plugins), so every
transfer syntax those decode opens here; everything else is refused with one line naming the
file and the reason. No exception message or log line carries patient identifiers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom import config as pydicom_config
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_color_lut, apply_modality_lut, convert_color_space, get_decoder
from pydicom.pixels.utils import get_expected_length, pixel_array

from engine.errors import ImageReadError
from engine.imaging import phi
from engine.imaging.dicom_geometry import order_stack, plane_affine, to_radiological
from engine.imaging.volume import ImageVolume, plain_affine

# Validating values while reading only produces warnings that quote element values (names
# included); the reader checks what it uses itself.
pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE

#: Decoded images larger than this are refused rather than exhausting memory.
MAX_DECODED_BYTES = 2 * 1024**3
_REQUIRED = ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "PhotometricInterpretation")
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_YBR = ("YBR_FULL", "YBR_FULL_422")


def looks_like_dicom(head: bytes) -> bool:
    """True for a Part 10 file (``DICM`` at 128) or a bare data set starting at group 0002/0008."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    return len(head) >= 8 and head[:2] in (b"\x08\x00", b"\x02\x00", b"\x00\x08")


def load_dataset(path: Path, *, stop_before_pixels: bool = False) -> Dataset:
    """Parse a DICOM file, refusing non-DICOM and damaged files with one clear line.

    Raises:
        ImageReadError: empty, not DICOM, or a header that cannot be parsed.
    """
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError as exc:
        raise ImageReadError(path, f"cannot open the file ({exc.strerror or type(exc).__name__})") from None
    if not head:
        raise ImageReadError(path, "file is empty")
    force = not (len(head) >= 132 and head[128:132] == b"DICM")
    if force and not looks_like_dicom(head):
        raise ImageReadError(path, "not a DICOM file")
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=force)
    except InvalidDicomError:
        raise ImageReadError(path, "not a DICOM file") from None
    except MemoryError:
        raise ImageReadError(path, "damaged DICOM header (an element claims an impossible length)") from None
    except Exception as exc:  # untrusted bytes: pydicom raises many kinds on damaged headers
        raise ImageReadError(path, f"damaged or truncated DICOM header ({type(exc).__name__})") from None


def header_int(ds: Dataset, keyword: str, default: int | None, path: Path) -> int | None:
    """An integer attribute, or ``default``; an unparsable value is refused by name."""
    try:
        value = ds.get(keyword)
        return default if value is None or value == "" else int(value)
    except Exception:  # unparsable or wrongly sized value
        raise ImageReadError(path, f"invalid {keyword} in the header") from None


def header_floats(ds: Dataset | None, keyword: str, count: int) -> list[float] | None:
    """A decimal attribute with at least ``count`` finite values (the first ``count``), else None."""
    try:
        value = ds.get(keyword) if ds is not None else None
        if value is None or value == "":
            return None
        items = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
        values = [float(v) for v in items]
    except Exception:  # unparsable or wrongly sized value: treated as absent
        return None
    if len(values) < count or not all(np.isfinite(values[:count])):
        return None
    return values[:count]


def check_image(ds: Dataset, path: Path) -> int:
    """Refuse objects that are not decodable images; return the number of frames.

    Raises:
        ImageReadError: no pixel data, missing or invalid image attributes, an unsupported
            transfer syntax, truncated pixel data, or an image too large to hold.
    """
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        kind = phi.header_summary(ds).get("sop_class")
        raise ImageReadError(path, f"no pixel data: not an image{f' ({kind})' if kind else ''}")
    missing = [k for k in _REQUIRED if k not in ds]
    if missing:
        raise ImageReadError(path, f"incomplete image header: missing {', '.join(missing)}")
    rows, cols = header_int(ds, "Rows", 0, path), header_int(ds, "Columns", 0, path)
    frames = header_int(ds, "NumberOfFrames", 1, path)
    samples = header_int(ds, "SamplesPerPixel", 1, path)
    bits = header_int(ds, "BitsAllocated", 0, path)
    if not rows or not cols or frames < 1 or samples not in (1, 3) or bits not in (1, 8, 16, 32, 64):
        raise ImageReadError(path, f"invalid image size or layout ({rows} x {cols}, {frames} frames, "
                                   f"{samples} samples, {bits} bits)")
    if rows * cols * frames * samples * max(bits, 8) // 8 > MAX_DECODED_BYTES:
        raise ImageReadError(path, f"image too large to open ({frames} x {rows} x {cols})")
    syntax = getattr(getattr(ds, "file_meta", None), "get", lambda _k: None)("TransferSyntaxUID")
    if syntax is None:
        raise ImageReadError(path, "no transfer syntax in the file meta: pixel data cannot be decoded")
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        shown = syntax.name if syntax.is_valid else "(not a valid UID)"
        raise ImageReadError(path, f"unsupported transfer syntax {shown}") from None
    if not decoder.is_available:
        raise ImageReadError(path, f"unsupported transfer syntax {syntax.name} (no decoder installed)")
    if not syntax.is_compressed and "PixelData" in ds:
        try:
            expected = get_expected_length(ds)
        except (ValueError, TypeError, AttributeError, KeyError):
            raise ImageReadError(path, "invalid image size or layout in the header") from None
        actual = len(ds.PixelData or b"")
        if actual < expected:
            raise ImageReadError(path, f"truncated pixel data ({actual} of {expected} bytes)")
    return frames


#: Decoding plugins in the order tried. Pillow first: for lossy JPEG it gives the same pixels as
#: GDCM (both libjpeg-turbo; pylibjpeg's libjpeg rounds differently by 1-3 levels). GDCM is used
#: only when nothing else can decode the transfer syntax: on corrupt JPEG data it aborts the
#: whole process (an uncaught C++ exception), which would take the user's session with it.
PLUGIN_PREFERENCE = ("pillow", "pylibjpeg", "pyjpegls", "pydicom")


def decoding_plugins(syntax) -> list[str]:
    """Plugins to try for ``syntax``, safest first; ``[""]`` (pydicom's choice) for native data."""
    available = get_decoder(syntax).available_plugins
    if not available:
        return [""]
    preferred = [p for p in PLUGIN_PREFERENCE if p in available]
    return preferred or list(available)


def decode_stored(ds: Dataset, path: Path) -> np.ndarray:
    """Stored values, ``(frames, rows, cols[, samples])`` in native byte order, as pydicom decodes.

    Raises:
        ImageReadError: the pixel data cannot be decoded.
    """
    frames = check_image(ds, path)
    syntax = ds.file_meta.TransferSyntaxUID
    raw, failure = None, ""
    for plugin in decoding_plugins(syntax):
        try:
            raw = pixel_array(ds, as_rgb=False, decoding_plugin=plugin)
            break
        except MemoryError:
            raise ImageReadError(path, "image too large to decode") from None
        except BaseException as exc:  # plugins raise RuntimeError, ValueError, even Rust panics
            if isinstance(exc, (KeyboardInterrupt, SystemExit, GeneratorExit)):
                raise
            failure = "truncated" if "less than expected" in str(exc) else "damaged or truncated"
    if raw is None:
        raise ImageReadError(path, f"{syntax.name} pixel data could not be decoded ({failure})")
    samples = int(ds.SamplesPerPixel)
    if raw.ndim == (2 if samples == 1 else 3):
        raw = raw[None]
    expected = (frames, int(ds.Rows), int(ds.Columns)) + ((samples,) if samples > 1 else ())
    if raw.shape != expected:
        raise ImageReadError(path, f"decoded pixel data {raw.shape} does not match the header {expected}")
    if raw.dtype.byteorder == ">":
        raw = raw.astype(raw.dtype.newbyteorder("="))
    return raw


def stored_range(ds: Dataset) -> tuple[int, int]:
    """Smallest and largest storable value (Bits Stored, Pixel Representation)."""
    bits = int(ds.get("BitsStored") or ds.BitsAllocated)
    if int(ds.get("PixelRepresentation") or 0) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def output_dtype(ds: Dataset, rescales: list[tuple[float, float]], invert_sum: float | None) -> np.dtype:
    """The array type that holds every rescaled (and inverted) value exactly.

    Integral slopes and intercepts keep integers (CT in HU fits int16); anything else is float32.
    A Modality LUT gives its own unsigned depth.
    """
    if ds.get("ModalityLUTSequence"):
        depth = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        return np.dtype(np.uint8 if depth <= 8 else np.uint16)
    lo, hi = stored_range(ds)
    bounds = [lo, hi]
    for slope, intercept in rescales:
        if not (float(slope).is_integer() and float(intercept).is_integer()):
            return np.dtype(np.float32)
        bounds += [lo * slope, hi * slope, lo * slope + intercept, hi * slope + intercept]
    if invert_sum is not None:
        bounds.append(invert_sum)
    low, high = min(bounds), max(bounds)
    for kind in (np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64):
        info = np.iinfo(kind)
        if info.min <= low and high <= info.max:
            return np.dtype(kind)
    return np.dtype(np.float64)


def rescale_pairs(ds: Dataset, frames: int) -> list[tuple[float, float]]:
    """Rescale (slope, intercept) of each frame: per-frame or shared functional groups, else the
    top-level attributes; ``(1, 0)`` when none applies."""
    def pair(item: Dataset | None) -> tuple[float, float] | None:
        if item is None or "RescaleSlope" not in item or "RescaleIntercept" not in item:
            return None
        try:
            slope, intercept = float(item.RescaleSlope), float(item.RescaleIntercept)
        except Exception:  # unparsable values: no rescale rather than a guess
            return None
        if not (np.isfinite(slope) and np.isfinite(intercept)) or slope == 0:
            return None
        return slope, intercept

    top = pair(ds) or (1.0, 0.0)
    shared = pair(functional_item(ds, None, "PixelValueTransformationSequence"))
    per_frame = [pair(functional_item(ds, k, "PixelValueTransformationSequence"))
                 for k in range(frames)] if "PerFrameFunctionalGroupsSequence" in ds else [None] * frames
    return [p or shared or top for p in per_frame]


def functional_item(ds: Dataset, frame: int | None, sequence: str) -> Dataset | None:
    """First item of a functional-group ``sequence`` for ``frame`` (None: the shared group)."""
    try:
        if frame is None:
            groups = ds.get("SharedFunctionalGroupsSequence")
            group = groups[0] if groups else None
        else:
            groups = ds.get("PerFrameFunctionalGroupsSequence")
            group = groups[frame] if groups and frame < len(groups) else None
        items = group.get(sequence) if group is not None else None
        return items[0] if items else None
    except (IndexError, AttributeError, TypeError):
        return None


def map_values(raw: np.ndarray, ds: Dataset, rescales: list[tuple[float, float]],
               dtype: np.dtype, invert_sum: float | None, out: np.ndarray | None = None) -> np.ndarray:
    """Monochrome stored values to display values: Modality LUT or rescale, then inversion.

    Args:
        raw: ``(frames, rows, cols)`` stored values.
        rescales: one (slope, intercept) per frame.
        dtype: the output type (see ``output_dtype``).
        invert_sum: for MONOCHROME1, ``v -> invert_sum - v``; None otherwise.
        out: array to write into (the series reader passes a slice of its volume).
    """
    if out is None:
        out = np.empty(raw.shape, dtype=dtype)
    if ds.get("ModalityLUTSequence"):
        out[...] = apply_modality_lut(raw, ds)
    else:
        for k, (slope, intercept) in enumerate(rescales):
            if (slope, intercept) == (1.0, 0.0):
                out[k] = raw[k]
            elif np.issubdtype(dtype, np.integer):
                out[k] = raw[k]
                out[k] *= dtype.type(slope)
                out[k] += dtype.type(intercept)
            else:
                out[k] = raw[k].astype(np.float64) * slope + intercept
    if invert_sum is not None:
        np.subtract(dtype.type(invert_sum), out, out=out, casting="unsafe")
    return out


def invert_sum_of(ds: Dataset, rescales: list[tuple[float, float]]) -> float | None:
    """For MONOCHROME1, ``low + high`` of the displayed range (the inversion pivot); else None."""
    if str(ds.get("PhotometricInterpretation", "")).strip() != "MONOCHROME1":
        return None
    lo, hi = stored_range(ds)
    if ds.get("ModalityLUTSequence"):
        depth = int(ds.ModalityLUTSequence[0].LUTDescriptor[2])
        return float(2**depth - 1)
    slope, intercept = rescales[0]
    ends = (lo * slope + intercept, hi * slope + intercept)
    return float(min(ends) + max(ends))


def file_window(ds: Dataset, invert_sum: float | None) -> tuple[float, float] | None:
    """The first Window Center/Width of the file (or its functional groups), in array units."""
    sources = [ds, functional_item(ds, None, "FrameVOILUTSequence"), functional_item(ds, 0, "FrameVOILUTSequence")]
    for item in sources:
        centre, width = header_floats(item, "WindowCenter", 1), header_floats(item, "WindowWidth", 1)
        if centre and width and width[0] > 0:
            c = centre[0] if invert_sum is None else invert_sum - centre[0]
            return float(c), float(width[0])
    return None


def to_channels(ds: Dataset, raw: np.ndarray, path: Path) -> tuple[np.ndarray, tuple[str, ...], dict[str, Any]]:
    """Decoded frames to ``(C, N, H, W)`` display values, channel names and header notes."""
    photometric = str(ds.PhotometricInterpretation).strip()
    notes: dict[str, Any] = {}
    if photometric == "PALETTE COLOR":
        try:
            rgb = apply_color_lut(raw, ds)
        except Exception:  # missing or malformed LUT descriptors
            raise ImageReadError(path, "PALETTE COLOR image with a missing or damaged colour table") from None
        notes["color"] = "PALETTE COLOR lookup tables applied"
        return np.ascontiguousarray(np.moveaxis(rgb, -1, 0)), ("R", "G", "B"), notes
    if raw.ndim == 4:
        if photometric in _YBR:
            raw = convert_color_space(raw, photometric, "RGB")
            notes["color"] = f"{photometric} converted to RGB"
        return np.ascontiguousarray(np.moveaxis(raw, -1, 0)), ("R", "G", "B"), notes
    if raw.dtype.kind == "f":
        return raw[None], ("intensity",), notes
    rescales = rescale_pairs(ds, raw.shape[0])
    invert_sum = invert_sum_of(ds, rescales)
    dtype = output_dtype(ds, rescales, invert_sum)
    values = map_values(raw, ds, rescales, dtype, invert_sum)
    if invert_sum is not None:
        notes["inverted"] = "MONOCHROME1 shown inverted: bright = dense"
    notes["window_pivot"] = invert_sum
    return values[None], ("intensity",), notes


def frame_time_ms(ds: Dataset) -> float | None:
    """Milliseconds between frames: Frame Time, the Frame Time Vector, or the Cine Rate."""
    for keyword in ("FrameTime",):
        value = header_floats(ds, keyword, 1)
        if value and value[0] > 0:
            return value[0]
    vector = header_floats(ds, "FrameTimeVector", 2)
    if vector:
        full = [float(v) for v in ds.FrameTimeVector][1:]
        positive = [v for v in full if v > 0]
        if positive:
            return float(np.median(positive))
    rate = header_floats(ds, "CineRate", 1)
    return 1000.0 / rate[0] if rate and rate[0] > 0 else None


def _plane_geometry(ds: Dataset, frame: int | None) -> tuple[list[float] | None, list[float] | None, tuple[float, float]]:
    """(orientation, position, pixel spacing) of one frame (None: the whole single-frame image)."""
    orientation = header_floats(ds, "ImageOrientationPatient", 6)
    position = header_floats(ds, "ImagePositionPatient", 3)
    spacing = header_floats(ds, "PixelSpacing", 2) or header_floats(ds, "ImagerPixelSpacing", 2)
    for group in (None, frame) if frame is not None else ():
        orientation = header_floats(functional_item(ds, group, "PlaneOrientationSequence"), "ImageOrientationPatient", 6) or orientation
        position = header_floats(functional_item(ds, group, "PlanePositionSequence"), "ImagePositionPatient", 3) or position
        spacing = header_floats(functional_item(ds, group, "PixelMeasuresSequence"), "PixelSpacing", 2) or spacing
    if orientation is not None and abs(np.linalg.norm(np.cross(orientation[:3], orientation[3:]))) < 1e-3:
        orientation = None
    good = spacing if spacing and spacing[0] > 0 and spacing[1] > 0 else [1.0, 1.0]
    return orientation, position, (float(good[0]), float(good[1]))


def _slice_thickness(ds: Dataset) -> float:
    for item in (functional_item(ds, None, "PixelMeasuresSequence"), ds):
        for keyword in ("SpacingBetweenSlices", "SliceThickness"):
            value = header_floats(item, keyword, 1)
            if value and value[0] > 0:
                return value[0]
    return 1.0


def read_dicom(path: str | Path) -> ImageVolume:
    """Read one DICOM file: a 2-D image, a multi-frame clip, or an enhanced multi-frame volume.

    Raises:
        ImageReadError: the file is not a decodable DICOM image (the message says why).
    """
    path = Path(path)
    ds = load_dataset(path)
    try:
        raw = decode_stored(ds, path)
        return _volume_from(ds, raw, path)
    except ImageReadError:
        raise
    except MemoryError:
        raise ImageReadError(path, "image too large to hold in memory") from None
    except Exception as exc:  # a damaged header that passed the checks: still one line, no PHI
        detail = phi.scrub(str(exc).splitlines()[0][:120] if str(exc) else "", ds)
        raise ImageReadError(path, f"damaged DICOM image ({type(exc).__name__}{': ' + detail if detail else ''})") from None


def _volume_from(ds: Dataset, raw: np.ndarray, path: Path) -> ImageVolume:
    array, names, notes = to_channels(ds, raw, path)
    pivot = notes.pop("window_pivot", None)
    frames = array.shape[1]
    modality = str(ds.get("Modality") or "OT").strip() or "OT"
    header = phi.header_summary(ds)
    header.update(notes)
    window = file_window(ds, pivot) if names == ("intensity",) else None
    timing = frame_time_ms(ds) if frames > 1 else None
    positioned = frames > 1 and "PerFrameFunctionalGroupsSequence" in ds and all(
        _plane_geometry(ds, k)[1] is not None for k in range(frames))
    offsets = header_floats(ds, "GridFrameOffsetVector", frames) if frames > 1 else None
    if frames > 1 and not positioned and offsets is None and (timing is not None or modality == "US"):
        dy, dx = _plane_geometry(ds, None)[2]
        return ImageVolume(array=array, spacing=(1.0, dy, dx), affine=plain_affine((1.0, dy, dx)),
                           modality=modality, kind="clip", source=str(path), channel_names=names,
                           frame_time_ms=timing, window=window, header=header)
    planes = [_plane_geometry(ds, k if positioned else None) for k in range(frames)]
    orientation, _, pixel_spacing = planes[0]
    positions: list[list[float] | None] = [p[1] for p in planes]
    if offsets is not None and orientation is not None and positions[0] is not None:
        normal = np.cross(orientation[:3], orientation[3:])
        positions = [list(np.asarray(positions[0]) + normal * d) for d in offsets]
    elif not positioned and frames > 1:
        positions = [None] * frames
    stack = order_stack(positions, orientation, list(range(frames)), _slice_thickness(ds))
    if frames > 1 and stack.warnings and not positioned and offsets is None:
        stack.warnings = ["frame positions are not in the file: frames kept in stored order, "
                          f"spacing {stack.spacing:g} mm taken from the header"]
    array = array[:, stack.order]
    affine = plane_affine(orientation, stack.origin, pixel_spacing, stack.slice_step)
    array, affine = to_radiological(array, affine)
    if stack.warnings:
        header["warnings"] = stack.warnings
    spacing = (float(stack.spacing), pixel_spacing[0], pixel_spacing[1])
    return ImageVolume(array=array, spacing=spacing, affine=affine, modality=modality,
                       kind="image" if array.shape[1] == 1 else "volume", source=str(path),
                       channel_names=names, frame_time_ms=timing, window=window, header=header)
