"""Run slow plain functions off the GUI thread (Orange3's pattern).

The work is a plain function whose last argument is a ``engine.progress.Progress``; ``TaskRunner``
runs it in a ``QThreadPool`` and a ``Task`` delivers progress, the result, a cancellation or the
exception to the GUI thread by signals. Nothing raised by the work is swallowed: it arrives in
``Task.failed`` with its traceback attached.
"""

from __future__ import annotations

import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from engine.progress import Cancelled


class QtProgress:
    """The ``Progress`` a worker sees: reports travel to the GUI thread, cancel is a flag."""

    def __init__(self, relay: "_Relay") -> None:
        self._relay = relay
        self._cancel = threading.Event()

    def report(self, fraction: float, message: str = "") -> None:
        self._relay.progressed.emit(float(min(max(fraction, 0.0), 1.0)), str(message))

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        self._cancel.set()


class _Relay(QObject):
    """Emitted from the worker thread; received by ``Task`` (a GUI-thread object) queued."""

    progressed = Signal(float, str)
    succeeded = Signal(object)
    raised = Signal(object)


class Task(QObject):
    """One piece of work in flight. Every signal fires on the GUI thread.

    Signals:
        progressed(fraction, message): the work reported progress.
        finished(result): the work returned.
        cancelled(): the work stopped because the user cancelled.
        failed(exception): the work raised; ``exception.__traceback__`` is kept.
        done(): after exactly one of finished, cancelled or failed.
    """

    progressed = Signal(float, str)
    finished = Signal(object)
    cancelled = Signal()
    failed = Signal(object)
    done = Signal()

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.relay = _Relay()
        self.progress = QtProgress(self.relay)
        self.is_running = True
        self.relay.progressed.connect(self._on_progress)
        self.relay.succeeded.connect(self._on_success)
        self.relay.raised.connect(self._on_exception)

    def cancel(self) -> None:
        """Ask the work to stop; it raises ``Cancelled`` at its next progress check."""
        self.progress.cancel()

    @Slot(float, str)
    def _on_progress(self, fraction: float, message: str) -> None:
        if self.is_running:
            self.progressed.emit(fraction, message)

    @Slot(object)
    def _on_success(self, result: object) -> None:
        self.is_running = False
        if self.progress.cancelled():
            self.cancelled.emit()
        else:
            self.finished.emit(result)
        self.done.emit()

    @Slot(object)
    def _on_exception(self, exception: object) -> None:
        self.is_running = False
        if isinstance(exception, Cancelled):
            self.cancelled.emit()
        else:
            self.failed.emit(exception)
        self.done.emit()


class _Runnable(QRunnable):
    def __init__(self, work: Callable[..., Any], args: tuple, relay: _Relay, progress: QtProgress):
        super().__init__()
        self._work, self._args, self._relay, self._progress = work, args, relay, progress

    def run(self) -> None:
        try:
            result = self._work(*self._args, self._progress)
        except BaseException as exc:  # delivered to the GUI thread, never swallowed
            self._relay.raised.emit(exc)
        else:
            self._relay.succeeded.emit(result)


class TaskRunner(QObject):
    """Starts ``Task``s in its own thread pool and keeps them alive until they are done."""

    def __init__(self, parent: QObject | None = None, max_threads: int = 2) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._tasks: set[Task] = set()

    def start(self, name: str, work: Callable[..., Any], *args: Any) -> Task:
        """Run ``work(*args, progress)`` in the pool.

        Args:
            name: what the work is, for messages ("Opening case").
            work: a plain function; its last parameter receives the ``Progress``.
            *args: the arguments before the progress.

        Returns:
            The ``Task``; connect to its signals right away (they are queued, so none is missed).
        """
        task = Task(name, self)
        self._tasks.add(task)
        task.done.connect(lambda: self._tasks.discard(task))
        self._pool.start(_Runnable(work, args, task.relay, task.progress))
        return task

    def cancel_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()

    def wait(self, msecs: int = -1) -> bool:
        """Block until every running work function has returned; True if all did in time."""
        return self._pool.waitForDone(msecs)
