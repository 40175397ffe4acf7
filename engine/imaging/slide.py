"""Histopathology: H&E patches (PNG, JPEG, TIFF) and whole-slide pyramids.

A patch becomes an ``ImageVolume`` of kind ``"image"``, modality ``"SM"``, channels R, G, B.
A pyramid (SVS, NDPI, tiled pyramidal TIFF, and with OpenSlide also MRXS, VMS, SCN...) becomes
kind ``"slide"``: its array is a thumbnail and ``extras["slide"]`` holds the open
``SlideReader``, which reads any region of any level on demand.

Coordinates follow OpenSlide: a region's ``(x, y)`` is its top-left corner in level-0 pixels
(x to the right, y down), its ``(w, h)`` is in pixels of the level being read. ``tiffslide``
(pure Python over tifffile) is tried first; ``openslide`` is the fallback for the formats it
alone reads.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from engine.errors import ImageReadError
from engine.imaging.volume import ImageVolume, plain_affine
from engine.progress import NullProgress, Progress, check_cancelled

PATCH_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
#: A single-level TIFF larger than this (either side, pixels) is a slide, not a patch.
MAX_PATCH_SIDE = 8192
#: Longest side of the thumbnail that a slide volume carries as its array.
THUMBNAIL_SIZE = 2048
#: Pixel sizes above this many microns are screen resolutions (72 dpi), not microscopy.
MAX_MICROSCOPY_MPP = 50.0
#: Regions larger than this many pixels are read in strips when making a thumbnail.
_CHUNK = 2048
_RGB = ("R", "G", "B")


class SlideReader:
    """An open whole-slide pyramid.

    Args:
        path: the slide file.

    Attributes:
        levels: number of pyramid levels (level 0 is full resolution).
        dimensions: ``(width, height)`` of each level in pixels.
        downsamples: level-0 pixels per pixel of each level.
        mpp: microns per level-0 pixel ``(x, y)``, or None when the file does not say.
        backend: "tiffslide" or "openslide".
        closed: True once ``close`` has released the file.

    Raises:
        ImageReadError: neither backend can open the file as a slide.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._slide, self.backend = _open_backend(self.path)
        self.levels = int(self._slide.level_count)
        self.dimensions = tuple((int(w), int(h)) for w, h in self._slide.level_dimensions)
        self.downsamples = tuple(float(d) for d in self._slide.level_downsamples)
        self.mpp = _slide_mpp(self._slide.properties, self.backend)
        self.closed = False

    def read_region(self, level: int, location: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
        """Read an RGB region; parts outside the slide are white.

        Args:
            level: pyramid level.
            location: ``(x, y)`` top-left corner in level-0 pixels.
            size: ``(w, h)`` in pixels of ``level``.

        Returns:
            ``(h, w, 3)`` uint8 RGB.
        """
        if not 0 <= level < self.levels:
            raise ValueError(f"level {level} outside 0..{self.levels - 1}")
        w, h = int(size[0]), int(size[1])
        if w < 1 or h < 1:
            raise ValueError(f"region size must be positive, got {size}")
        x, y = int(location[0]), int(location[1])
        scale = self.downsamples[level]
        level_w, level_h = self.dimensions[level]
        # Region in level pixels, clipped to the level; the rest stays white.
        left, top = int(np.floor(x / scale)), int(np.floor(y / scale))
        x0, y0 = max(left, 0), max(top, 0)
        x1, y1 = min(left + w, level_w), min(top + h, level_h)
        out = np.full((h, w, 3), 255, np.uint8)
        if x1 <= x0 or y1 <= y0:
            return out
        location0 = (int(round(x0 * scale)), int(round(y0 * scale)))
        pixels = self._slide.read_region(location0, level, (x1 - x0, y1 - y0))
        out[y0 - top : y1 - top, x0 - left : x1 - left] = _to_rgb(np.asarray(pixels))
        return out

    def best_level(self, downsample: float) -> int:
        """The most reduced level that is still at least as sharp as ``downsample``."""
        candidates = [k for k, d in enumerate(self.downsamples) if d <= downsample * 1.001]
        return max(candidates) if candidates else 0

    def thumbnail(self, max_size: int = THUMBNAIL_SIZE) -> tuple[np.ndarray, float]:
        """The whole slide with its longest side at most ``max_size`` pixels.

        Returns:
            ``(rgb, downsample)``: ``(h, w, 3)`` uint8 and level-0 pixels per thumbnail pixel.
        """
        width0, height0 = self.dimensions[0]
        downsample = max(1.0, max(width0, height0) / max_size)
        level = self.best_level(downsample)
        level_w, level_h = self.dimensions[level]
        out_w = max(1, round(width0 / downsample))
        out_h = max(1, round(height0 / downsample))
        if (level_w, level_h) == (out_w, out_h):
            return self.read_region(level, (0, 0), (level_w, level_h)), downsample
        strips = []
        rows_per_strip = max(1, _CHUNK * _CHUNK // max(level_w, 1))
        for top in range(0, level_h, rows_per_strip):
            rows = min(rows_per_strip, level_h - top)
            y0 = int(round(top * self.downsamples[level]))
            strip = self.read_region(level, (0, y0), (level_w, rows))
            strip_h = max(1, round(rows * out_h / level_h))
            strips.append(np.asarray(Image.fromarray(strip).resize((out_w, strip_h), Image.BOX)))
        rgb = np.concatenate(strips, axis=0)
        if rgb.shape[0] != out_h:
            rgb = np.asarray(Image.fromarray(rgb).resize((out_w, out_h), Image.BOX))
        return rgb, width0 / out_w

    def close(self) -> None:
        """Close the file (a second call does nothing); ``closed`` says whether it is."""
        if not self.closed:
            self._slide.close()
            self.closed = True

    def __enter__(self) -> "SlideReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SlideReader({str(self.path)!r}, levels={self.levels}, dimensions={self.dimensions[0]})"


class SlidePixels:
    """An open slide's pyramid pixels and pixel size, and nothing else: no path, no file
    properties, no label or macro image (what a blinded study reader's viewer may be handed).

    Args:
        reader: the open ``SlideReader``; ``close`` closes it.
    """

    def __init__(self, reader: SlideReader) -> None:
        self._reader = reader
        self.levels, self.dimensions, self.downsamples = reader.levels, reader.dimensions, reader.downsamples
        self.mpp = reader.mpp

    @property
    def closed(self) -> bool:
        return self._reader.closed

    def read_region(self, level: int, location: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
        """As ``SlideReader.read_region``."""
        return self._reader.read_region(level, location, size)

    def close(self) -> None:
        self._reader.close()

    def __repr__(self) -> str:
        return f"SlidePixels(levels={self.levels}, dimensions={self.dimensions[0]})"


def _open_backend(path: Path) -> tuple[Any, str]:
    reasons = []
    try:
        import tiffslide

        return tiffslide.TiffSlide(path), "tiffslide"
    except Exception as exc:  # tiffslide raises many types for files it does not handle
        reasons.append(f"tiffslide: {_first_line(exc)}")
    try:
        import openslide
    except ImportError:
        reasons.append("openslide: not installed")
    else:
        try:
            return openslide.OpenSlide(str(path)), "openslide"
        except Exception as exc:
            reasons.append(f"openslide: {_first_line(exc)}")
    raise ImageReadError(path, "not a readable whole-slide image (" + "; ".join(reasons) + ")")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:120]


def _slide_mpp(properties: Any, backend: str) -> tuple[float, float] | None:
    keys = ("tiffslide.mpp-x", "tiffslide.mpp-y") if backend == "tiffslide" else ("openslide.mpp-x", "openslide.mpp-y")
    try:
        mpp = (float(properties[keys[0]]), float(properties[keys[1]]))
    except (KeyError, TypeError, ValueError):
        return None
    return mpp if 0 < mpp[0] < MAX_MICROSCOPY_MPP and 0 < mpp[1] < MAX_MICROSCOPY_MPP else None


def _to_rgb(pixels: np.ndarray) -> np.ndarray:
    """RGB uint8 from RGB, RGBA (transparent over white, as OpenSlide means it) or grey."""
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.shape[-1] == 1:
        return np.repeat(pixels, 3, axis=-1).astype(np.uint8)
    if pixels.shape[-1] == 4:
        alpha = pixels[..., 3:4].astype(np.float32) / 255.0
        rgb = pixels[..., :3].astype(np.float32) * alpha + 255.0 * (1.0 - alpha)
        return np.round(rgb).astype(np.uint8)
    return pixels[..., :3].astype(np.uint8)


def read_patch(path: str | Path) -> ImageVolume:
    """Read an H&E patch (PNG, JPEG, TIFF, BMP) as a one-slice RGB image.

    Raises:
        ImageReadError: the file is empty, not an image, or truncated.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageReadError(path, "no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty")
    try:
        with Image.open(path) as image:
            image.load()
            rgb = _pil_rgb(image)
            mpp = _pil_mpp(image)
            file_format = image.format
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        if path.suffix.lower() not in (".tif", ".tiff"):
            raise ImageReadError(path, f"not a readable image ({_first_line(exc)})") from None
        rgb, mpp, file_format = _tifffile_patch(path)
    return _patch_volume(path, rgb, mpp, file_format)


def _pil_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "P", "PA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return np.asarray(image.convert("RGB"))


def _pil_mpp(image: Image.Image) -> tuple[float, float] | None:
    dpi = image.info.get("dpi")
    if not dpi or not dpi[0] or not dpi[1]:
        return None
    mpp = (25400.0 / float(dpi[0]), 25400.0 / float(dpi[1]))
    return mpp if max(mpp) < MAX_MICROSCOPY_MPP else None


def _tifffile_patch(path: Path) -> tuple[np.ndarray, tuple[float, float] | None, str]:
    try:
        with tifffile.TiffFile(path) as tif:
            pixels = tif.pages[0].asarray()
    except Exception as exc:  # tifffile raises several types on corrupt files
        raise ImageReadError(path, f"not a readable TIFF ({_first_line(exc)})") from None
    if pixels.dtype != np.uint8:
        pixels = _stretch_to_uint8(pixels)
    return _to_rgb(pixels), None, "TIFF"


def _stretch_to_uint8(pixels: np.ndarray) -> np.ndarray:
    lo, hi = float(pixels.min()), float(pixels.max())
    scaled = (pixels.astype(np.float64) - lo) * (255.0 / (hi - lo if hi > lo else 1.0))
    return np.round(scaled).astype(np.uint8)


def _patch_volume(path: Path, rgb: np.ndarray, mpp: tuple[float, float] | None, file_format: str) -> ImageVolume:
    """A still picture: a colour one is taken for a stained-tissue patch (modality SM); a grey one
    (an ultrasound or X-ray still, a mask) is one "intensity" channel of unknown modality (OT), so
    it is never offered to a histopathology model as if it were H&E."""
    from engine.imaging.video import is_colour

    spacing = (1.0, mpp[1] / 1000.0, mpp[0] / 1000.0) if mpp else (1.0, 1.0, 1.0)
    header = {"format": file_format, "width": rgb.shape[1], "height": rgb.shape[0], "mpp": mpp,
              "spacing_is_physical": mpp is not None}
    if is_colour(rgb):
        return rgb_volume(path, rgb, spacing, "image", header)
    grey = np.rint(rgb.astype(np.float32).mean(axis=2)).astype(np.uint8)
    return ImageVolume(
        array=np.ascontiguousarray(grey[None, None]),
        spacing=spacing,
        affine=plain_affine(spacing),
        modality="OT",
        kind="image",
        source=str(path),
        channel_names=("intensity",),
        window=(127.5, 255.0),
        header={**header, "colour": "grey"},
    )


def rgb_volume(
    path: str | Path, rgb: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0), kind: str = "image",
    header: dict | None = None, extras: dict | None = None,
) -> ImageVolume:
    """A one-slice slide-microscopy volume from ``(h, w, 3)`` RGB (a patch, a slide's thumbnail
    or one of its tiles); ``path`` names where it came from."""
    return ImageVolume(
        array=np.ascontiguousarray(np.moveaxis(rgb, 2, 0)[:, None]),
        spacing=spacing,
        affine=plain_affine(spacing),
        modality="SM",
        kind=kind,  # type: ignore[arg-type]
        source=str(path),
        channel_names=_RGB,
        window=(127.5, 255.0),
        header=header or {},
        extras=extras or {},
    )


def is_pyramid(path: Path) -> bool:
    """True for a TIFF with more than one resolution level or a single level too big for a patch."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            if len(series.levels) > 1:
                return True
            axes = series.axes
            height, width = series.shape[axes.index("Y")], series.shape[axes.index("X")]
            return max(height, width) > MAX_PATCH_SIDE
    except Exception as exc:
        raise ImageReadError(path, f"not a readable TIFF ({_first_line(exc)})") from None


def read_slide_or_patch(path: str | Path, progress: Progress | None = None) -> ImageVolume:
    """Read a TIFF-family file: a small single-level TIFF as a patch, otherwise as a slide.

    Args:
        path: .tif/.tiff patch or pyramid, or any OpenSlide format (.svs, .ndpi, .mrxs, ...).
        progress: receives progress while the thumbnail is read; may be None.

    Returns:
        kind "image" for a patch; kind "slide" with the thumbnail as array, the open
        ``SlideReader`` in ``extras["slide"]`` and the pyramid in ``header``.

    Raises:
        ImageReadError: empty or unreadable file.
    """
    path = Path(path)
    progress = progress or NullProgress()
    if not path.is_file():
        raise ImageReadError(path, "no such file")
    if path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty")
    if path.suffix.lower() in (".tif", ".tiff") and not is_pyramid(path):
        return read_patch(path)
    return read_slide(path, progress)


def read_slide(path: str | Path, progress: Progress | None = None) -> ImageVolume:
    """Open a whole-slide pyramid; the volume's array is its thumbnail (see module docstring)."""
    path = Path(path)
    progress = progress or NullProgress()
    reader = SlideReader(path)
    try:
        progress.report(0.0, f"Reading thumbnail of {path.name}")
        check_cancelled(progress)
        rgb, downsample = reader.thumbnail()
        progress.report(1.0, "Thumbnail read")
    except BaseException:
        reader.close()
        raise
    mpp = reader.mpp
    spacing = (1.0, mpp[1] * downsample / 1000.0, mpp[0] * downsample / 1000.0) if mpp else (1.0, downsample, downsample)
    header = {
        "backend": reader.backend,
        "levels": reader.levels,
        "dimensions": [list(d) for d in reader.dimensions],
        "downsamples": list(reader.downsamples),
        "mpp": list(mpp) if mpp else None,
        "thumbnail_downsample": downsample,
        "spacing_is_physical": mpp is not None,
    }
    return rgb_volume(path, rgb, spacing, "slide", header, extras={"slide": reader})


_LABEL_SPLIT = re.compile(r"[-_ ]")


def list_patches(folder: str | Path) -> list[tuple[Path, str]]:
    """Every patch image under ``folder`` with its label, sorted by path.

    The label is the name of the sub-folder a patch sits in (``lung_aca/x.jpeg`` -> "lung_aca");
    for patches directly in ``folder`` it is the file name's prefix before "-" or "_"
    (``ADI-AAQEFMRI.tif`` -> "ADI"), or the name without trailing digits (``lungn12`` -> "lungn").

    Raises:
        ImageReadError: ``folder`` is not a folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageReadError(folder, "not a folder")
    found = []
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in PATCH_SUFFIXES or path.name.startswith("."):
            continue
        if path.parent != folder:
            label = path.parent.name
        else:
            stem = path.stem
            label = _LABEL_SPLIT.split(stem, maxsplit=1)[0] if _LABEL_SPLIT.search(stem) else stem.rstrip("0123456789")
        found.append((path, label or path.stem))
    return found
