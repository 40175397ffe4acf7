"""``DisplayModel``: which volume is shown, through which channel, at which slice and window.

No Qt: widgets subscribe to ``display.events.<name>`` and write back through the setters, which
clamp and validate (napari's model/view split). Each event fires once, after its value changed,
with the new value.
"""

from __future__ import annotations

import math

import numpy as np
from psygnal import Signal, SignalGroup

from engine.imaging.volume import ImageVolume

RGB_CHANNEL = "RGB (colour)"  # the channel choice that shows an RGB volume's three channels as colour
_MIN_WINDOW_WIDTH = 1e-6

#: Window presets on the number keys: key -> (name, centre, width), in Hounsfield units for CT
#: (the usual radiology values; "brain" also suits MR scaled like CT poorly, so it is a CT preset).
WINDOW_PRESETS: dict[str, tuple[str, float, float]] = {
    "1": ("Soft tissue", 40.0, 400.0),
    "2": ("Lung", -600.0, 1500.0),
    "3": ("Bone", 480.0, 2500.0),
    "4": ("Brain", 40.0, 80.0),
}


class DisplayEvents(SignalGroup):
    """Signals of ``DisplayModel``, each with the new value."""

    volume = Signal(object)  # ImageVolume | None: a case was opened (or closed)
    channel = Signal(str)
    slice_index = Signal(int)
    window = Signal(float, float)  # centre, width
    invert = Signal(bool)


