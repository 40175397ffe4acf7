"""A slide's verdict is a finding present in enough tissue tiles, not the mean tile probability:
the rule on made-up tiles, then the real histopathology model on mosaics of held-back LC25000
patches (a focal tumour inside benign tissue, all benign, one stray tumour tile)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.analysis.slide import analyse_slide
from engine.analysis.slide_verdict import (
    MIN_SHARE,
    MIN_TILES,
    RULE,
    call_slide,
    minimum_tiles,
    sample_calls,
    slide_verdict,
    tile_counts,
)
from engine.models import load_bundle
from engine.tasks.histopathology.mosaic import BENIGN_CLASS, build_mosaic, patch_pool
from tests.engine.tasks.test_histopathology import lc25000  # noqa: F401 (fixture)

NAMES = ("Adenocarcinoma", "Squamous cell carcinoma", "Benign")
ACA, SCC, BENIGN = 0, 1, 2


def tiles(called: list[int], confidence: float = 0.8) -> np.ndarray:
    """``(n, 3)`` tile probabilities, each tile's top class the one given."""
    rows = np.full((len(called), 3), (1 - confidence) / 2)
    rows[np.arange(len(called)), called] = confidence
    return rows


# -- the rule ----------------------------------------------------------------------------------


def test_the_minimum_is_two_tiles_or_five_percent_of_the_tissue():
    assert (MIN_TILES, MIN_SHARE) == (2, 0.05)
    assert [minimum_tiles(n) for n in (1, 2, 40, 41, 48, 100, 1000)] == [2, 2, 2, 3, 3, 5, 50]


def test_a_focal_finding_in_a_minority_of_tiles_is_the_slides_answer():
    rows = tiles([ACA] * 10 + [BENIGN] * 38)
    call = call_slide(NAMES, rows)
    assert int(np.argmax(rows.mean(axis=0))) == BENIGN  # what the mean rule said
    assert call.class_index == ACA and call.finding
    assert call.label == "Slide: Adenocarcinoma in 10 of 48 tissue tiles (21%)"
    np.testing.assert_array_equal(call.tile_counts, [10, 0, 38])
    np.testing.assert_allclose(call.shares, [10 / 48, 0, 38 / 48], atol=1e-7)
    np.testing.assert_allclose(call.mean_probabilities, rows.mean(axis=0), atol=1e-7)
    verdict = slide_verdict(NAMES, rows)
    assert verdict.class_index == ACA and verdict.rule == RULE and verdict.label == call.label
    assert int(np.argmax(verdict.probabilities)) == BENIGN  # the burden table; the answer is named
    assert verdict.details == ("Mean tile probability: Adenocarcinoma 25%, Squamous cell carcinoma 10%, Benign 65%",)


def test_stray_tiles_below_the_minimum_do_not_make_a_finding_but_are_named():
    call = call_slide(NAMES, tiles([ACA] + [SCC] + [BENIGN] * 46))  # 48 tiles: 3 needed
    assert call.class_index == BENIGN and not call.finding
    assert call.label == ("Slide: no finding in 48 tissue tiles "
                          "(Adenocarcinoma in 1, Squamous cell carcinoma in 1: below the minimum of 3)")
    assert call_slide(NAMES, tiles([BENIGN] * 20)).label == "Slide: no finding in 20 tissue tiles"
    assert call_slide(NAMES, tiles([SCC] * 2 + [BENIGN] * 20)).class_index == SCC  # 22 tiles: 2 needed


def test_findings_count_together_and_the_one_in_most_tiles_wins_then_the_more_probable():
    together = call_slide(NAMES, tiles([ACA] + [SCC] * 2 + [BENIGN] * 45))  # 3 tumour tiles of 48
    assert together.class_index == SCC and together.finding
    assert together.label == "Slide: Squamous cell carcinoma in 2 of 48 tissue tiles (4%) (also Adenocarcinoma in 1)"
    assert call_slide(NAMES, tiles([ACA] * 3 + [SCC] * 5 + [BENIGN] * 10)).class_index == SCC
    tied = np.vstack([tiles([ACA] * 4, 0.6), tiles([SCC] * 4, 0.9), tiles([BENIGN] * 10)])
    assert call_slide(NAMES, tied).class_index == SCC


def test_a_model_with_no_normal_class_answers_with_its_commonest_class():
    names = ("COVID-19", "Bacterial pneumonia", "Viral pneumonia")
    assert call_slide(names, tiles([0] * 5 + [2] * 7)).class_index == 2
    assert call_slide(names, tiles([1])).label == "Slide: Bacterial pneumonia in 1 of 1 tissue tiles"


def test_bad_tile_tables_are_refused():
    with pytest.raises(ValueError, match="not"):
        call_slide(NAMES, np.zeros((0, 3)))
    with pytest.raises(ValueError, match="not"):
        call_slide(NAMES, np.zeros((4, 2)))


def test_each_sample_is_called_by_the_same_rule():
    focal = tiles([ACA] * 10 + [BENIGN] * 38)
    benign = tiles([ACA] * 1 + [BENIGN] * 47)
    votes = sample_calls(NAMES, np.stack([focal, focal, benign]))
    np.testing.assert_array_equal(votes[:, 0], [[1, 0, 0], [1, 0, 0], [0, 0, 1]])
    np.testing.assert_array_equal(tile_counts(focal), [10, 0, 38])


