"""Each model change fires its own event once, with the new value, and only when it changed."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.ui.fake_workstation import CLASS_NAMES, PROBABILITIES, synthetic_maps, synthetic_volume
from ui.backend import Analysis
from ui.model import ViewerState


def _analysis(method: str = "gradcam", probability_maps: np.ndarray | None = None) -> Analysis:
    return Analysis("glioma 1.0.0", CLASS_NAMES, PROBABILITIES, method, synthetic_maps(), 7, (11, 12),
                    probability_maps=probability_maps)


@pytest.fixture
def state() -> ViewerState:
    """CASE_A at its middle slice, analysed with tile probabilities (so every setter applies)."""
    viewer = ViewerState()
    viewer.display.set_volume(synthetic_volume(), "flair")
    viewer.overlay.set_analysis(_analysis(probability_maps=np.zeros_like(synthetic_maps())))
    return viewer


def _record(state: ViewerState) -> list[tuple[str, tuple]]:
    """Every event of every model, as ``(model.event, payload)``, in firing order."""
    seen: list[tuple[str, tuple]] = []
    for part in ("display", "overlay", "annotation", "measure"):
        getattr(state, part).events.all.connect(
            lambda info, part=part: seen.append((f"{part}.{info.signal.name}", info.args)))
    return seen


# (model, attribute, new value, the one event expected with its payload)
CHANGES = [
    ("display", "channel", "t1", ("display.channel", ("t1",))),
    ("display", "slice_index", 4, ("display.slice_index", (4,))),
    ("display", "window", (80.0, 40.0), ("display.window", (80.0, 40.0))),
    ("overlay", "visible", False, ("overlay.visible", (False,))),
    ("overlay", "opacity", 0.25, ("overlay.opacity", (0.25,))),
    ("overlay", "class_index", 0, ("overlay.class_index", (0,))),
    ("overlay", "map_source", "probability", ("overlay.map_source", ("probability",))),
    ("overlay", "normalisation", "slice", ("overlay.normalisation", ("slice",))),
    ("overlay", "show_negative", True, ("overlay.show_negative", (True,))),
    ("overlay", "colormap", "jet", ("overlay.colormap", ("jet",))),
    ("annotation", "tool", "box", ("annotation.tool", ("box",))),
    ("annotation", "label", "lesion", ("annotation.label", ("lesion",))),
]


@pytest.mark.parametrize(("part", "name", "value", "expected"), CHANGES,
                         ids=[f"{part}.{name}" for part, name, _, _ in CHANGES])
def test_a_setter_fires_its_own_event_once_with_the_new_value(state, part, name, value, expected):
    """Changing one value fires that value's event alone, with the value; setting it again
    fires nothing."""
    model = getattr(state, part)
    assert getattr(model, name) != value  # the fixture's value differs, so this is a change
    seen = _record(state)
    setattr(model, name, value)
    assert seen == [expected]
    setattr(model, name, value)
    assert seen == [expected]


def test_clamped_values_fire_only_when_the_clamped_value_changes(state):
    """An opacity beyond 1 is stored as 1 and announced once; a slice past the end, once."""
    seen = _record(state)
    state.overlay.opacity = 1.7
    state.overlay.opacity = 3.0
    state.display.slice_index = 99
    state.display.step_slice(1)
    assert seen == [("overlay.opacity", (1.0,)), ("display.slice_index", (4,))]


def test_drafts_fire_with_the_whole_tuple_after_each_change(state):
    """Adding, relabelling and removing a mark each fire ``drafts`` with the new tuple; clearing
    nothing fires nothing; ``history`` fires once, when undo first becomes possible."""
    seen = _record(state)
    point = state.annotation.add_point(3.0, 4.0)
    state.annotation.relabel(0, "")  # the label it already has
    state.annotation.relabel(0, "cyst")
    state.annotation.remove(0)
    state.annotation.clear()
    assert [name for name, _ in seen] == ["annotation.drafts", "annotation.history"] + ["annotation.drafts"] * 2
    assert seen[0][1] == ((point,),) and seen[1][1] == (True, False)
    assert seen[2][1][0][0].label == "cyst" and seen[3][1] == ((),)


def test_a_new_analysis_announces_the_class_it_picks_and_drops_the_comparison(state):
    """Replacing the analysis fires ``analysis``, then ``compared(())`` and ``compare_analysis(None)``
    when a comparison was open, then the class and map source where they changed."""
    state.overlay.set_compare_analysis(_analysis("layercam"))
    state.overlay.class_index = 0
    state.overlay.map_source = "probability"
    seen = _record(state)
    second = _analysis("gradcam++")  # no tile probabilities: back to the CAM
    state.overlay.set_analysis(second)
    assert seen == [("overlay.analysis", (second,)), ("overlay.compared", ((),)), ("overlay.compare_analysis", (None,)),
                    ("overlay.class_index", (1,)), ("overlay.map_source", ("cam",))]
    seen.clear()
    state.overlay.set_analysis(second)
    assert seen == []


def test_a_new_volume_drops_the_old_cases_maps_and_marks_before_widgets_hear_of_it(state):
    """Opening a volume fires ``display.volume`` first; by then (for any listener) the analysis
    and the drafts are already gone, and their own events have fired; then only the display
    values that changed fire."""
    state.annotation.add_point(1.0, 1.0)
    state.overlay.map_source = "probability"
    state.display.slice_index = 0
    seen = _record(state)
    observed = []
    state.display.events.volume.connect(
        lambda _volume: observed.append((state.overlay.analysis, state.annotation.drafts)))
    volume = synthetic_volume()
    state.display.set_volume(volume, "flair")
    assert observed == [(None, ())]
    assert [name for name, _ in seen] == ["overlay.analysis", "overlay.map_source", "annotation.drafts",
                                          "annotation.history", "display.volume", "display.slice_index"]
    assert seen[-1] == ("display.slice_index", (2,))


def test_viewer_state_refuses_attributes_it_does_not_have():
    """A caller still writing the flat names of the old state fails loudly."""
    with pytest.raises(AttributeError):
        ViewerState().slice_index = 3  # type: ignore[attr-defined]


def test_importing_ui_model_loads_neither_qt_nor_torch():
    """The viewer models run headless: importing them pulls in no PySide6, torch or MONAI."""
    probe = ("import sys, ui.model; "
             "print(sorted(m for m in ('PySide6', 'shiboken6', 'torch', 'monai') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_models_built_after_a_widget_still_drop_the_old_case_first():
    """The overlay and annotation models react to a new volume before any other listener, even
    one connected before they were built."""
    from ui.model import AnnotationModel, DisplayModel, OverlayModel

    display = DisplayModel()
    observed = []
    display.events.volume.connect(lambda _volume: observed.append((overlay.analysis, annotation.drafts)))
    overlay, annotation = OverlayModel(display), AnnotationModel(display)
    display.set_volume(synthetic_volume())
    overlay.set_analysis(_analysis())
    annotation.add_point(1.0, 1.0)
    display.set_volume(synthetic_volume())
    assert observed[-1] == (None, ())
