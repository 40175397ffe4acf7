"""A clip's or a slide's pooled verdict and key frames, as the analysis panel and strip show them."""

from __future__ import annotations

import numpy as np

from tests.ui.test_compare import finish
from ui.backend import Uncertainty, Verdict
from ui.panels.slice_navigator import KEY_ITEM_COLOUR


def test_the_verdict_and_key_frames_are_shown_and_a_key_frame_is_one_click_away(qtbot, opened, workstation):
    workstation.verdict = Verdict("Clip verdict: mean of 5 frames", np.array([0.3, 0.7]),
                                  key_items={1: (2, 4)}, notes=("frames cropped to the scan sector",))
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    text = opened.analysis_panel.summary_text()
    assert "Clip verdict: mean of 5 frames" in text and "70.0%" in text
    assert "<a href='item:2'>3</a>" in text and "<a href='item:4'>5</a>" in text  # 1-based for the reader
    assert "frames cropped to the scan sector" in text
    opened.analysis_panel.key_frames.linkActivated.emit("item:4")
    assert opened.state.display.slice_index == 4
    strip = opened.navigator.strip
    image = strip.grab().toImage()
    tip = strip.bar_rect(2).center().x()
    top = image.pixelColor(round(tip * image.devicePixelRatio()), 1)
    assert (top.red(), top.green(), top.blue()) == (KEY_ITEM_COLOUR.red(), KEY_ITEM_COLOUR.green(),
                                                    KEY_ITEM_COLOUR.blue())
    plain = strip.bar_rect(1).center().x()
    assert image.pixelColor(round(plain * image.devicePixelRatio()), 1) != top
    opened.state.overlay.class_index = 0  # no key frames for this class: the verdict's stay listed
    text = opened.analysis_panel.summary_text()
    assert "Key slices for tumour (the verdict)" in text and "Key slices for normal" not in text


def test_without_a_verdict_the_panel_shows_the_slice_only(qtbot, opened):
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    text = opened.analysis_panel.summary_text()
    assert "verdict" not in text.lower() and "<b>Slice 3</b>" in text


def test_a_slide_can_show_its_tile_probabilities_instead_of_the_cam(qtbot, opened, workstation):
    """With tile probabilities the overlay panel offers them; they span 0..1 whatever the CAM's
    raw scale, and the colour bar says what it shows. Without them the choice is hidden."""
    panel = opened.overlay_panel
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    assert panel.source.isHidden()
    tiles = np.full((2, 5, 32, 32), np.nan, np.float32)
    tiles[1, :, :, :16] = 0.25  # left half of every slice: P(tumour) = 0.25; right half: no tile
    workstation.probability_maps = tiles
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    assert not panel.source.isHidden()
    state = opened.state
    state.overlay.class_index = 1
    cam_spec = state.overlay.spec()
    panel.source.setCurrentIndex(panel.source.findData("probability"))
    assert state.overlay.map_source == "probability"
    spec = state.overlay.spec()
    assert (spec.value_range.low, spec.value_range.high) == (0.0, 1.0)
    assert np.nanmax(spec.saliency) == 0.25 and np.isnan(spec.saliency[:, 16:]).all()
    assert not np.array_equal(spec.saliency, cam_spec.saliency, equal_nan=True)
    workstation.probability_maps = None
    opened.analysis_panel.analyse_button.click()  # an analysis without tiles falls back to the CAM
    finish(qtbot, opened._analysis_task)
    assert state.overlay.map_source == "cam" and panel.source.isHidden()


def test_per_study_normalisation_puts_every_case_on_the_stored_range(qtbot, opened, workstation):
    """"Per study" colours the map by the range of every stored map of the model and method, so a
    colour means the same raw value on every case; it is off until such a range is known."""
    panel = opened.overlay_panel
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    study_row = panel.scope.findData("study")
    assert not panel.scope.model().item(study_row).isEnabled()
    workstation.study_ranges = ((-0.5, 0.25), (-2.0, 4.0))
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    assert panel.scope.model().item(study_row).isEnabled()
    state = opened.state
    state.overlay.class_index = 1
    volume_range = state.overlay.value_range()
    panel.scope.setCurrentIndex(study_row)
    assert state.overlay.normalisation == "study"
    study = state.overlay.value_range()
    assert (study.low, study.high) == (0.0, 4.0) and study != volume_range  # negatives hidden: from 0
    state.overlay.show_negative = True
    assert (state.overlay.value_range().low, state.overlay.value_range().high) == (-2.0, 4.0)


