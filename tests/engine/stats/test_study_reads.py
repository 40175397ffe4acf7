"""Region answers become the masks the readers drew; the positive class and the ROC score are
chosen by stated rules, and a study without one says so."""

from __future__ import annotations

import numpy as np
import pytest

from engine.stats.regions import region_labels, region_mask
from engine.stats.results import StatsInputError
from engine.stats.study_reads import QuestionFacts, Read, positive_class, score_of
from tests.engine.stats.study_simulation import study_facts


def test_point_box_and_polygon_cover_the_pixels_whose_centres_they_hold() -> None:
    grid = (2, 6, 8)
    point = region_mask([{"kind": "point", "slice_index": 1, "points": [[2.4, 5.6]]}], grid)
    assert np.argwhere(point).tolist() == [[1, 2, 6]]
    box = region_mask([{"kind": "box", "slice_index": 0, "points": [[3, 4], [1, 2]]}], grid)
    assert box[0].sum() == 9 and box[0, 1:4, 2:5].all() and not box[1].any()
    # a triangle with the right angle at (0, 0): centres with row + col <= 4 (edge points are inside or not by
    # the even-odd rule; the strict interior is certain)
    triangle = region_mask([{"kind": "polygon", "slice_index": 0, "points": [[-0.5, -0.5], [-0.5, 4.5], [4.5, -0.5]]}], grid)
    rows, cols = np.nonzero(triangle[0])
    assert (rows + cols <= 4).all() and triangle[0, 0, 0] and triangle[0, 1, 2] and not triangle[0, 3, 3]


def test_labels_are_kept_apart_and_bad_regions_are_named() -> None:
    grid = (1, 4, 4)
    masks = region_labels([{"kind": "point", "slice_index": 0, "points": [[0, 0]], "label": "a"},
                           {"kind": "point", "slice_index": 0, "points": [[3, 3]], "label": "b"}], grid)
    assert sorted(masks) == ["a", "b"] and masks["a"][0, 0, 0] and not masks["a"][0, 3, 3]
    assert region_mask([], grid).sum() == 0
    with pytest.raises(StatsInputError, match="slice 2 is outside"):
        region_mask([{"kind": "point", "slice_index": 2, "points": [[0, 0]]}], grid)
    with pytest.raises(StatsInputError, match="only 'index:slice,row,col'"):
        region_mask([{"kind": "point", "slice_index": 0, "points": [[0, 0]], "coordinate_space": "world:LPS"}], grid)
    with pytest.raises(StatsInputError, match="not point, box, polygon or mask"):
        region_mask([{"kind": "circle", "slice_index": 0, "points": [[0, 0]]}], grid)


def _reads(*truths):
    return [Read("r0", f"c{k}", "unaided", 1, 1, False, "unaided", t, 1.0, None) for k, t in enumerate(truths)]


def _facts(options, prompt="How likely (0-100)?"):
    return study_facts(questions=(QuestionFacts("dx", "Diagnosis", "single_choice", options),
                                  QuestionFacts("p", prompt, "probability_0_100")))


@pytest.mark.parametrize("options, prompt, expected", [
    (("COVID-19", "Bacterial pneumonia", "Healthy"), "Probability of COVID-19 (0-100)", "COVID-19"),
    (("no FLAIR abnormality", "FLAIR abnormality"), "Probability of a FLAIR abnormality (0-100)", "FLAIR abnormality"),
    (("no FLAIR abnormality", "FLAIR abnormality"), "How likely (0-100)?", "FLAIR abnormality"),
    (("0", "1"), "How likely (0-100)?", "1"),
])
def test_positive_class_rules(options, prompt, expected) -> None:
    chosen = positive_class(_facts(options, prompt), _reads(*options))
    assert chosen.name == expected and chosen.rule


def test_positive_class_chosen_or_refused_in_one_line() -> None:
    facts = _facts(("tumour", "stroma", "fat"))
    assert positive_class(facts, _reads("tumour", "fat"), "fat").rule == "chosen by the user"
    with pytest.raises(StatsInputError, match="choose one"):
        positive_class(facts, _reads("tumour", "fat"))
    with pytest.raises(StatsInputError, match="'bone' is not one of the answers"):
        positive_class(facts, _reads("tumour", "fat"), "bone")
    with pytest.raises(StatsInputError, match="no case has a ground truth"):
        positive_class(facts, _reads(None, None))


def test_confidence_signed_by_the_diagnosis_ranks_cases_when_there_is_no_probability() -> None:
    facts = study_facts(questions=(QuestionFacts("dx", "Diagnosis", "single_choice", ("lesion", "no lesion")),
                                   QuestionFacts("sure", "How sure?", "confidence_1_5")))
    score = score_of(facts, _reads("lesion", "no lesion"))
    read = _reads("lesion")[0]
    ranked = [score.of(Read(**{**read.__dict__, "answers": {"dx": dx, "sure": c}}), "lesion")
              for dx, c in (("no lesion", 5), ("no lesion", 1), ("lesion", 1), ("lesion", 5))]
    assert ranked == sorted(ranked) and ranked == [-5.0, -1.0, 1.0, 5.0]
    with pytest.raises(StatsInputError, match="no probability"):
        score_of(study_facts(questions=facts.questions[:1]), _reads("lesion"))
