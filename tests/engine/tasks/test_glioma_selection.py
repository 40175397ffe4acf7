"""The rule that lets a candidate recipe replace the shipped glioma bundle (validation figures only)."""

from __future__ import annotations

import pytest

from engine.tasks.glioma.selection import MAX_AUC_DROP, RULE, choose

SHIPPED = {"auc": 0.992, "pointing_game": 0.883}


def test_the_highest_pointing_game_among_candidates_that_keep_the_auc_is_adopted():
    selection = choose(SHIPPED, [
        {"label": "a", "auc": 0.995, "pointing_game": 0.927},
        {"label": "b", "auc": 0.990, "pointing_game": 0.950},  # 0.002 lower: allowed
        {"label": "c", "auc": 0.980, "pointing_game": 0.990},  # 0.012 lower: out
    ])
    assert [v.eligible for v in selection.verdicts] == [True, True, False]
    assert selection.chosen == "b"
    assert selection.verdicts[2].auc_change == pytest.approx(-0.012)
    assert selection.verdicts[0].pointing_change == pytest.approx(0.044)


def test_no_candidate_is_adopted_without_a_higher_pointing_game():
    selection = choose(SHIPPED, [{"label": "same", "auc": 0.999, "pointing_game": 0.883},
                                 {"label": "worse", "auc": 0.999, "pointing_game": 0.800}])
    assert selection.chosen is None and not any(v.eligible for v in selection.verdicts)


def test_the_auc_limit_is_inclusive_and_stated_in_the_rule():
    at_limit = {"label": "edge", "auc": SHIPPED["auc"] - MAX_AUC_DROP, "pointing_game": 0.9}
    assert choose(SHIPPED, [at_limit]).chosen == "edge"
    assert choose(SHIPPED, [{**at_limit, "auc": at_limit["auc"] - 1e-4}]).chosen is None
    assert "validation patients only" in RULE and str(MAX_AUC_DROP) in RULE
