"""``CinePlayer``: plays a clip's frames at the rate it was recorded, looping at the end.

A ``QTimer`` ticks every ``frame_time_ms``; each tick shows the frame that real time has reached
since Play (measured with a ``QElapsedTimer``), so a slow repaint skips frames instead of slowing
the clip down. Playing stops when the case changes.
"""

from __future__ import annotations

from PySide6.QtCore import QElapsedTimer, QObject, Qt, QTimer, Signal

from engine.imaging.volume import ImageVolume
from ui.model import DisplayModel


def frame_rate(volume: ImageVolume | None) -> float | None:
    """Frames per second of a playable volume, else None.

    Args:
        volume: the shown volume.

    Returns:
        ``1000 / frame_time_ms`` when the volume has a positive ``frame_time_ms`` and more than one
        frame; None otherwise (nothing to play, or no known rate).
    """
    if volume is None or not volume.frame_time_ms or volume.frame_time_ms <= 0:
        return None
    if volume.n_slices < 2:
        return None
    return 1000.0 / volume.frame_time_ms


class CinePlayer(QObject):
    """Steps ``display.slice_index`` through a clip in real time while playing.

    Signals:
        playing_changed(bool): after playback starts or stops.
    """

    playing_changed = Signal(bool)

    def __init__(self, display: DisplayModel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.display = display
        self._timer = QTimer(self)
        self._timer.setTimerType(Qt.TimerType.PreciseTimer)
        self._timer.timeout.connect(self._tick)
        self._clock = QElapsedTimer()
        self._start_frame = 0
        display.events.volume.connect(lambda _volume: self.pause())

    @property
    def playing(self) -> bool:
        return self._timer.isActive()

    def can_play(self) -> bool:
        """True when the shown volume is a clip with a known frame time."""
        return frame_rate(self.display.volume) is not None

    def play(self) -> None:
        """Start from the shown frame; does nothing for a volume that cannot play."""
        if self.playing or not self.can_play():
            return
        self._start_frame = self.display.slice_index
        self._clock.start()
        self._timer.start(max(1, round(self.display.volume.frame_time_ms)))
        self.playing_changed.emit(True)

    def pause(self) -> None:
        """Stop on the shown frame."""
        if self.playing:
            self._timer.stop()
            self.playing_changed.emit(False)

    def toggle(self) -> None:
        """Play when paused, pause when playing."""
        if self.playing:
            self.pause()
        else:
            self.play()

    def _tick(self) -> None:
        volume = self.display.volume
        if volume is None or not self.can_play():
            self.pause()
            return
        elapsed_frames = int(self._clock.elapsed() / volume.frame_time_ms)
        self.display.slice_index = (self._start_frame + elapsed_frames) % volume.n_slices
