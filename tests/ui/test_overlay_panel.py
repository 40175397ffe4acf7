"""``OverlayPanel`` follows each event of ``OverlayModel`` and writes back through its setters."""

from __future__ import annotations

from tests.ui.fake_workstation import CLASS_NAMES, PROBABILITIES, synthetic_maps, synthetic_volume
from ui.backend import Analysis
from ui.model import ViewerState
from ui.panels.overlay import OverlayPanel


def _panel(qtbot) -> tuple[ViewerState, OverlayPanel]:
    state = ViewerState()
    panel = OverlayPanel(state)
    qtbot.addWidget(panel)
    state.display.set_volume(synthetic_volume(), "flair")
    state.overlay.set_analysis(Analysis("glioma 1.0.0", CLASS_NAMES, PROBABILITIES, "gradcam",
                                        synthetic_maps(), 7, (11, 12)))
    return state, panel


def test_each_control_shows_the_value_its_event_carries(qtbot):
    """Changing the model moves the matching control, and nothing is echoed back as a change."""
    state, panel = _panel(qtbot)
    assert panel.isEnabled() and panel.class_box.currentText() == "tumour"
    seen = []
    state.overlay.events.all.connect(lambda info: seen.append(info.signal.name))
    state.overlay.opacity = 0.3
    state.overlay.colormap = "jet"
    state.overlay.normalisation = "slice"
    state.overlay.show_negative = True
    state.overlay.class_index = 0
    state.overlay.visible = False
    assert (panel.opacity.value(), panel.opacity_label.text()) == (30, "30%")
    assert panel.colormap_box.currentText() == "jet"
    assert panel.scope.currentData() == "slice"
    assert panel.negative.isChecked() and not panel.visible.isChecked()
    assert panel.class_box.currentText() == "normal"
    assert seen == ["opacity", "colormap", "normalisation", "show_negative", "class_index", "visible"]


def test_controls_write_back_through_the_setters_once(qtbot):
    """Moving a control sets the model's value, which fires its event exactly once."""
    state, panel = _panel(qtbot)
    seen = []
    state.overlay.events.all.connect(lambda info: seen.append((info.signal.name, info.args)))
    panel.opacity.setValue(80)
    panel.colormap_box.setCurrentText("jet")
    panel.scope.setCurrentIndex(panel.scope.findData("slice"))
    panel.class_box.setCurrentText("normal")
    assert (state.overlay.opacity, state.overlay.colormap, state.overlay.normalisation,
            state.overlay.class_index) == (0.8, "jet", "slice", 0)
    assert seen == [("opacity", (0.8,)), ("colormap", ("jet",)), ("normalisation", ("slice",)),
                    ("class_index", (0,))]
    assert panel.opacity_label.text() == "80%"
