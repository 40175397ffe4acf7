"""A progress bar with a message, the time left and a Cancel button that follows one ``Task``."""

from __future__ import annotations

import math
import time

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from ui.workers import Task

_STEPS = 1000
#: The time left is said once the work has run this long and done this share (earlier guesses jump).
_ESTIMATE_AFTER_S, _ESTIMATE_AFTER_FRACTION = 2.0, 0.02


def duration_text(seconds: float) -> str:
    """A duration as a reader says it: "8 s", "2 min 10 s", "1 h 5 min"."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{max(1, math.ceil(seconds))} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest and minutes < 10 else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def time_left(elapsed_s: float, fraction: float) -> float | None:
    """Seconds left if the work goes on at the pace it has kept so far; None while too early to say."""
    if elapsed_s < _ESTIMATE_AFTER_S or fraction < _ESTIMATE_AFTER_FRACTION or fraction >= 1.0:
        return None
    return elapsed_s * (1.0 - fraction) / fraction


class TaskProgress(QWidget):
    """Shows a task's progress while it runs; hidden when idle. Cancel asks the task to stop."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar()
        self.bar.setRange(0, _STEPS)
        self.bar.setTextVisible(True)
        self.message = QLabel()
        self.cancel_button = QPushButton("Cancel")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.message)
        layout.addWidget(self.bar, 1)
        layout.addWidget(self.cancel_button)
        self._task: Task | None = None
        self.cancel_button.clicked.connect(self._cancel)
        self.setVisible(False)

    def follow(self, task: Task) -> None:
        """Track ``task`` until it is done."""
        self._task = task
        self._started = time.monotonic()
        self._name = task.name
        self.bar.setValue(0)
        self.bar.setFormat(f"{task.name}\u2026 %p%")
        self.message.clear()
        self.cancel_button.setEnabled(True)
        self.setVisible(True)
        task.progressed.connect(self._on_progress)
        task.done.connect(lambda: self._on_done(task))

    def _on_progress(self, fraction: float, message: str) -> None:
        self.bar.setValue(round(fraction * _STEPS))
        if message:
            self.message.setText(message)
        if not self.cancel_button.isEnabled():
            return  # cancelling: the bar says so
        left = time_left(time.monotonic() - self._started, fraction)
        self.bar.setFormat(f"{self._name}\u2026 %p%" + (f", about {duration_text(left)} left" if left is not None else ""))

    def _on_done(self, task: Task) -> None:
        if task is self._task:
            self._task = None
            self.setVisible(False)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self.cancel_button.setEnabled(False)
            self.bar.setFormat("Cancelling\u2026")
