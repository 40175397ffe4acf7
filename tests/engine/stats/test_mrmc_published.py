"""The OR analysis reproduces published outputs on the Van Dyke et al. (1993) study to the printed digits.

Two independent programs printed analyses of the same ratings (data/README.md):

* OR-DBM MRMC 2.51 (Schartz, Hillis, Pesce & Berbaum, Build 20181028), trapezoidal AUC, jackknife
  covariances: its listing is kept in RJafroc as ``inst/Iowa/VanDyke.txt`` (github
  dpc10ster/RJafroc, commit 36646d99f37c7df05e730c26383ec94114a69c88, 2020-05-21; identical to
  ``tests/testthat/goodValues361/Iowa/VanDyke.txt``).
* MRMCaov 0.3.0 (Smith, Hillis & Pesce), ``mrmc(empirical_auc(truth, rating), treatment, reader,
  case, data = VanDyke, cov = DeLong)`` and the fixed-reader and fixed-case runs, printed in its
  article ``docs/jss/MRMCaov.tex`` (github brian-j-smith/MRMCaov, commit
  f1c63dc4383e23ed8f1e64adee4476e768cd9287, 2022-08-18).
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.stats.mrmc import auc_covariance, or_analysis
from tests.engine.stats.helpers import printed


@pytest.fixture(scope="module")
def jackknife(van_dyke):
    return or_analysis(van_dyke, covariance="jackknife")


@pytest.fixture(scope="module")
def delong(van_dyke):
    return or_analysis(van_dyke, covariance="delong")


def test_the_data_file_holds_the_published_design(van_dyke):
    """OR-DBM: '2 treatments, 5 readers, 114 cases (69 normal, 45 abnormal)'."""
    assert van_dyke.scores.shape == (2, 5, 114)
    assert (van_dyke.n_normal, van_dyke.n_abnormal) == (69, 45)


def test_reader_aucs_and_means_match_or_dbm(jackknife):
    """OR-DBM 'TREATMENT x READER AUC ESTIMATES', means and difference, printed with 8 decimals."""
    table = [
        ["0.91964573", "0.85877617", "0.90386473", "0.97310789", "0.82979066"],
        ["0.94782609", "0.90531401", "0.92173913", "0.99935588", "0.92995169"],
    ]
    for i, row in enumerate(table):
        for j, text in enumerate(row):
            printed(jackknife.auc[i, j], text)
    printed(jackknife.modality_means[0], "0.89703704")
    printed(jackknife.modality_means[1], "0.94083736")
    printed(jackknife.rrrc.comparisons[0].estimate, "-0.04380032")


def test_anova_and_or_components_match_or_dbm(jackknife):
    """OR-DBM ANOVA of AUCs, reader mean squares per treatment, and the OR variance components
    and correlations (jackknife covariances)."""
    c = jackknife.components
    printed(c.ms_t, "0.00479617")
    printed(c.ms_r, "0.00383620")
    printed(c.ms_tr, "0.00055103")
    printed(c.var_r, "0.00153500")
    printed(c.var_tr, "0.00020040")
    printed(c.cov1, "0.00034661")
    printed(c.cov2, "0.00034407")
    printed(c.cov3, "0.00023903")
    printed(c.var_error, "0.00080229")
    corr = c.to_dict()
    printed(corr["corr1"], "0.43203138")
    printed(corr["corr2"], "0.42886683")
    printed(corr["corr3"], "0.29793328")


def test_random_readers_random_cases_match_or_dbm(jackknife):
    """OR-DBM Analysis 1: F 4.46, ddf 15.26, p 0.0517, error term 0.00107626; difference SE
    0.02075, t -2.11, 95% CI (-0.08796, 0.00036); single-treatment SE, df, CI and Cov2."""
    test = jackknife.rrrc
    printed(test.statistic, "4.46")
    printed(test.df2, "15.26")
    printed(test.p_value, "0.0517")
    printed(test.denominator, "0.00107626")
    diff = test.comparisons[0]
    printed(diff.se, "0.02075")
    printed(diff.statistic, "-2.11")
    printed(diff.p_value, "0.0517")
    printed(diff.ci_low, "-0.08796")
    printed(diff.ci_high, "0.00036")
    expected = [("0.03317360", "12.74", "0.82522360", "0.96885048"), ("0.02156637", "12.71", "0.89413783", "0.98753689")]
    for interval, (se, df, low, high) in zip(test.modalities, expected):
        printed(interval.se, se)
        printed(interval.df, df)
        printed(interval.ci_low, low)
        printed(interval.ci_high, high)


def test_fixed_readers_random_cases_match_or_dbm(jackknife):
    """OR-DBM Analysis 2: X2 5.47595 (1 df), p 0.0193; difference SE 0.01872, z -2.34, CI
    (-0.08049, -0.00711); single-treatment SEs and CIs; the five single-reader differences."""
    test = jackknife.frrc
    printed(test.statistic, "5.47595")
    assert test.df1 == 1 and test.df2 is None
    printed(test.p_value, "0.0193")
    diff = test.comparisons[0]
    printed(diff.se, "0.01872")
    printed(diff.statistic, "-2.34")
    printed(diff.ci_low, "-0.08049")
    printed(diff.ci_high, "-0.00711")
    for interval, (se, low, high) in zip(
        test.modalities, [("0.02428971", "0.84943008", "0.94464399"), ("0.01677632", "0.90795637", "0.97371835")]
    ):
        printed(interval.se, se)
        printed(interval.ci_low, low)
        printed(interval.ci_high, high)
    readers = [
        ("-0.02818", "0.02551", "-1.10", "0.2693", "-0.07818", "0.02182"),
        ("-0.04654", "0.02630", "-1.77", "0.0768", "-0.09809", "0.00501"),
        ("-0.01787", "0.03121", "-0.57", "0.5668", "-0.07904", "0.04330"),
        ("-0.02625", "0.01729", "-1.52", "0.1290", "-0.06014", "0.00764"),
        ("-0.10016", "0.04406", "-2.27", "0.0230", "-0.18651", "-0.01381"),
    ]
    for comparison, row in zip(jackknife.reader_comparisons, readers):
        for value, text in zip(
            (comparison.estimate, comparison.se, comparison.statistic, comparison.p_value, comparison.ci_low, comparison.ci_high), row
        ):
            printed(value, text)
    assert [c.reader for c in jackknife.reader_comparisons] == ["1", "2", "3", "4", "5"]


def test_random_readers_fixed_cases_match_or_dbm(jackknife):
    """OR-DBM Analysis 3: F(1,4) 8.70, p 0.0420; difference SE 0.01485, t -2.95, CI (-0.08502,
    -0.00258); single-treatment SE 0.02482994/0.01615303 with 4 df and their CIs."""
    test = jackknife.rrfc
    printed(test.statistic, "8.70")
    assert (test.df1, test.df2) == (1, 4)
    printed(test.p_value, "0.0420")
    diff = test.comparisons[0]
    printed(diff.se, "0.01485")
    printed(diff.statistic, "-2.95")
    printed(diff.ci_low, "-0.08502")
    printed(diff.ci_high, "-0.00258")
    for interval, (se, low, high) in zip(
        test.modalities, [("0.02482994", "0.82809808", "0.96597599"), ("0.01615303", "0.89598936", "0.98568536")]
    ):
        printed(interval.se, se)
        assert interval.df == 4
        printed(interval.ci_low, low)
        printed(interval.ci_high, high)


def test_single_treatment_jackknife_terms_match_or_dbm(van_dyke):
    """OR-DBM part 2c: per-treatment Var(Error) 0.00101410 / 0.00059047 and Cov2 0.00048396 / 0.00020419;
    part 2d: per-reader Var(Error) and Cov1."""
    cov = auc_covariance(van_dyke, "jackknife")
    for i, (var, cov2) in enumerate([("0.00101410", "0.00048396"), ("0.00059047", "0.00020419")]):
        printed(np.mean([cov.block(i, j, i, j) for j in range(5)]), var)
        printed(np.mean([cov.block(i, j, i, l) for j in range(5) for l in range(5) if j != l]), cov2)
    per_reader = [("0.00069890", "0.00037347"), ("0.00110605", "0.00076016"), ("0.00084234", "0.00035532"),
                  ("0.00015058", "0.00000108"), ("0.00121357", "0.00024304")]
    for j, (var, cov1) in enumerate(per_reader):
        printed((cov.block(0, j, 0, j) + cov.block(1, j, 1, j)) / 2, var)
        printed(cov.block(0, j, 1, j), cov1)


def test_delong_random_readers_random_cases_match_mrmcaov(delong):
    """MRMCaov 'Covariance method: DeLong': components, F 4.484854, df2 15.06611, p 0.05123303,
    difference SE 0.0206825 and CI, single-treatment SE/df/CI, printed with 7 significant digits."""
    c = delong.components
    printed(c.var_r, "0.0015364254")
    printed(c.var_tr, "0.0002045840")
    printed(c.var_error, "0.0007921325")
    printed(c.cov1, "0.0003420090")
    printed(c.cov2, "0.0003395265")
    printed(c.cov3, "0.0002358497")
    printed(c.to_dict()["corr1"], "0.4317573")
    test = delong.rrrc
    printed(test.denominator, "0.001069415")
    printed(test.statistic, "4.484854")
    printed(test.df2, "15.06611")
    printed(test.p_value, "0.05123303")
    diff = test.comparisons[0]
    printed(diff.se, "0.0206825")
    printed(diff.ci_low, "-0.0878671960")
    printed(diff.ci_high, "0.0002665519")
    printed(diff.statistic, "-2.117747")
    for interval, (se, df, low, high) in zip(
        test.modalities, [("0.03307642", "12.59597", "0.8253461", "0.9687280"), ("0.02150464", "12.56530", "0.8942155", "0.9874592")]
    ):
        printed(interval.se, se)
        printed(interval.df, df)
        printed(interval.ci_low, low)
        printed(interval.ci_high, high)


def test_fixed_readers_and_single_reader_cis_match_mrmcaov(jackknife):
    """MRMCaov 'Fixed Readers and Random Cases' (jackknife): components to 10 decimals, X2 5.475953,
    p 0.01927984, and the 'Single reader 95% CIs': standard errors (square roots of the jackknife
    variances) to 10 digits and z intervals clipped at 1, to 7."""
    c = jackknife.components
    printed(c.var_r, "0.0015349993")
    printed(c.var_tr, "0.0002004025")
    printed(c.var_error, "0.0008022883")
    printed(c.cov1, "0.0003466137")
    printed(c.cov2, "0.0003440748")
    printed(c.cov3, "0.0002390284")
    printed(jackknife.frrc.statistic, "5.475953")
    printed(jackknife.frrc.p_value, "0.01927984")
    printed(jackknife.frrc.comparisons[0].ci_low, "-0.08048591")
    printed(jackknife.frrc.comparisons[0].ci_high, "-0.00711473")
    printed(jackknife.reader_interval(0, 0)["ci_low"], "0.8606008")
    printed(jackknife.reader_interval(0, 0)["ci_high"], "0.9786907")
    printed(jackknife.reader_interval(1, 3)["ci_low"], "0.9979421")
    assert jackknife.reader_interval(1, 3)["ci_high"] == 1.0
    ses = [["0.0301255164", "0.0363753335", "0.0282594118", "0.0173388332", "0.0417201720"],
           ["0.0221416887", "0.0298151099", "0.0297673065", "0.0007213348", "0.0262023046"]]
    for i, row in enumerate(ses):
        for j, text in enumerate(row):
            printed(jackknife.auc_se[i, j], text)


def test_fixed_cases_match_mrmcaov(jackknife):
    """MRMCaov 'Random Readers and Fixed Cases': F 8.704, p 0.04195875, SE 0.01484629, t -2.950254."""
    test = jackknife.rrfc
    printed(test.statistic, "8.704")
    printed(test.p_value, "0.04195875")
    printed(test.comparisons[0].se, "0.01484629")
    printed(test.comparisons[0].statistic, "-2.950254")
    printed(test.modalities[0].ci_low, "0.8280981")


def test_two_modality_f_is_the_squared_t_and_a_third_modality_is_compared_pairwise(van_dyke, jackknife):
    """With two modalities F = t^2 (RRRC and RRFC) and X2 = z^2 (FRRC). Adding a copy of modality 1
    as modality 3 gives 2 numerator df, three pairwise comparisons, and a 1-3 difference of 0."""
    for test in (jackknife.rrrc, jackknife.frrc, jackknife.rrfc):
        assert test.statistic == pytest.approx(test.comparisons[0].statistic ** 2)
    from engine.stats.ratings import rating_array

    records = van_dyke.records() + [(r, c, "3", s) for r, c, m, s in van_dyke.records() if m == "1"]
    three = or_analysis(rating_array(records, dict(zip(van_dyke.cases, van_dyke.truth.astype(int)))))
    assert three.rrrc.df1 == 2
    assert [(c.first, c.second) for c in three.rrrc.comparisons] == [("1", "2"), ("1", "3"), ("2", "3")]
    assert three.rrrc.comparisons[1].estimate == 0
    assert three.rrrc.comparisons[0].estimate == pytest.approx(jackknife.rrrc.comparisons[0].estimate)
