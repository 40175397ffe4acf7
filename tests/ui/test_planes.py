"""Three linked planes on screen: where a voxel is drawn, the aspect, the crosshair, the CAM, the mode.

The volume (``tests.ui.model.test_planes.voxel_volume``) is 10 slices x 20 rows x 30 columns,
3 mm between slices and 1 mm in plane, radiological order, one bright voxel at (7, 5, 20). Each
plane view is 300 x 300 pixels, so 10 screen pixels are one millimetre in every plane:

* axial (30 x 20 mm): the image spans x 0-300, y 50-250, a voxel is 10 x 10 pixels;
* coronal (30 mm across, 10 slices x 3 mm = 30 mm down): x 0-300, y 0-300, a voxel 10 x 30;
* sagittal (20 mm across, 30 mm down): x 50-250, y 0-300, a voxel 10 x 30.

Slices run bottom-up in the coronal and sagittal planes (Superior at the top): slice s is plane
row 9 - s. The expected places below are worked out from these numbers, not asked of the view.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent

from tests.ui.fake_workstation import synthetic_clip, synthetic_volume
from tests.ui.model.test_planes import BRIGHT, SHAPE, voxel_volume
from ui.backend import Analysis
from ui.model import ViewerState
from ui.planes import PLANE_COLOURS, PlanesLayout, PlaneView

SIDE = 300
GLIOMA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "glioma-lgg"


def plane_view(qtbot, state: ViewerState, plane: str) -> PlaneView:
    view = PlaneView(state, plane)
    view.smooth = False
    qtbot.addWidget(view)
    view.resize(SIDE, SIDE)
    view.show()
    qtbot.waitExposed(view)
    return view


@pytest.fixture
def state() -> ViewerState:
    state = ViewerState()
    state.display.set_volume(voxel_volume())
    state.planes.set_cursor(BRIGHT)
    return state


def colour(view: PlaneView, x: int, y: int) -> tuple[int, int, int]:
    pixel = view.grab().toImage().pixelColor(x, y)
    return pixel.red(), pixel.green(), pixel.blue()


def near(view: PlaneView, x: int, y: int, wanted) -> bool:
    """True when ``wanted`` (a QColor) is on screen within a pixel of (x, y) (line rasterising)."""
    image = view.grab().toImage()
    target = (wanted.red(), wanted.green(), wanted.blue())
    return any(image.pixelColor(x + dx, y + dy).getRgb()[:3] == target for dx in (-1, 0, 1) for dy in (-1, 0, 1))


def test_the_bright_voxel_is_drawn_where_it_lies_in_the_coronal_and_sagittal_planes(qtbot, state):
    """Voxel (slice 7, row 5, col 20): coronal plane row 2, column 20 covers x 200-210, y 60-90;
    sagittal plane row 2, column 5 covers x 100-110, y 60-90; its neighbours are black."""
    coronal, sagittal = plane_view(qtbot, state, "coronal"), plane_view(qtbot, state, "sagittal")
    for view, left in ((coronal, 200), (sagittal, 100)):
        assert min(colour(view, left + 2, 63)) > 240  # off the crosshair, inside the voxel
        assert max(colour(view, left + 2, 93)) < 10  # the slice below (plane row 3)
        assert max(colour(view, left + 2, 57)) < 10  # the slice above
        assert max(colour(view, left - 3, 63)) < 10 and max(colour(view, left + 13, 63)) < 10
    assert coronal.edge_letters() == ("R", "S", "L", "I") and sagittal.edge_letters() == ("A", "S", "P", "I")


def test_anisotropic_spacing_sets_the_drawn_aspect(qtbot):
    """With 3 mm slices and 1 mm pixels the sagittal plane (20 rows x 10 slices) is drawn 200 x
    300 pixels (2:3) and the coronal one (30 columns x 10 slices) 300 x 300, not 20:10 and 30:10."""
    state = ViewerState()
    state.display.set_volume(voxel_volume().with_(array=np.full((1,) + SHAPE, 100.0, np.float32)))
    state.display.window = (100.0, 100.0)  # every voxel mid-grey (128)
    for plane, size in (("sagittal", (200, 300)), ("coronal", (300, 300)), ("axial", (300, 200))):
        view = plane_view(qtbot, state, plane)
        image = view.grab().toImage()
        grey = np.array([[image.pixelColor(x, y).getRgb()[:3] == (128, 128, 128) for x in range(SIDE)]
                         for y in range(0, SIDE, 3)])
        columns, rows = np.nonzero(grey.any(axis=0))[0], np.nonzero(grey.any(axis=1))[0]
        width, height = columns[-1] - columns[0] + 1, (rows[-1] - rows[0]) * 3 + 1
        assert abs(width - size[0]) <= 1 and abs(height - size[1]) <= 3, plane


def test_clicking_the_sagittal_plane_moves_the_slice_and_the_crosshair(qtbot, state):
    """A click at sagittal (105, 45) is plane row 1 (slice 8), plane column 5 (row 5): the display
    goes to slice 8, and the axial plane's coronal line moves to row 5's centre (y = 105)."""
    sagittal, axial = plane_view(qtbot, state, "sagittal"), plane_view(qtbot, state, "axial")
    state.planes.set_cursor((7, 12, 20))
    assert near(axial, 20, 50 + 125, PLANE_COLOURS["coronal"])  # row 12 before the click
    qtbot.mouseClick(sagittal, Qt.MouseButton.LeftButton, pos=QPoint(105, 45))
    assert state.display.slice_index == 8 and state.planes.cursor == (8, 5, 20)
    assert near(axial, 20, 105, PLANE_COLOURS["coronal"])
    assert not near(axial, 20, 175, PLANE_COLOURS["coronal"])
    assert near(sagittal, 60, 45, PLANE_COLOURS["axial"])  # sagittal's own axial line at slice 8
    qtbot.mousePress(sagittal, Qt.MouseButton.LeftButton, pos=QPoint(105, 45))
    qtbot.mouseMove(sagittal, QPoint(195, 285))  # drag to plane row 9 (slice 0), plane column 14
    qtbot.mouseRelease(sagittal, Qt.MouseButton.LeftButton, pos=QPoint(195, 285))
    assert state.planes.cursor == (0, 14, 20)


def test_the_wheel_steps_the_plane_under_the_pointer(qtbot, state):
    coronal = plane_view(qtbot, state, "coronal")
    centre = QPointF(150, 150)
    event = QWheelEvent(centre, coronal.mapToGlobal(centre), QPoint(0, 0), QPoint(0, 240),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    coronal.wheelEvent(event)
    assert state.planes.cursor == (7, 7, 20) and state.display.slice_index == 7
    assert max(colour(coronal, 202, 63)) < 10  # row 7 holds no bright voxel


def test_a_cam_hot_spot_is_drawn_at_its_resliced_place(qtbot, state):
    """A hot spot at voxel (7, 5, 10) in a jet map shows dark red at coronal x 100-110, y 60-90;
    the sagittal plane through column 20 has no red until the cursor moves to column 10."""
    maps = np.zeros((2,) + SHAPE, dtype=np.float32)
    maps[1, 7, 5, 10] = 1.0
    probabilities = np.tile([[0.3, 0.7]], (SHAPE[0], 1))
    state.overlay.set_analysis(Analysis("t 1", ("a", "b"), probabilities, "gradcam", maps, 1, (1, 2)))
    state.overlay.class_index = 1
    state.overlay.colormap = "jet"
    coronal, sagittal = plane_view(qtbot, state, "coronal"), plane_view(qtbot, state, "sagittal")

    def red(rgb):
        return rgb[0] > 50 and rgb[1] < 10 and rgb[2] < 10

    assert red(colour(coronal, 103, 63)) and not red(colour(coronal, 113, 63))
    image = sagittal.grab().toImage()
    assert not any(red(image.pixelColor(x, y).getRgb()) for x in range(50, 250, 2) for y in range(0, 300, 5))
    state.planes.set_cursor((7, 5, 10))
    assert red(colour(sagittal, 103, 63))


def test_every_plane_prints_letters_on_all_four_sides(qtbot, state):
    """Light grey text is drawn in the middle of each edge of each plane's image (the volume is
    black there and the crosshair is coloured, so grey pixels are the letters)."""
    for plane in ("axial", "coronal", "sagittal"):
        view = plane_view(qtbot, state, plane)
        assert view.edge_letters() is not None
        image = view.grab().toImage()
        rect = view.image_rect()
        mid_x, mid_y = int(rect.center().x()) - 10, int(rect.center().y()) - 10
        boxes = {"left": (int(rect.left()) + 4, mid_y), "top": (mid_x, int(rect.top()) + 4),
                 "right": (int(rect.right()) - 24, mid_y), "bottom": (mid_x, int(rect.bottom()) - 24)}
        for side, (x0, y0) in boxes.items():
            text = sum(1 for x in range(x0, x0 + 20) for y in range(y0, y0 + 20)
                       if len(set(image.pixelColor(x, y).getRgb()[:3])) == 1 and image.pixelColor(x, y).red() > 100)
            assert text >= 5, f"{plane} {side}"


def test_a_drawing_tool_in_another_plane_says_where_it_works(qtbot, state):
    """With the box tool, a click in the coronal plane draws nothing and says so."""
    coronal = plane_view(qtbot, state, "coronal")
    state.annotation.tool = "box"
    with qtbot.waitSignal(coronal.message) as said:
        qtbot.mouseClick(coronal, Qt.MouseButton.LeftButton, pos=QPoint(150, 150))
    assert "axial plane" in said.args[0] and state.annotation.drafts == ()
    assert state.planes.cursor == BRIGHT


def test_a_glioma_case_opens_in_three_planes(qtbot):
    """A real TCGA-LGG case (23 slices of 128 x 128, 1 x 2 x 2 mm) in the three-plane layout:
    every plane shows anatomy, the coronal plane drawn 256 mm wide for 23 mm high."""
    cases = sorted(GLIOMA.glob("TCGA_*")) if GLIOMA.is_dir() else []
    if not cases:
        pytest.skip(f"no glioma cases at {GLIOMA} (shared data absent)")
    from engine.imaging.nifti import read_nifti_case

    volume = read_nifti_case(cases[0])
    state = ViewerState()
    state.display.set_volume(volume, "flair")
    state.planes.three_planes = True
    layout = PlanesLayout(state)
    qtbot.addWidget(layout)
    layout.resize(1200, 800)
    layout.show()
    qtbot.waitExposed(layout)
    for plane, view in layout.views.items():
        pixels = view.grab().toImage()
        rect = view.image_rect()
        lit = sum(1 for x in range(int(rect.left()) + 1, int(rect.right()), 4)
                  for y in range(int(rect.top()) + 1, int(rect.bottom()), 2)
                  if pixels.pixelColor(x, y).lightness() > 40)
        assert lit > 20, plane
    _, dy, dx = volume.spacing
    rect = layout.views["coronal"].image_rect()
    assert rect.width() / rect.height() == pytest.approx(volume.shape[2] * dx / (volume.shape[0] * volume.spacing[0]),
                                                         rel=0.01)
    coronal = layout.views["coronal"].grab().toImage()
    above = [coronal.pixelColor(x, y) for x in range(int(rect.center().x()) - 12, int(rect.center().x()) + 12)
             for y in range(max(0, int(rect.top()) - 24), int(rect.top()))]
    assert sum(1 for p in above if p.red() == p.green() == p.blue() > 100) >= 5  # "S" above the flat plane
    qtbot.mouseClick(layout.views["coronal"], Qt.MouseButton.LeftButton,
                     pos=layout.views["coronal"].image_to_widget(1.0, 64.0).toPoint())
    assert state.display.slice_index == volume.n_slices - 2


def test_the_mode_switch_is_off_for_a_clip_and_a_patch_and_v_toggles_it(qtbot, window):
    """View > Three planes is disabled, with the reason as its tooltip, for a clip and a patch;
    for a volume V switches to the three planes and back."""
    from engine.imaging.volume import ImageVolume, plain_affine

    action = window.planes_action
    window.state.display.set_volume(synthetic_clip())
    assert not action.isEnabled() and "clip" in action.toolTip()
    patch = ImageVolume(array=np.zeros((3, 1, 16, 16), np.uint8), spacing=(1.0, 0.5, 0.5),
                        affine=plain_affine((1.0, 0.5, 0.5)), modality="SM", kind="image", source="/fake/patch.png",
                        channel_names=("R", "G", "B"))
    window.state.display.set_volume(patch)
    assert not action.isEnabled() and "single image" in action.toolTip()
    window.state.display.set_volume(synthetic_volume(), "flair")
    assert action.isEnabled()
    window.activateWindow()
    window.slice_view.setFocus()
    qtbot.keyClick(window.slice_view, Qt.Key.Key_V)
    assert window.state.planes.three_planes and window.view_modes.currentWidget() is window.view_modes.planes
    assert action.isChecked()
    axial = window.view_modes.planes.views["axial"]
    qtbot.waitUntil(axial.isVisible)
    window.state.annotation.tool = "point"
    assert "axial plane" in window.statusBar().currentMessage()
    qtbot.keyClick(axial, Qt.Key.Key_V)
    assert not window.state.planes.three_planes and window.view_modes.currentWidget() is window.views
    window.state.planes.three_planes = True
    window.state.display.set_volume(synthetic_clip())  # a clip sends the window back to one view
    assert window.view_modes.currentWidget() is window.views and not action.isChecked()


def test_opening_a_comparison_goes_back_to_one_plane(qtbot, state):
    """Two CAM methods are compared side by side in the single view: opening a comparison while
    three planes are shown switches back and says why."""
    from ui.planes import ViewModes
    from ui.view_grid import ViewGrid

    modes = ViewModes(state, ViewGrid(state))
    qtbot.addWidget(modes)
    state.planes.three_planes = True
    assert modes.currentWidget() is modes.planes
    maps = np.zeros((2,) + SHAPE, dtype=np.float32)
    probabilities = np.tile([[0.3, 0.7]], (SHAPE[0], 1))
    state.overlay.set_analysis(Analysis("t 1", ("a", "b"), probabilities, "gradcam", maps, 1, (1, 2)))
    with qtbot.waitSignal(modes.message) as said:
        state.overlay.set_compare_analysis(Analysis("t 1", ("a", "b"), probabilities, "layercam", maps, 1, (3, 4)))
    assert not state.planes.three_planes and modes.currentWidget() is modes.single
    assert "side by side" in said.args[0]


def test_a_case_opened_in_three_planes_gives_the_axial_plane_the_keys(qtbot, opened):
    """With three planes shown, the next case opens in them and the axial plane has the keyboard
    (Up steps its slice), not the hidden single view."""
    opened.activateWindow()
    opened.state.planes.three_planes = True
    task = opened.open_item(opened.worklist.items()[1])
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    axial = opened.view_modes.planes.views["axial"]
    qtbot.waitUntil(lambda: opened.focusWidget() is axial, timeout=2000)
    before = opened.state.display.slice_index
    qtbot.keyClick(axial, Qt.Key.Key_Up)
    assert opened.state.planes.three_planes and opened.state.display.slice_index == before + 1
