"""``TaskRunner`` runs plain functions off the GUI thread and reports back on it."""

from __future__ import annotations

import threading

import pytest

from engine.errors import ImageReadError
from engine.progress import check_cancelled
from ui.workers import TaskRunner


@pytest.fixture
def runner(qtbot):
    pool = TaskRunner()
    yield pool
    pool.cancel_all()
    pool.wait(5000)


def test_result_and_progress_arrive_on_the_gui_thread(qtbot, runner):
    """The work runs in another thread; progress and the result are delivered in the GUI thread."""
    gui_thread = threading.get_ident()
    worker_threads, progress_threads, fractions = [], [], []

    def work(a, b, progress):
        worker_threads.append(threading.get_ident())
        for step in (0.25, 0.5, 1.0):
            progress.report(step, f"at {step}")
        return a + b

    task = runner.start("adding", work, 2, 3)
    task.progressed.connect(lambda f, _m: (fractions.append(f), progress_threads.append(threading.get_ident())))
    with qtbot.waitSignal(task.finished, timeout=5000) as blocker:
        pass
    assert blocker.args == [5]
    assert worker_threads and worker_threads[0] != gui_thread
    assert fractions == [0.25, 0.5, 1.0]
    assert set(progress_threads) == {gui_thread}


def test_exception_is_delivered_not_swallowed(qtbot, runner):
    """An exception raised by the work arrives in ``failed`` with its traceback."""
    def work(progress):
        raise ImageReadError("/x.nii", "truncated pixel data")

    task = runner.start("reading", work)
    with qtbot.waitSignal(task.failed, timeout=5000) as blocker:
        pass
    error = blocker.args[0]
    assert isinstance(error, ImageReadError) and str(error) == "/x.nii: truncated pixel data"
    assert error.__traceback__ is not None


def test_cancel_stops_the_work_and_signals_cancelled(qtbot, runner):
    """Cancel sets the flag the work checks; the task ends with ``cancelled``, not ``finished``."""
    started = threading.Event()

    def work(progress):
        started.set()
        while True:
            check_cancelled(progress)
            threading.Event().wait(0.005)

    task = runner.start("looping", work)
    finished = []
    task.finished.connect(finished.append)
    assert started.wait(5)
    with qtbot.waitSignal(task.cancelled, timeout=5000):
        task.cancel()
    assert finished == [] and not task.is_running


def test_thousands_of_progress_reports_leave_python_singletons_alone(qtbot, runner):
    """PySide6 6.12.0's ``Signal.emit`` returned a borrowed ``True``: each emit dropped its
    refcount by one and the window aborted ("deallocating True") after a few hundred progress
    reports on Python 3.11. A long analysis reports thousands."""
    import sys

    before = sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)
    reports = 3000

    def work(progress):
        for step in range(reports):
            progress.report(step / reports, "")
        return step

    task = runner.start("reporting", work)
    seen = []
    task.progressed.connect(lambda f, _m: seen.append(f))
    with qtbot.waitSignal(task.finished, timeout=20000):
        pass
    qtbot.waitUntil(lambda: len(seen) == reports, timeout=5000)
    after = sys.getrefcount(True), sys.getrefcount(False), sys.getrefcount(None)
    assert all(abs(a - b) < reports // 10 for a, b in zip(after, before)), (before, after)
