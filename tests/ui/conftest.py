"""Fixtures for the ui tests: the fake workstation and an opened main window."""

from __future__ import annotations

import pytest

from tests.ui.fake_workstation import FakeWorkstation


@pytest.fixture
def workstation() -> FakeWorkstation:
    return FakeWorkstation()


@pytest.fixture
def window(qtbot, workstation):
    """A shown 1400 x 900 ``MainWindow`` over the fake workstation, no case open yet."""
    from ui.main_window import MainWindow

    main = MainWindow(workstation)  # closed here, not by qtbot: drafts must go first or
    main.resize(1400, 900)
    main.show()
    qtbot.waitExposed(main)
    yield main
    main.runner.cancel_all()
    main.runner.wait(5000)
    main.state.annotation.clear()  # ... closing would ask about unsaved work
    main.reading_form.reset()
    main.close()
    main.deleteLater()


@pytest.fixture
def opened(qtbot, window):
    """The main window with CASE_A open (FLAIR at the middle slice)."""
    task = window.open_item(window.worklist.items()[0])
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    assert window.case is not None
    qtbot.waitUntil(lambda: not window._choices_task.is_running, timeout=5000)  # bundles and methods offered
    return window