def test_the_panel_says_how_sure_the_model_is_of_the_shown_slice(qtbot, opened, workstation):
    """Each slice's uncertainty in words follows the slice; a verdict shows the case's judgement."""
    words = tuple(f"Not flagged as uncertain: slice {i + 1}." for i in range(5))
    words = words[:2] + ("Uncertain: the top two classes are within 0.15 (normal 55%, tumour 45%).",) + words[3:]
    zeros = np.zeros(5, np.float32)
    workstation.uncertainty = Uncertainty(
        label="test-time augmentation, 16 samples", words="Uncertain: the case.", uncertain=True,
        case_answer="item 2", case={}, item_words=words, item_uncertain=np.arange(5) == 2,
        total=zeros, aleatoric=zeros, epistemic=zeros, top_std=zeros)
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    opened.state.display.slice_index = 2
    text = opened.analysis_panel.summary_text()
    assert "Uncertain: the top two classes are within 0.15" in text and "test-time augmentation, 16 samples" in text
    opened.state.display.slice_index = 4
    assert "Not flagged as uncertain: slice 5." in opened.analysis_panel.summary_text()
    workstation.verdict = Verdict("Clip verdict: mean of 5 frames", np.array([0.3, 0.7]))
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    assert "Uncertain: the case." in opened.analysis_panel.summary_text()


def test_an_analysis_whose_uncertainty_was_not_measured_says_so(qtbot, opened, workstation):
    """A reopened prediction stored before uncertainty was kept (or made without it) says
    "Uncertainty not measured." rather than nothing; a measured one replaces the words."""
    workstation.uncertainty = None
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    assert "Uncertainty not measured." in opened.analysis_panel.summary_text()
    zeros = np.zeros(5, np.float32)
    workstation.uncertainty = Uncertainty(
        label="Monte Carlo dropout, 8 samples", words="Not flagged as uncertain: the case.", uncertain=False,
        case_answer="item 0", case={}, item_words=("Not flagged as uncertain: slice 1.",) * 5,
        item_uncertain=np.zeros(5, bool), total=zeros, aleatoric=zeros, epistemic=zeros, top_std=zeros)
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    text = opened.analysis_panel.summary_text()
    assert "not measured" not in text and "Not flagged as uncertain: slice 1. (Monte Carlo dropout, 8 samples)" in text


def test_a_verdict_that_names_its_class_is_shown_in_its_own_words_and_its_class_first(qtbot, opened, workstation):
    """A slide's verdict names a finding held by a minority of tiles: the panel shows its label
    as the answer (not the share table's largest row) and the overlay shows that class's map."""
    workstation.verdict = Verdict("Slide: tumour in 1 of 5 tissue tiles (20%)", np.array([0.8, 0.2]), class_index=1,
                                  notes=("Mean tile probability: normal 75%, tumour 25%",))
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    text = opened.analysis_panel.summary_text()
    assert "<b>Slide: tumour in 1 of 5 tissue tiles (20%)</b>" in text and "normal (80.0%)" not in text
    assert "Mean tile probability: normal 75%, tumour 25%" in text
    assert opened.state.overlay.class_index == 1


def test_the_share_table_bolds_the_class_the_verdict_names_not_the_largest_share(qtbot, opened, workstation):
    """Seen on a slide with a focal adenocarcinoma: "Slide: Adenocarcinoma in 10 of 48 tissue
    tiles" above a table whose bold row was Benign 79.2%, the larger share but not the answer."""
    workstation.verdict = Verdict("Slide: tumour in 1 of 5 tissue tiles (20%)", np.array([0.8, 0.2]), class_index=1)
    opened.analysis_panel.analyse_button.click()
    finish(qtbot, opened._analysis_task)
    bold = [name.text() for name, value, _ in opened.analysis_panel.verdict_table.rows if name.font().bold()]
    assert bold == [opened.state.overlay.analysis.class_names[1]]
