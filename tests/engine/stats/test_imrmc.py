"""The iMRMC format reads back what it wrote, checks its header, and names what is wrong in bad files."""

from __future__ import annotations

import numpy as np
import pytest

from engine.stats.imrmc import format_imrmc, parse_imrmc, read_imrmc, write_imrmc
from engine.stats.mrmc import or_analysis
from engine.stats.ratings import rating_array
from engine.stats.results import StatsInputError

GOOD = """A tiny study
NR: 2
N0: 2
N1: 2
NM: 2
BEGIN DATA:
-1,1,truth,0
-1,2,truth,0
-1,3,truth,1
-1,4,truth,1
{rows}
"""


def _rows(skip=None):
    rows = []
    for modality in ("A", "B"):
        for reader in ("1", "2"):
            for case, score in zip("1234", (1, 2, 3.5, 4)):
                if (reader, case, modality) != skip:
                    rows.append(f"{reader},{case},{modality},{score}")
    return "\n".join(rows)


def test_round_trip_keeps_every_rating(van_dyke, tmp_path):
    path = write_imrmc(van_dyke, tmp_path / "vd.imrmc", "Van Dyke, written back")
    again = read_imrmc(path)
    assert again.readers == van_dyke.readers and again.modalities == van_dyke.modalities
    np.testing.assert_array_equal(again.scores, van_dyke.scores)
    np.testing.assert_array_equal(again.truth, van_dyke.truth)
    text = path.read_text()
    assert text.splitlines()[:6] == ["Van Dyke, written back", "NR: 5", "N0: 69", "N1: 45", "NM: 2", "BEGIN DATA:"]
    assert or_analysis(again).rrrc.statistic == pytest.approx(or_analysis(van_dyke).rrrc.statistic)


def test_non_integer_case_ids_are_numbered_and_fractional_scores_kept():
    data = rating_array([("r1", "left", "A", 0.25), ("r1", "right", "A", 0.75)], {"left": 0, "right": 1})
    text = format_imrmc(data)
    assert "-1,1,truth,0" in text and "r1,2,A,0.75" in text
    assert parse_imrmc(text).scores[0, 0, 0] == 0.25


def test_header_is_optional_and_readers_sort_numerically():
    text = "BEGIN DATA:\n-1,1,truth,0\n-1,2,truth,1\n" + "\n".join(f"{r},{c},A,{c}" for r in (10, 9) for c in (1, 2))
    assert parse_imrmc(text).readers == ("9", "10")


@pytest.mark.parametrize(
    "text, message",
    [
        ("NR: 2\n1,1,A,1", "no 'BEGIN DATA:' line"),
        (GOOD.replace("NR: 2", "NR: 3").format(rows=_rows()), "header says NR: 3 but the data have 2"),
        (GOOD.replace("N1: 2", "N1: x").format(rows=_rows()), "N1 count 'x' is not a whole number"),
        (GOOD.format(rows=_rows(skip=("2", "3", "B"))), "reader 2 has no score for case 3 in modality B"),
        (GOOD.format(rows=_rows() + "\n1,1,A,5"), "reader 1 rated case 1 in modality A twice"),
        (GOOD.format(rows=_rows() + "\n1,9,A,5"), "case 9 has ratings but no truth"),
        (GOOD.format(rows=_rows().replace("1,1,A,1", "1,1,A,high")), "line 11: score 'high' is not a number"),
        (GOOD.format(rows=_rows().replace("1,1,A,1", "1,1,A")), "line 11: expected reader,case,modality,score"),
        (GOOD.replace("-1,3,truth,1", "-1,3,truth,2").format(rows=_rows()), "truth of case 3 is '2'"),
    ],
)
def test_bad_files_are_one_clear_error(text, message):
    with pytest.raises(StatsInputError, match=message):
        parse_imrmc(text, "study.imrmc")


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(StatsInputError, match="nothere.imrmc: no such file"):
        read_imrmc(tmp_path / "nothere.imrmc")


def test_bootstrap_covariances_are_seeded_and_close_to_the_jackknife(van_dyke):
    """Stratified case bootstrap (2000 replicates): the same seed gives the same answer, and the
    RRRC error term lies within 15% of the jackknife's (both estimate the same covariances)."""
    first = or_analysis(van_dyke, covariance="bootstrap", n_bootstrap=2000, seed=5)
    again = or_analysis(van_dyke, covariance="bootstrap", n_bootstrap=2000, seed=5)
    assert first.rrrc.statistic == again.rrrc.statistic
    jackknife = or_analysis(van_dyke)
    assert first.rrrc.denominator == pytest.approx(jackknife.rrrc.denominator, rel=0.15)
    assert first.components.var_error == pytest.approx(jackknife.components.var_error, rel=0.15)


def test_mrmc_refuses_a_single_modality_or_reader(van_dyke):
    one = rating_array([r for r in van_dyke.records() if r[2] == "1"], dict(zip(van_dyke.cases, van_dyke.truth.astype(int))))
    with pytest.raises(StatsInputError, match="at least two"):
        or_analysis(one)
    with pytest.raises(StatsInputError, match="covariance method 'exact'"):
        or_analysis(van_dyke, covariance="exact")


def test_truth_may_be_bool_int_float_or_text_but_nothing_else():
    records = [("r", "a", "A", 1), ("r", "b", "A", 2), ("r", "c", "A", 3)]
    data = rating_array(records, {"a": False, "b": 1.0, "c": "1"})
    assert data.truth.tolist() == [False, True, True]
    with pytest.raises(StatsInputError, match="truth of case b is 'maybe', expected 0 or 1"):
        rating_array(records, {"a": 0, "b": "maybe", "c": 1})