def test_a_slide_answer_that_changes_in_one_sample_of_four_is_uncertain():
    """The case's numbers are those of the samples' slide answers: all four agreeing is certain
    (no entropy at all); one of four changing makes the answer uncertain in the rule's words."""
    from engine.analysis.uncertainty import case_uncertainty

    focal = tiles([ACA] * 10 + [BENIGN] * 38)
    benign = tiles([ACA] * 1 + [BENIGN] * 47)

    def judged(draws):
        return case_uncertainty(np.stack(draws), (), "tta", None, NAMES, pooled=True,
                                pool=lambda d: sample_calls(NAMES, d))

    steady, shaky = judged([focal] * 4), judged([focal] * 3 + [benign])
    assert not steady.judgement.uncertain and float(steady.case.total[0]) == 0.0
    np.testing.assert_allclose(shaky.case.mean_probabilities[0], [0.75, 0, 0.25])
    assert shaky.judgement.uncertain and float(shaky.case.aleatoric[0]) == pytest.approx(0.0, abs=1e-12)
    assert "epistemic uncertainty high" in shaky.judgement.words  # the samples disagree on the answer


# -- the real model on mosaics of held-back patches ----------------------------------------------


@pytest.fixture(scope="module")
def bundle():
    return load_bundle("histopathology")


@pytest.fixture(scope="module")
def pool(lc25000: Path, bundle) -> dict[int, list[Path]]:
    return patch_pool(lc25000, bundle.metadata["split"]["test"])


def analyse(layout: np.ndarray, pool, folder: Path, **kwargs):
    """The mosaic of ``layout`` (cells drawn from ``pool``) and its slide analysis, no maps."""
    mosaic = build_mosaic(folder / "m.tif", layout, pool, np.random.default_rng(5), levels=2)
    return mosaic, analyse_slide(load_bundle("histopathology"), mosaic.path, methods=(), batch_size=16, **kwargs)


@pytest.fixture(scope="module")
def focal(pool, tmp_path_factory):
    """10 of 48 cells adenocarcinoma in one rectangle inside benign cells, with its uncertainty."""
    layout = np.full((6, 8), BENIGN_CLASS)
    layout[2:4, 1:6] = ACA
    return analyse(layout, pool, tmp_path_factory.mktemp("focal"), uncertainty="tta", samples=4)


def test_a_focal_adenocarcinoma_inside_benign_tissue_is_the_slides_verdict(focal):
    """The mean tile probability called this slide benign; the verdict is adenocarcinoma with its
    tile count, and it is the class shown (and explained) first."""
    _, analysis = focal
    n = len(analysis.probabilities)
    counts = tile_counts(analysis.probabilities)
    assert n >= 40 and counts[ACA] >= 6  # tissue found in (nearly) every cell; the model sees the tumour
    assert int(np.argmax(analysis.probabilities.mean(axis=0))) == BENIGN  # the old rule's answer
    verdict = analysis.verdict
    assert verdict.class_index == ACA == analysis.class_to_show()
    assert verdict.label.startswith(f"Slide: Adenocarcinoma in {counts[ACA]} of {n} tissue tiles ({counts[ACA] / n:.0%})")
    np.testing.assert_allclose(verdict.probabilities, counts / n, atol=1e-6)
    np.testing.assert_allclose(analysis.item_probabilities[0], counts / n, atol=1e-6)
    assert verdict.details[0].startswith("Mean tile probability: Adenocarcinoma")


def test_a_slides_uncertainty_is_how_often_its_answer_changes_across_samples(focal):
    """Each sample's tiles are called again by the same rule: the case's numbers are shares of
    the 4 samples with no aleatoric part, and each tile keeps its own decomposition."""
    _, analysis = focal
    found = analysis.uncertainty
    assert found.case_item is None and found.samples == 4
    votes = found.case.mean_probabilities[0]
    np.testing.assert_allclose(votes * 4, np.round(votes * 4), atol=1e-6)
    assert votes[ACA] >= 0.5  # the answer holds in most samples
    assert float(found.case.aleatoric[0]) == pytest.approx(0.0, abs=1e-9)
    assert found.judgement.words.startswith("Slide answer over 4 samples: ")
    assert found.items.total.shape == (len(analysis.probabilities),)


def test_an_all_benign_slide_has_no_finding(pool, tmp_path):
    _, analysis = analyse(np.full((4, 6), BENIGN_CLASS), pool, tmp_path)
    counts = tile_counts(analysis.probabilities)
    assert counts[BENIGN] >= len(analysis.probabilities) - 1
    assert analysis.verdict.class_index == BENIGN
    assert analysis.verdict.label.startswith(f"Slide: no finding in {len(analysis.probabilities)} tissue tiles")


def test_one_stray_tumour_tile_does_not_flip_the_slide(pool, focal, tmp_path):
    """A single adenocarcinoma cell among 47 benign ones (a patch the model calls adenocarcinoma
    in the focal mosaic): the model calls it again, the slide stays benign (one tile is under the
    minimum of 3) and the label names the stray tile."""
    mosaic, analysis = focal
    hottest = analysis.slide.tile_boxes[int(np.argmax(analysis.probabilities[:, ACA]))]
    name = mosaic.sources[hottest[0] // mosaic.cell - mosaic.margin, hottest[1] // mosaic.cell - mosaic.margin]
    layout = np.full((6, 8), BENIGN_CLASS)
    layout[3, 4] = ACA
    _, stray = analyse(layout, {**pool, ACA: [p for p in pool[ACA] if p.name == name]}, tmp_path)
    counts = tile_counts(stray.probabilities)
    assert counts[ACA] == 1 and counts[SCC] == 0
    assert stray.verdict.class_index == BENIGN
    assert stray.verdict.label.endswith("(Adenocarcinoma in 1: below the minimum of 3)")
