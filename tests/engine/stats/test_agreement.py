"""Agreement statistics reproduce published worked examples and agree with independent libraries.

Published outputs used:

* Gwet's irrCAC R package README (github kgwet/irrCAC, commit 00b845116dd7b18188202cf4ed3fccec8b81a0bc):
  ``kappa2.table``/``gwet.ac1.table``/``pa2.table`` on ``cont3x3abstractors``,
  ``gwet.ac1.dist``/``fleiss.kappa.dist`` on ``distrib.6raters``, and ``pa.coeff.raw``,
  ``gwet.ac1.raw``, ``fleiss.kappa.raw`` on ``cac.raw4raters`` (4 readers, 12 cases, missing ratings).
* Krippendorff (2011), "Computing Krippendorff's alpha-reliability", the 4 observers x 12 units
  example with missing values: alpha 0.743 nominal, 0.815 ordinal, 0.849 interval, 0.797 ratio.
  (``cac.raw4raters`` is the same matrix.)
* Shrout & Fleiss (1979), table 2 (6 targets x 4 judges): ICC(1,1) .17, ICC(2,1) .29, ICC(3,1) .71,
  ICC(1,4) .44, ICC(2,4) .62, ICC(3,4) .91.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.stats.agreement import cohen_kappa, fleiss_kappa, gwet_ac1, kappa_from_table, percent_agreement
from engine.stats.alpha import krippendorff_alpha
from engine.stats.icc import icc
from engine.stats.results import StatsInputError
from tests.engine.stats.helpers import printed

N = None
RAW4 = [[1, 1, N, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
        [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [N, 5, 5, 5], [N, N, 1, 1], [N, N, 3, N]]
DISTRIB_6 = np.array([[0, 0, 0, 6, 0], [0, 3, 0, 0, 3], [0, 1, 4, 0, 1], [0, 0, 0, 0, 6], [0, 3, 0, 3, 0],
                      [2, 0, 4, 0, 0], [0, 0, 4, 0, 2], [2, 0, 3, 1, 0], [2, 0, 0, 4, 0], [0, 0, 0, 0, 6],
                      [1, 0, 0, 5, 0], [1, 1, 0, 4, 0], [0, 3, 3, 0, 0], [1, 0, 0, 5, 0], [0, 2, 0, 3, 1]])
ABSTRACTORS = np.array([[13, 0, 0], [0, 20, 7], [0, 4, 56]])
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], float)


def _rows_from_counts(counts):
    """A ratings matrix whose row i holds counts[i, k] ratings of category k."""
    return [sum(([k] * int(c) for k, c in enumerate(row)), []) for row in counts]


def _pairs_from_table(table):
    return [[i, j] for i in range(table.shape[0]) for j in range(table.shape[1]) for _ in range(int(table[i, j]))]


def test_raw_ratings_with_missing_match_irrcac():
    """irrCAC on cac.raw4raters: pa 0.8181818 (SE 0.12561), AC1 0.77544 (SE 0.14295), Fleiss'
    kappa 0.76117 (SE 0.15302); CIs (0.542, 1), (0.461, 1), (0.424, 1), clipped at 1 as irrCAC does."""
    pa = percent_agreement(RAW4)
    printed(pa.estimate, "0.8181818")
    printed(pa.se, "0.12561")
    printed(pa.ci_low, "0.542")
    assert pa.ci_high == 1.0 and pa.n == 11
    ac1 = gwet_ac1(RAW4)
    printed(ac1.estimate, "0.77544")
    printed(ac1.se, "0.14295")
    printed(ac1.ci_low, "0.461")
    kappa = fleiss_kappa(RAW4)
    printed(kappa.estimate, "0.76117")
    printed(kappa.se, "0.15302")
    printed(kappa.ci_low, "0.424")


def test_six_raters_distribution_matches_irrcac_and_statsmodels():
    """irrCAC on distrib.6raters: AC1 0.4448007 (SE 0.08418757), Fleiss 0.4139265 (SE 0.08119291).
    statsmodels' fleiss_kappa (estimate only) agrees: with equal readers per case Gwet's
    generalisation is Fleiss' kappa."""
    from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss

    rows = _rows_from_counts(DISTRIB_6)
    ac1 = gwet_ac1(rows, categories=range(5))
    printed(ac1.estimate, "0.4448007")
    printed(ac1.se, "0.08418757")
    kappa = fleiss_kappa(rows, categories=range(5))
    printed(kappa.estimate, "0.4139265")
    printed(kappa.se, "0.08119291")
    assert kappa.estimate == pytest.approx(statsmodels_fleiss(DISTRIB_6), abs=1e-12)


