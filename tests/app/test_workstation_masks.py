"""A painted mask, for real: paint on a glioma slice, save the reading, restart the program on
the same SQLite file, reopen the reading, and see the mask drawn again where it was painted."""

from __future__ import annotations

import numpy as np

from app.settings import Settings
from app.startup import open_workstation
from engine.progress import NullProgress
from tests.ui.test_slice_view import shown
from ui.backend import ReadingDraft
from ui.model import ViewerState
from ui.model.label_mask import label_colour

CASE = "TCGA_CS_4941_19960909"


def _open(settings: Settings):
    workstation = open_workstation(settings)
    item = next(i for i in workstation.worklist() if i.title == CASE)
    case = workstation.open_case(item, NullProgress())
    state = ViewerState()
    state.display.set_volume(case.volume, case.display_channel)
    return workstation, case, state


def _screen_colour(qtbot, state: ViewerState, row: int, col: int) -> tuple[int, int, int]:
    view = shown(qtbot, state)
    point = view.image_to_widget(row, col).toPoint()
    colour = view.grab().toImage().pixelColor(point)
    return colour.red(), colour.green(), colour.blue()


def test_a_painted_mask_survives_a_restart_and_is_drawn_again(qtbot, tmp_path, shared_data):
    settings = Settings(home=tmp_path / "home", db_url=f"sqlite:///{tmp_path / 'home' / 'salience.db'}",
                        demo_data=shared_data, reader="dr_a")
    workstation, case, state = _open(settings)
    annotation = state.annotation
    annotation.label, annotation.tool, annotation.brush_radius = "lesion", "brush", 6
    annotation.begin_stroke(60.0, 50.0)
    annotation.extend_stroke(80.0, 70.0)
    annotation.end_stroke()
    painted = annotation.drafts[0].mask.decode()
    here = state.display.slice_index
    saved = workstation.save_reading(case, ReadingDraft("FLAIR abnormality present", 4, annotations=annotation.drafts))

    restarted, reopened_case, shown = _open(settings)  # a new engine and session on the same file
    shown.display.slice_index = here
    bare = _screen_colour(qtbot, shown, 70, 60)
    reading, _ = restarted.reopen_reading(reopened_case, saved.id, NullProgress())
    (mark,) = reading.annotations
    assert (mark.kind, mark.slice_index, mark.label) == ("mask", here, "lesion")
    np.testing.assert_array_equal(mark.mask.decode(), painted)
    shown.annotation.show_saved(reading.annotations)
    assert shown.annotation.drafts == ()  # shown, not editable: the reader paints a new reading
    on_mask = _screen_colour(qtbot, shown, 70, 60)
    assert on_mask != bare
    colour = label_colour(shown.annotation.label_value("lesion"))
    assert np.argmax(np.subtract(on_mask, bare)) == int(np.argmax(colour))  # tinted towards the label's colour
