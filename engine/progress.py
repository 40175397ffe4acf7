"""Progress reporting for long work, kept free of any GUI toolkit.

Long functions take a ``Progress``; the ui wraps it in a Qt adapter that runs the function in a
worker thread, and tests pass ``NullProgress`` or a recording stub.
"""

from __future__ import annotations

from typing import Protocol


class Cancelled(Exception):
    """Raised by long work when its progress object says the user cancelled."""


class Progress(Protocol):
    def report(self, fraction: float, message: str = "") -> None:
        """Say how far the work is, ``fraction`` in [0, 1]."""

    def cancelled(self) -> bool:
        """True once the user asked to stop; the work raises ``Cancelled`` at its next check."""


class NullProgress:
    """A progress sink that records nothing and never cancels."""

    def report(self, fraction: float, message: str = "") -> None:
        pass

    def cancelled(self) -> bool:
        return False


def check_cancelled(progress: Progress) -> None:
    """Raise ``Cancelled`` if the user asked to stop."""
    if progress.cancelled():
        raise Cancelled()


class ScaledProgress:
    """Maps a sub-task's [0, 1] onto ``[start, end]`` of a parent progress (cancellation passes through)."""

    def __init__(self, parent: Progress, start: float, end: float):
        self.parent, self.start, self.end = parent, start, end

    def report(self, fraction: float, message: str = "") -> None:
        fraction = min(max(fraction, 0.0), 1.0)
        self.parent.report(self.start + (self.end - self.start) * fraction, message)

    def cancelled(self) -> bool:
        return self.parent.cancelled()