def test_two_readers_match_irrcac_sklearn_and_statsmodels():
    """cont3x3abstractors: Cohen's kappa 0.7964094, SE 0.05891072 (irrCAC ``kappa2.table``), equal
    to statsmodels' ``cohens_kappa`` std_kappa and scikit-learn's estimate.

    irrCAC's table functions give AC1 SE 0.04321747 and percent agreement SE 0.03128898; its
    raw-data functions, which we follow, divide the variance by n - 1 instead of n, so our SE is
    theirs times sqrt(n / (n - 1)) (n = 100). Both are Gwet's; the n - 1 form is the unbiased
    one and the one that agrees with the multi-reader case."""
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import cohens_kappa

    kappa = kappa_from_table(ABSTRACTORS)
    printed(kappa.estimate, "0.7964094")
    printed(kappa.se, "0.05891072")
    printed(kappa.ci_low, "0.68")
    printed(kappa.ci_high, "0.913")
    pairs = _pairs_from_table(ABSTRACTORS)
    first, second = [p[0] for p in pairs], [p[1] for p in pairs]
    assert cohen_kappa(first, second).estimate == pytest.approx(cohen_kappa_score(first, second), abs=1e-12)
    assert kappa.se == pytest.approx(cohens_kappa(ABSTRACTORS).std_kappa, rel=1e-12)
    ac1 = gwet_ac1(pairs)
    printed(ac1.estimate, "0.8493305")
    printed(ac1.se * np.sqrt(99 / 100), "0.04321747")
    pa = percent_agreement(pairs)
    printed(pa.estimate, "0.89")
    printed(pa.se * np.sqrt(99 / 100), "0.03128898")


@pytest.mark.parametrize("weights", ["linear", "quadratic"])
def test_weighted_kappa_matches_sklearn_and_statsmodels(weights):
    """Weighted kappa equals scikit-learn's ``cohen_kappa_score(weights=...)`` and its SE equals
    statsmodels' Fleiss-Cohen-Everitt ``std_kappa`` on a random 5-point table."""
    from sklearn.metrics import cohen_kappa_score
    from statsmodels.stats.inter_rater import cohens_kappa

    rng = np.random.default_rng(4)
    first = rng.integers(1, 6, 200)
    second = np.clip(first + rng.integers(-1, 2, 200), 1, 5)
    ours = cohen_kappa(first, second, weights=weights, categories=range(1, 6))
    assert ours.estimate == pytest.approx(cohen_kappa_score(first, second, weights=weights), abs=1e-12)
    table = np.zeros((5, 5))
    np.add.at(table, (first - 1, second - 1), 1)
    reference = cohens_kappa(table, wt=weights)
    assert ours.estimate == pytest.approx(reference.kappa, abs=1e-12)
    assert ours.se == pytest.approx(reference.std_kappa, rel=1e-9)


def test_weighted_kappa_counts_unused_categories_of_the_stated_scale():
    """With the full 1-5 scale stated, answers 1, 2 and 5 are not equally spaced: 2-vs-5 is three
    steps, not one. scikit-learn only knows the labels it sees (unless given ``labels``), so it
    differs here; with ``labels=[1..5]`` it agrees, which shows ours is the scale-aware answer."""
    from sklearn.metrics import cohen_kappa_score

    first, second = [1, 2, 5, 5, 1, 2, 2, 1], [1, 1, 5, 2, 2, 2, 5, 1]
    ours = cohen_kappa(first, second, weights="linear", categories=[1, 2, 3, 4, 5])
    assert ours.estimate == pytest.approx(cohen_kappa_score(first, second, weights="linear", labels=[1, 2, 3, 4, 5]))
    assert ours.estimate != pytest.approx(cohen_kappa_score(first, second, weights="linear"))


@pytest.mark.parametrize("level, text", [("nominal", "0.743"), ("ordinal", "0.815"), ("interval", "0.849"), ("ratio", "0.797")])
def test_krippendorff_alpha_matches_the_paper_and_the_krippendorff_package(level, text):
    """Krippendorff (2011) prints alpha to 3 decimals; the ``krippendorff`` package agrees to 1e-12."""
    import krippendorff

    ours = krippendorff_alpha(RAW4, level, n_bootstrap=200)
    printed(ours.estimate, text)
    reference = np.array([[np.nan if v is None else v for v in row] for row in RAW4], float).T
    assert ours.estimate == pytest.approx(krippendorff.alpha(reliability_data=reference, level_of_measurement=level), abs=1e-12)
    assert ours.ci_low <= ours.estimate <= ours.ci_high


