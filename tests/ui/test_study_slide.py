"""A study case that is a whole slide is read in the slide view, as in free review: handed to the
viewer as its pyramid pixels only (no path, no file properties), and its file is closed when the
reader moves to the next case."""

from __future__ import annotations

import dataclasses

import numpy as np
from PySide6.QtCore import QPointF

from app.study_workstation import deidentified
from app.workstation import SalienceWorkstation
from engine.imaging.slide import SlidePixels, read_slide
from tests.ui.study_world import build_study_world, every_kind_design
from tests.ui.test_slide_view import mosaic, pixels, settle  # noqa: F401 (fixture)
from tests.ui.test_study_window import windows  # noqa: F401 (fixture)


def test_a_study_slide_is_read_in_the_slide_view_and_closed_at_the_next_case(qtbot, tmp_path, windows,  # noqa: F811
                                                                            mosaic, monkeypatch):  # noqa: F811
    world = build_study_world(tmp_path, every_kind_design(), cases=2)
    original = SalienceWorkstation.open_study_case
    slides, as_slide = [], set()

    def read_as_slide(self, assignment_id, progress):
        opened = original(self, assignment_id, progress)
        if assignment_id not in as_slide:
            return opened
        slides.append(deidentified(read_slide(mosaic.path), opened.volume.source))
        return dataclasses.replace(opened, volume=slides[-1])

    monkeypatch.setattr(SalienceWorkstation, "open_study_case", read_as_slide)
    window = windows(world, "ann")
    mode, view = window.study.reader, window.slide_view
    entries = mode.worklist.entries()
    unaided = next(e for e in entries if e.arm == "unaided")  # no AI map: the slide's own pixels
    other = next(e for e in entries if e.assignment_id != unaided.assignment_id)
    as_slide.add(unaided.assignment_id)
    for entry in (other, unaided) if mode.assignment_id == unaided.assignment_id else (unaided,):
        with qtbot.waitSignal(mode.open_assignment(entry.assignment_id).done, timeout=10000):
            pass
    qtbot.waitUntil(lambda: mode.view.form.assignment_id == unaided.assignment_id)
    assert window.showing_slide() and not window.views.isVisible()
    shown = view.loader.reader
    assert isinstance(shown, SlidePixels) and not hasattr(shown, "path") and str(mosaic.path) not in repr(shown)
    view.set_view(1.0, QPointF(300.0, 250.0))  # level 0 under the screen, read from the slide's tiles
    settle(qtbot, view)
    corner = view.to_screen(150.0, 150.0)  # level-0 x, y 150..250 on screen
    left, top = round(corner.x()), round(corner.y())
    np.testing.assert_array_equal(pixels(view)[top : top + 100, left : left + 100], mosaic.level0[150:250, 150:250])
    with qtbot.waitSignal(mode.open_assignment(other.assignment_id).done, timeout=10000):
        pass
    qtbot.waitUntil(lambda: mode.view.form.assignment_id == other.assignment_id)
    assert not window.showing_slide() and window.views.isVisible()
    assert slides[-1].extras["slide"].closed
