"""Three linked planes through a volume: a 3-D cursor, and each plane's image, map and geometry. No Qt.

A volume's array is ``(slices, rows, cols)`` (``engine.imaging.volume``). A plane holds one index
axis fixed at the cursor and shows the other two:

* ``"axial"``, the item plane: slice fixed, rows down and columns across (what the single view
  shows; marks and measures live here);
* ``"coronal"``: row fixed, slices down and columns across;
* ``"sagittal"``: column fixed, slices down and rows across.

The names are those of the radiological display orientation every reader of oriented data
produces for an axial acquisition (slices to Superior, rows to Posterior, columns to Left,
``ImageVolume.orientation == "SPL"``); ``plane_title`` names the plane from the affine when a
series was acquired otherwise. Where slices grow towards the patient's head, the slice axis is
shown bottom-up so that Superior is at the top of the coronal and sagittal planes.

Each plane's pixels are ``spacing`` millimetres apart (the coronal and sagittal planes take the
slice spacing ``dz`` down the screen), so a view that keeps the physical aspect shows anatomy
unstretched. ``PlanesModel`` keeps the cursor: its slice is ``DisplayModel.slice_index`` (the
single source of truth the slice navigator and the marks follow), its row and column are its own.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, get_args

import numpy as np
from psygnal import Signal, SignalGroup

from engine.imaging.render import OverlaySpec
from engine.imaging.volume import ImageVolume
from ui.model.display import RGB_CHANNEL, DisplayModel
from ui.model.overlay import MapRole, OverlayModel

Plane = Literal["axial", "coronal", "sagittal"]
PLANES: tuple[Plane, ...] = get_args(Plane)
Voxel = tuple[int, int, int]  # (slice, row, col)

_FIXED_AXIS = {"axial": 0, "coronal": 1, "sagittal": 2}  # the index axis a plane holds at the cursor
_SHOWN_AXES = {"axial": (1, 2), "coronal": (0, 2), "sagittal": (0, 1)}  # (down the screen, across)
_OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}
_ANATOMICAL_PLANE = {"S": "axial", "I": "axial", "A": "coronal", "P": "coronal", "L": "sagittal", "R": "sagittal"}


@dataclass(frozen=True)
class PlaneAxes:
    """How one plane lies in a volume.

    Attributes:
        plane: the plane's name.
        fixed: the index axis held at the cursor (0 slice, 1 row, 2 column).
        down: the index axis that runs down the screen.
        across: the index axis that runs left to right.
        flipped: True when ``down`` is shown from its last index at the top to its first.
        shape: ``(rows, cols)`` of the plane's image.
        spacing: millimetres between the plane's rows and between its columns.
    """

    plane: Plane
    fixed: int
    down: int
    across: int
    flipped: bool
    shape: tuple[int, int]
    spacing: tuple[float, float]


def plane_axes(volume: ImageVolume, plane: Plane) -> PlaneAxes:
    """The axes, size and pixel spacing of ``plane`` through ``volume``.

    Raises:
        ValueError: ``plane`` is not one of ``PLANES``.
    """
    if plane not in PLANES:
        raise ValueError(f"no plane {plane!r}; planes are {PLANES}")
    down, across = _SHOWN_AXES[plane]
    # The slice axis runs down the coronal and sagittal planes; bottom-up when it points to the head.
    flipped = down == 0 and volume.orientation[0] == "S"
    return PlaneAxes(plane, _FIXED_AXIS[plane], down, across, flipped,
                     (volume.shape[down], volume.shape[across]),
                     (float(volume.spacing[down]), float(volume.spacing[across])))


def reslice(values: np.ndarray, axes: PlaneAxes, index: int) -> np.ndarray:
    """The plane of ``values`` at ``index`` of the fixed axis, as shown on screen.

    Args:
        values: ``(slices, rows, cols)`` array, optionally with trailing axes (colour).
        axes: the plane, from ``plane_axes``.
        index: position along the plane's fixed axis.

    Returns:
        ``(rows, cols)`` of the plane (plus any trailing axes), a view where possible.
    """
    taken = np.take(values, index, axis=axes.fixed)
    return taken[::-1] if axes.flipped else taken


def reslice_map(maps: np.ndarray, axes: PlaneAxes, index: int, image_shape: tuple[int, int, int]) -> np.ndarray:
    """The plane of per-slice maps, which may lie on a coarser grid than the image.

    Each slice's map covers that slice's whole image on an ``(h, w)`` grid (``Analysis.maps``).
    The axial plane is the map of slice ``index`` as stored. For the coronal (sagittal) plane the
    map row (column) under image row (column) ``index`` is interpolated linearly between the two
    nearest map pixel centres, with the centres aligned as ``engine.imaging.render.fit_to_image``
    aligns them, so the plane's map lines up with the axial one where the planes cross.

    Args:
        maps: ``(slices, h, w)`` raw map values of one class.
        axes: the plane, from ``plane_axes``.
        index: position along the plane's fixed axis, in image pixels.
        image_shape: ``(slices, rows, cols)`` of the image the maps cover.

    Returns:
        ``(slices, w)`` or ``(slices, h)`` float32 (flipped like the image) for the coronal or
        sagittal plane; ``(h, w)`` for the axial one. ``render_slice`` fits it to the image.
    """
    if axes.fixed == 0:
        return maps[index]
    n_image, n_map = image_shape[axes.fixed], maps.shape[axes.fixed]
    position = min(max((index + 0.5) * n_map / n_image - 0.5, 0.0), n_map - 1.0)
    before = int(np.floor(position))
    after = min(before + 1, n_map - 1)
    weight = np.float32(position - before)
    low = np.take(maps, before, axis=axes.fixed).astype(np.float32)
    plane = low + (np.take(maps, after, axis=axes.fixed) - low) * weight if weight else low
    return plane[::-1] if axes.flipped else plane


def to_plane(axes: PlaneAxes, voxel: tuple[float, float, float]) -> tuple[float, float]:
    """Plane ``(row, col)`` of a voxel ``(slice, row, col)`` (its fixed coordinate dropped)."""
    down = voxel[axes.down]
    if axes.flipped:
        down = axes.shape[0] - 1 - down
    return float(down), float(voxel[axes.across])


def to_voxel(axes: PlaneAxes, index: float, row: float, col: float) -> tuple[float, float, float]:
    """Voxel ``(slice, row, col)`` of plane position ``(row, col)`` on the plane at ``index``."""
    voxel = [0.0, 0.0, 0.0]
    voxel[axes.fixed] = float(index)
    voxel[axes.down] = float(axes.shape[0] - 1 - row if axes.flipped else row)
    voxel[axes.across] = float(col)
    return voxel[0], voxel[1], voxel[2]


def plane_letters(volume: ImageVolume, plane: Plane) -> tuple[str, str, str, str] | None:
    """The anatomical letters at the plane's left, top, right and bottom edges.

    As ``ui.slice_view.orientation_letters`` for the axial plane: an edge shows where the axis
    across (down) the screen comes from on the left (top) and where it goes on the right
    (bottom), read from the affine's direction of that index axis (reversed where the plane is
    shown flipped).

    Returns:
        ``(left, top, right, bottom)``, e.g. ``("R", "S", "L", "I")`` for the coronal plane of
        a radiologically oriented volume; None when the volume has no patient geometry or an
        axis's direction is unknown.
    """
    codes = volume.orientation
    if not volume.patient_oriented or "?" in codes:
        return None
    axes = plane_axes(volume, plane)
    down, across = codes[axes.down], codes[axes.across]
    if axes.flipped:
        down = _OPPOSITE[down]
    return _OPPOSITE[across], _OPPOSITE[down], across, down


def plane_title(volume: ImageVolume, plane: Plane) -> str:
    """The plane's anatomical name from the direction of its fixed axis ("Axial", "Coronal",
    "Sagittal"); the nominal name when the volume has no patient geometry."""
    code = volume.orientation[_FIXED_AXIS[plane]]
    name = _ANATOMICAL_PLANE.get(code, plane) if volume.patient_oriented else plane
    return name.capitalize()


def three_plane_problem(volume: ImageVolume | None) -> str:
    """Why the volume cannot be shown in three planes, or "" when it can."""
    if volume is None:
        return "Open a volume to see it in three planes"
    if not volume.patient_oriented or volume.kind != "volume":
        words = {"clip": "a clip (frames in time)", "slide": "a slide", "image": "a single image"}
        word = words.get(volume.kind, "an image")
        return f"Three planes need a volume with patient geometry; this is {word}"
    if volume.n_slices < 2:
        return "Three planes need a volume of more than one slice"
    return ""


class PlanesEvents(SignalGroup):
    """Signals of ``PlanesModel``, each with the new value."""

    cursor = Signal(object)  # Voxel: (slice, row, col)
    three_planes = Signal(bool)  # the layout: three planes (True) or the single item view
    available = Signal(bool)  # after each new volume: whether it can be shown in three planes


class PlanesModel:
    """The 3-D cursor through the shown volume and whether three planes are shown.

    The cursor's slice is ``display.slice_index``; moving the cursor in the coronal or sagittal
    plane moves it (and so the slice navigator), and a slice change moves the cursor. A new
    volume puts the cursor at its centre and, when the volume cannot be shown in three planes
    (``three_plane_problem``), goes back to the single view.

    Args:
        display: the display model whose volume, channel and slice the planes show.
        overlay: the overlay model whose map look the planes share.
    """

    def __init__(self, display: DisplayModel, overlay: OverlayModel) -> None:
        self.events = PlanesEvents()
        self._display = display
        self._overlay = overlay
        self._row = 0
        self._col = 0
        self._three_planes = False
        self._available = False
        display.events.volume.connect(self._on_volume)
        display.events.slice_index.connect(lambda _index: self.events.cursor.emit(self.cursor))

    # -- cursor -----------------------------------------------------------------------------
    @property
    def cursor(self) -> Voxel:
        """``(slice, row, col)`` where the three planes cross."""
        return self._display.slice_index, self._row, self._col

    def set_cursor(self, voxel: tuple[float, float, float]) -> None:
        """Move the cursor to the voxel nearest ``voxel`` inside the volume (clamped); the slice
        goes to ``display.slice_index``. ``events.cursor`` fires once when it moved."""
        volume = self._display.volume
        if volume is None:
            return
        item, row, col = (int(min(max(np.floor(v + 0.5), 0), n - 1)) for v, n in zip(voxel, volume.shape))
        before = self.cursor
        self._row, self._col = row, col
        if item != before[0]:
            self._display.slice_index = item  # its event moves the navigator, the item view and the cursor
        elif self.cursor != before:
            self.events.cursor.emit(self.cursor)

    def move_in_plane(self, plane: Plane, row: float, col: float) -> None:
        """Move the cursor to plane position ``(row, col)`` of ``plane`` (its fixed coordinate kept)."""
        axes = self.axes(plane)
        self.set_cursor(to_voxel(axes, self.cursor[axes.fixed], row, col))

    def step(self, plane: Plane, delta: int) -> None:
        """Move ``plane`` ``delta`` positions along its fixed axis (stops at the ends)."""
        voxel = list(self.cursor)
        voxel[_FIXED_AXIS[plane]] += int(delta)
        self.set_cursor(tuple(voxel))

    def index(self, plane: Plane) -> int:
        """Where ``plane`` lies along its fixed axis."""
        return self.cursor[_FIXED_AXIS[plane]]

    def crosshair(self, plane: Plane) -> tuple[float, float]:
        """Plane ``(row, col)`` of the cursor in ``plane``: where the other two planes cross it."""
        return to_plane(self.axes(plane), self.cursor)

    # -- what each plane shows ----------------------------------------------------------------
    def axes(self, plane: Plane) -> PlaneAxes:
        """``plane_axes`` of the shown volume.

        Raises:
            ValueError: no volume is shown.
        """
        if self._display.volume is None:
            raise ValueError("no volume is open to reslice")
        return plane_axes(self._display.volume, plane)

    def image(self, plane: Plane) -> np.ndarray | None:
        """Pixels of the shown channel on ``plane`` through the cursor (``(H, W)``, or
        ``(H, W, 3)`` for the colour channel); None without a volume."""
        volume = self._display.volume
        if volume is None:
            return None
        if self._display.channel == RGB_CHANNEL:
            values = np.moveaxis(volume.array, 0, -1)
        else:
            values = volume.channel(self._display.channel)
        return reslice(values, self.axes(plane), self.index(plane))

    def overlay_spec(self, plane: Plane, role: MapRole = "main") -> OverlaySpec | None:
        """The map to blend over ``plane``: the overlay's map resliced through the cursor, with the
        overlay's colour map, opacity, threshold, contour setting and value range.

        The value range is the one the item view uses, so a colour stands for the same raw value
        in all three planes (with the "slice" scope: the range of the slice under the cursor).
        """
        spec = self._overlay.spec(role)
        maps = self._overlay.shown_maps(role)
        if spec is None or maps is None:
            return None
        volume = self._display.volume
        return replace(spec, saliency=reslice_map(maps, self.axes(plane), self.index(plane), volume.shape))

    def letters(self, plane: Plane) -> tuple[str, str, str, str] | None:
        """``plane_letters`` of the shown volume (None without one)."""
        volume = self._display.volume
        return None if volume is None else plane_letters(volume, plane)

    def title(self, plane: Plane) -> str:
        """``plane_title`` of the shown volume."""
        volume = self._display.volume
        return plane.capitalize() if volume is None else plane_title(volume, plane)

    def value_at(self, voxel: tuple[float, float, float]) -> float | tuple[float, ...] | None:
        """The raw value of the shown channel at the voxel nearest ``voxel`` (R, G, B for the
        colour channel); None outside the volume."""
        volume = self._display.volume
        if volume is None:
            return None
        index = tuple(int(np.floor(v + 0.5)) for v in voxel)
        if not all(0 <= i < n for i, n in zip(index, volume.shape)):
            return None
        if self._display.channel == RGB_CHANNEL:
            return tuple(float(v) for v in volume.array[(slice(None),) + index])
        return float(volume.channel(self._display.channel)[index])

    def patient_position(self, voxel: tuple[float, float, float]) -> tuple[float, float, float] | None:
        """Patient coordinates (LPS, mm) of ``voxel`` through the affine; None without patient geometry."""
        volume = self._display.volume
        if volume is None or not volume.patient_oriented:
            return None
        x, y, z, _ = volume.affine @ np.array([*voxel, 1.0])
        return float(x), float(y), float(z)

    # -- layout -------------------------------------------------------------------------------
    @property
    def available(self) -> bool:
        """True when the shown volume can be shown in three planes."""
        return self._available

    def problem(self) -> str:
        """Why three planes are not available for the shown volume ("" when they are)."""
        return three_plane_problem(self._display.volume)

    @property
    def three_planes(self) -> bool:
        """True while the three planes are shown instead of the single item view."""
        return self._three_planes

    @three_planes.setter
    def three_planes(self, on: bool) -> None:
        if on and not self._available:
            raise ValueError(self.problem())
        if bool(on) != self._three_planes:
            self._three_planes = bool(on)
            self.events.three_planes.emit(self._three_planes)

    def _on_volume(self, volume: ImageVolume | None) -> None:
        if volume is not None:
            _, rows, cols = volume.shape
            self._row, self._col = rows // 2, cols // 2
        self._available = not three_plane_problem(volume)
        if not self._available:
            self.three_planes = False
        self.events.available.emit(self._available)
        self.events.cursor.emit(self.cursor)