def test_ordinal_alpha_uses_the_stated_value_domain_like_the_package():
    """Text answers on an ordered scale: the order comes from ``categories`` (the full domain);
    it matches the krippendorff package given the same ``value_domain``, and a reversed domain
    gives the same alpha (ordinal distance is symmetric), while a shuffled one does not."""
    import krippendorff

    scale = ["none", "mild", "moderate", "severe"]
    rng = np.random.default_rng(2)
    truth = rng.integers(0, 4, 40)
    ratings = [[scale[int(np.clip(t + rng.integers(-1, 2), 0, 3))] for _ in range(3)] for t in truth]
    ours = krippendorff_alpha(ratings, "ordinal", categories=scale, n_bootstrap=0).estimate
    codes = np.array([[scale.index(v) for v in row] for row in ratings], float).T
    assert ours == pytest.approx(krippendorff.alpha(reliability_data=codes, level_of_measurement="ordinal",
                                                    value_domain=[0, 1, 2, 3]), abs=1e-12)
    assert krippendorff_alpha(ratings, "ordinal", categories=scale[::-1], n_bootstrap=0).estimate == pytest.approx(ours)
    shuffled = ["mild", "none", "severe", "moderate"]
    assert krippendorff_alpha(ratings, "ordinal", categories=shuffled, n_bootstrap=0).estimate != pytest.approx(ours)


@pytest.mark.filterwarnings("ignore:The inplace keyword:Warning")  # pingouin on pandas 3
def test_icc_matches_shrout_fleiss_and_pingouin():
    """Shrout & Fleiss (1979) table 2 to 2 decimals; pingouin's ``intraclass_corr`` estimates,
    F and p to 1e-9, and its CIs, which pingouin rounds to 2 decimals."""
    import pandas as pd
    import pingouin

    result = icc(SHROUT_FLEISS)
    for name, text in [("ICC1", ".17"), ("ICC2", ".29"), ("ICC3", ".71"), ("ICC1k", ".44"), ("ICC2k", ".62"), ("ICC3k", ".91")]:
        printed(result[name].estimate, "0" + text)
    frame = pd.DataFrame([(i, j, SHROUT_FLEISS[i, j]) for i in range(6) for j in range(4)], columns=["case", "reader", "score"])
    reference = pingouin.intraclass_corr(frame, targets="case", raters="reader", ratings="score").set_index("Type")
    names = {"ICC(1,1)": "ICC1", "ICC(A,1)": "ICC2", "ICC(C,1)": "ICC3", "ICC(1,k)": "ICC1k", "ICC(A,k)": "ICC2k", "ICC(C,k)": "ICC3k"}
    for theirs, ours in names.items():
        row, form = reference.loc[theirs], result[ours]
        assert form.estimate == pytest.approx(row["ICC"], abs=1e-9)
        assert form.f == pytest.approx(row["F"], rel=1e-9)
        assert form.p_value == pytest.approx(row["pval"], rel=1e-6)
        printed(form.ci_low, f"{row['CI95'][0]:.2f}")
        printed(form.ci_high, f"{row['CI95'][1]:.2f}")


def test_icc_drops_incomplete_cases_and_says_so():
    ratings = SHROUT_FLEISS.tolist() + [[1.0, None, 2.0, 3.0]]
    result = icc(ratings)
    assert (result.n_cases, result.n_dropped) == (6, 1)
    assert result["ICC2"].estimate == pytest.approx(icc(SHROUT_FLEISS)["ICC2"].estimate)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: cohen_kappa([1, 2], [1]), "2 ratings from the first reader but 1"),
        (lambda: cohen_kappa([1, 2, 3], [1, 2, 7], categories=[1, 2, 3]), "rating 7 is not one of the categories"),
        (lambda: fleiss_kappa([[1, None], [2, None]]), "at least two cases rated by two or more readers"),
        (lambda: krippendorff_alpha([[1, 2]], "interval", categories=None, level=1.5), "confidence level"),
        (lambda: krippendorff_alpha([["a", "b"], ["a", "a"]], "interval"), "needs numeric ratings"),
        (lambda: krippendorff_alpha([[1, 2]], "cardinal"), "level of measurement 'cardinal'"),
        (lambda: icc([[1, 2], [None, 3]]), "at least two cases"),
        (lambda: icc([[1, "x"], [2, 3]]), "numeric ratings"),
    ],
)
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(StatsInputError, match=message):
        call()


def test_kappa_is_nan_not_an_error_when_chance_agreement_is_total():
    """Both readers always answer the same single category: pe = 1 and kappa is undefined (NaN),
    while AC1, which is built for this case, needs the scale: with the two-answer scale stated
    it is 1."""
    assert np.isnan(cohen_kappa([1, 1, 1], [1, 1, 1]).estimate)
    assert gwet_ac1([[1, 1], [1, 1], [1, 1]], categories=[0, 1]).estimate == pytest.approx(1.0)