class DisplayModel:
    """The shown volume, its channel, slice index and grey-level window.

    Setters clamp to valid values (slice index into the volume, window width above zero) and raise
    ``ValueError`` for a channel the volume does not have.
    """

    def __init__(self) -> None:
        self.events = DisplayEvents()
        self._volume: ImageVolume | None = None
        self._channel = ""
        self._slice_index = 0
        self._window = (0.0, 1.0)
        self._invert = False

    @property
    def volume(self) -> ImageVolume | None:
        return self._volume

    def set_volume(self, volume: ImageVolume | None, channel: str | None = None) -> None:
        """Show a new volume at its middle slice with its default window.

        ``events.volume`` always fires (models that belong to the previous case, such as its
        analysis and drafts, drop them on it); then channel, slice index and window fire where
        they changed.

        Args:
            volume: the volume, or None to show nothing.
            channel: channel to show; when None, ``RGB_CHANNEL`` for an RGB volume, else the
                first channel.

        Raises:
            ValueError: ``channel`` is not one of the volume's.
        """
        if volume is not None and channel is not None and channel not in channel_choices(volume):
            raise ValueError(f"no channel {channel!r}; channels are {channel_choices(volume)}")
        before = (self._channel, self._slice_index, self._window)
        self._volume = volume
        if volume is not None:
            self._channel = channel or channel_choices(volume)[0]
            self._slice_index = volume.n_slices // 2
            self._window = _valid_window(*volume.default_window())
        else:
            self._channel, self._slice_index = "", 0
        self.events.volume.emit(volume)
        if self._channel != before[0]:
            self.events.channel.emit(self._channel)
        if self._slice_index != before[1]:
            self.events.slice_index.emit(self._slice_index)
        if self._window != before[2]:
            self.events.window.emit(*self._window)

    @property
    def channel(self) -> str:
        return self._channel

    @channel.setter
    def channel(self, name: str) -> None:
        available = channel_choices(self._volume)
        if name not in available:
            raise ValueError(f"no channel {name!r}; channels are {available}")
        if name != self._channel:
            self._channel = name
            self.events.channel.emit(name)

    @property
    def slice_index(self) -> int:
        return self._slice_index

    @slice_index.setter
    def slice_index(self, index: int) -> None:
        last = self._volume.n_slices - 1 if self._volume is not None else 0
        index = int(min(max(int(index), 0), last))
        if index != self._slice_index:
            self._slice_index = index
            self.events.slice_index.emit(index)

    def step_slice(self, delta: int) -> None:
        """Move ``delta`` slices (negative goes back), stopping at the first and last slice."""
        self.slice_index = self._slice_index + delta

    @property
    def window(self) -> tuple[float, float]:
        """``(centre, width)`` of the grey-level window."""
        return self._window

    @window.setter
    def window(self, centre_width: tuple[float, float]) -> None:
        window = _valid_window(*centre_width)
        if window != self._window:
            self._window = window
            self.events.window.emit(*window)

    def reset_window(self) -> None:
        """Back to the volume's default window (``ImageVolume.default_window``)."""
        if self._volume is not None:
            self.window = self._volume.default_window()

    def apply_preset(self, key: str) -> str:
        """Set the window of preset ``key`` ("1" to "4", ``WINDOW_PRESETS``); returns its name.

        Raises:
            KeyError: no such preset.
        """
        name, centre, width = WINDOW_PRESETS[key]
        self.window = (centre, width)
        return name

    @property
    def invert(self) -> bool:
        """True when grey levels are shown inverted (white for low values)."""
        return self._invert

    @invert.setter
    def invert(self, invert: bool) -> None:
        if bool(invert) != self._invert:
            self._invert = bool(invert)
            self.events.invert.emit(self._invert)

    def current_image(self) -> np.ndarray | None:
        """Pixels of the shown channel at the shown slice: ``(H, W)``, or ``(H, W, 3)`` when the
        channel is ``RGB_CHANNEL``; None without a volume."""
        if self._volume is None:
            return None
        return self.image_at(self._slice_index)

    def image_at(self, index: int) -> np.ndarray:
        """Pixels of the shown channel at slice ``index`` (as ``current_image``)."""
        if self._channel == RGB_CHANNEL:
            return np.moveaxis(self._volume.array[:, index], 0, -1)
        return self._volume.channel(self._channel)[index]

    def pixel_value(self, row: float, col: float) -> float | tuple[float, ...] | None:
        """The raw value of the shown channel at the pixel under image ``(row, col)`` of the shown
        slice (a tuple of R, G, B for the colour channel); None off the image."""
        if self._volume is None:
            return None
        _, rows, cols = self._volume.shape
        r, c = int(np.floor(row + 0.5)), int(np.floor(col + 0.5))
        if not (0 <= r < rows and 0 <= c < cols):
            return None
        value = self.current_image()[r, c]
        if np.ndim(value):
            return tuple(float(v) for v in value)
        return float(value)

    def patient_position(self, row: float, col: float) -> tuple[float, float, float] | None:
        """Patient coordinates (LPS, mm) of image ``(row, col)`` on the shown slice, through the
        volume's affine; None without a volume or when it has no patient geometry."""
        if self._volume is None or not self._volume.patient_oriented:
            return None
        x, y, z, _ = self._volume.affine @ np.array([self._slice_index, row, col, 1.0])
        return float(x), float(y), float(z)

    def item_word(self) -> str:
        """What one step along the volume's second axis is called: "slice", "frame", "image" or "view"."""
        kind = self._volume.kind if self._volume is not None else "volume"
        return {"clip": "frame", "image": "image", "slide": "view"}.get(kind, "slice")

    def require_inside(self, row: float, col: float) -> None:
        """Raise ``ValueError`` unless image ``(row, col)`` lies on the shown volume's pixels
        (pixel ``(r, c)`` covers ``[r - 0.5, r + 0.5] x [c - 0.5, c + 0.5]``)."""
        if self._volume is None:
            raise ValueError("no image is open to draw on")
        _, rows, cols = self._volume.shape
        if not (-0.5 <= row <= rows - 0.5 and -0.5 <= col <= cols - 0.5):
            raise ValueError(f"({row:.1f}, {col:.1f}) lies outside the {rows} x {cols} image")


def channel_choices(volume: ImageVolume | None) -> tuple[str, ...]:
    """The channels a reader can pick, the default first: ``RGB_CHANNEL`` then R, G and B for an
    RGB volume (``ImageVolume.is_rgb``), else the volume's channel names; empty without a volume."""
    if volume is None:
        return ()
    if volume.is_rgb:
        return (RGB_CHANNEL,) + volume.channel_names
    return volume.channel_names


def _valid_window(centre: float, width: float) -> tuple[float, float]:
    centre, width = float(centre), float(width)
    if not (math.isfinite(centre) and math.isfinite(width)):
        raise ValueError(f"window centre and width must be finite, got ({centre}, {width})")
    return centre, max(width, _MIN_WINDOW_WIDTH)
