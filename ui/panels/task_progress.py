"""A progress bar with a message and a Cancel button that follows one running ``Task``."""

from __future__ import annotations

from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from ui.workers import Task

_STEPS = 1000


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

    def _on_done(self, task: Task) -> None:
        if task is self._task:
            self._task = None
            self.setVisible(False)

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self.cancel_button.setEnabled(False)
            self.bar.setFormat("Cancelling\u2026")
