"""Multi-reader multi-case (MRMC) comparison of modalities by the Obuchowski-Rockette method.

Each reader's empirical AUC in each modality is one observation of the Obuchowski-Rockette
(OR) model ``AUC_ij = mu + T_i + R_j + (TR)_ij + e_ij`` whose errors are correlated because the
same cases were read (Obuchowski & Rockette, Commun Stat Simul Comput 24:285-308, 1995). The
error covariances come from resampling cases:

* ``jackknife`` (default): leave one case out (Efron 1982; Hillis et al., Stat Med 24:1579, 2005);
* ``delong``: DeLong et al.'s structural components (Biometrics 44:837, 1988);
* ``bootstrap``: cases resampled within truth strata, seeded.

Three analyses follow (Hillis, Stat Med 26:596-619, 2007; Hillis, Berbaum & Metz, Acad Radiol
15:647-661, 2008): random readers and random cases (RRRC, F test with Hillis' denominator
degrees of freedom), fixed readers and random cases (FRRC, chi-square and z), and random readers
and fixed cases (RRFC, the treatment x reader ANOVA). Results agree with OR-DBM MRMC 2.51,
RJafroc and MRMCaov on the Van Dyke et al. (1993) study (see tests/engine/stats).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations

import numpy as np
from scipy import stats

from engine.stats.ratings import RatingArray
from engine.stats.results import StatsInputError, check_level, t_critical, z_critical
from engine.stats.roc import structural_components

COVARIANCE_METHODS = ("jackknife", "delong", "bootstrap")


@dataclass(frozen=True)
class AUCCovariance:
    """Reader AUCs and the covariance of their errors over cases.

    Attributes:
        auc: ``(modalities, readers)`` empirical AUCs.
        covariance: ``(m*r, m*r)`` covariance of the flattened AUCs (modality-major order).
        method: ``jackknife``, ``delong`` or ``bootstrap``.
    """

    auc: np.ndarray
    covariance: np.ndarray
    method: str

    def block(self, i: int, j: int, k: int, l: int) -> float:
        """Covariance of AUC ``(modality i, reader j)`` with AUC ``(modality k, reader l)``."""
        readers = self.auc.shape[1]
        return float(self.covariance[i * readers + j, k * readers + l])


def _components(data: RatingArray) -> tuple[np.ndarray, np.ndarray]:
    """``V10 (m, r, n1)`` and ``V01 (m, r, n0)`` structural components of every reader AUC."""
    m, r, _ = data.scores.shape
    v10 = np.empty((m, r, data.n_abnormal))
    v01 = np.empty((m, r, data.n_normal))
    for i in range(m):
        for j in range(r):
            parts = structural_components(data.scores[i, j, data.truth], data.scores[i, j, ~data.truth])
            v10[i, j], v01[i, j] = parts.v10, parts.v01
    return v10, v01


def auc_covariance(data: RatingArray, method: str = "jackknife", n_bootstrap: int = 2000, seed: int = 0) -> AUCCovariance:
    """Reader AUCs and their error covariance by ``method`` (see the module docstring).

    Args:
        data: a fully crossed study.
        method: ``jackknife``, ``delong`` or ``bootstrap``.
        n_bootstrap: bootstrap replicates (``bootstrap`` only).
        seed: bootstrap seed, so the result is reproducible.
    """
    if method not in COVARIANCE_METHODS:
        raise StatsInputError(f"covariance method {method!r} is not one of {', '.join(COVARIANCE_METHODS)}")
    v10, v01 = _components(data)
    m, r, n1 = v10.shape
    n0 = v01.shape[2]
    auc = v10.mean(axis=2)
    if method == "delong":
        if n1 < 2 or n0 < 2:
            raise StatsInputError("DeLong covariances need at least two normal and two abnormal cases")
        flat10, flat01 = v10.reshape(m * r, n1), v01.reshape(m * r, n0)
        covariance = np.atleast_2d(np.cov(flat10, ddof=1)) / n1 + np.atleast_2d(np.cov(flat01, ddof=1)) / n0
    elif method == "jackknife":
        if n1 < 2 or n0 < 2:
            raise StatsInputError("the case jackknife needs at least two normal and two abnormal cases")
        # Leaving out abnormal case a removes its row of the Mann-Whitney sum: (n1*AUC - V10[a]) / (n1-1).
        left_out = np.concatenate(
            [(n1 * auc[..., None] - v10) / (n1 - 1), (n0 * auc[..., None] - v01) / (n0 - 1)], axis=2
        ).reshape(m * r, n1 + n0)
        deviations = left_out - left_out.mean(axis=1, keepdims=True)
        cases = n1 + n0
        covariance = (cases - 1) / cases * deviations @ deviations.T
    else:
        covariance = _bootstrap_covariance(data, n_bootstrap, seed)
    return AUCCovariance(auc, covariance, method)


def _bootstrap_covariance(data: RatingArray, n_bootstrap: int, seed: int) -> np.ndarray:
    if n_bootstrap < 2:
        raise StatsInputError(f"bootstrap needs at least 2 replicates, not {n_bootstrap}")
    rng = np.random.default_rng(seed)
    n1, n0 = data.n_abnormal, data.n_normal
    # Weights (how often each case is drawn) keep a replicate's AUC a weighted Mann-Whitney sum.
    weights1 = np.stack([np.bincount(rng.integers(0, n1, n1), minlength=n1) for _ in range(n_bootstrap)])
    weights0 = np.stack([np.bincount(rng.integers(0, n0, n0), minlength=n0) for _ in range(n_bootstrap)])
    m, r, _ = data.scores.shape
    replicates = np.empty((n_bootstrap, m * r))
    for index in range(m * r):
        i, j = divmod(index, r)
        abnormal, normal = data.scores[i, j, data.truth], data.scores[i, j, ~data.truth]
        wins = (abnormal[:, None] > normal[None, :]) + 0.5 * (abnormal[:, None] == normal[None, :])
        replicates[:, index] = np.einsum("ba,an,bn->b", weights1, wins, weights0) / (n1 * n0)
    return np.atleast_2d(np.cov(replicates, rowvar=False, ddof=1))


@dataclass(frozen=True)
class VarianceComponents:
    """The OR model's mean squares, variance components and error covariances.

    Attributes:
        ms_t: modality mean square of the reader AUCs.
        ms_r: reader mean square.
        ms_tr: modality x reader mean square.
        var_r: reader variance component.
        var_tr: modality x reader variance component.
        var_error: mean error variance of a reader AUC.
        cov1: mean error covariance, same reader, different modalities.
        cov2: mean error covariance, same modality, different readers.
        cov3: mean error covariance, different modality and reader.
    """

    ms_t: float
    ms_r: float
    ms_tr: float
    var_r: float
    var_tr: float
    var_error: float
    cov1: float
    cov2: float
    cov3: float

    def to_dict(self) -> dict:
        out = asdict(self)
        for name in ("cov1", "cov2", "cov3"):
            out[f"corr{name[-1]}"] = getattr(self, name) / self.var_error if self.var_error > 0 else float("nan")
        return out


@dataclass(frozen=True)
class Comparison:
    """One difference of AUCs: ``first - second`` (averaged over readers unless ``reader`` is set).

    Attributes:
        df: degrees of freedom of the t reference distribution, None where it is normal (z).
        statistic: t or z.
    """

    first: str
    second: str
    estimate: float
    se: float
    df: float | None
    statistic: float
    p_value: float
    ci_low: float
    ci_high: float
    reader: str | None = None


@dataclass(frozen=True)
class ModalityInterval:
    """A modality's reader-averaged AUC with a CI from that modality's data alone."""

    modality: str
    estimate: float
    se: float
    df: float | None
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class ORTest:
    """One OR analysis: the global test of equal modality AUCs, the differences, single-modality CIs.

    Attributes:
        analysis: ``RRRC``, ``FRRC`` or ``RRFC``.
        statistic_name: ``F`` (RRRC, RRFC) or ``X2`` (FRRC).
        df2: denominator degrees of freedom (Hillis' ddf for RRRC), None for the chi-square test.
        denominator: the error term the modality mean square is divided by.
    """

    analysis: str
    statistic_name: str
    statistic: float
    df1: float
    df2: float | None
    p_value: float
    denominator: float
    comparisons: tuple[Comparison, ...]
    modalities: tuple[ModalityInterval, ...]
    method: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class MRMCResult:
    """Everything an OR analysis of a reader study reports.

    Attributes:
        modalities, readers: names in array order.
        auc: ``(modalities, readers)`` empirical AUCs.
        auc_se: their standard errors (square roots of the covariance's diagonal).
        modality_means: reader-averaged AUC per modality.
        components: mean squares, variance components and covariances.
        rrrc, frrc, rrfc: the three analyses.
        reader_comparisons: per-reader modality differences (fixed-reader analysis).
    """

    modalities: tuple[str, ...]
    readers: tuple[str, ...]
    n_normal: int
    n_abnormal: int
    auc: np.ndarray
    auc_se: np.ndarray
    modality_means: tuple[float, ...]
    components: VarianceComponents
    covariance_method: str
    level: float
    rrrc: ORTest
    frrc: ORTest
    rrfc: ORTest
    reader_comparisons: tuple[Comparison, ...]

    def reader_interval(self, i: int, j: int) -> dict:
        """Reader j's AUC in modality i with its SE and a z interval clipped to [0, 1] (as MRMCaov prints)."""
        auc, se = float(self.auc[i, j]), float(self.auc_se[i, j])
        half = z_critical(self.level) * se
        return {"auc": auc, "se": se, "ci_low": max(0.0, auc - half), "ci_high": min(1.0, auc + half)}

    def to_dict(self) -> dict:
        return {
            "method": f"Obuchowski-Rockette, {self.covariance_method} covariances, Hillis ddf",
            "level": self.level,
            "modalities": list(self.modalities),
            "readers": list(self.readers),
            "cases": {"normal": self.n_normal, "abnormal": self.n_abnormal},
            "reader_auc": {
                modality: {reader: self.reader_interval(i, j) for j, reader in enumerate(self.readers)}
                for i, modality in enumerate(self.modalities)
            },
            "reader_averaged_auc": dict(zip(self.modalities, self.modality_means)),
            "components": self.components.to_dict(),
            "analyses": {test.analysis: test.to_dict() for test in (self.rrrc, self.frrc, self.rrfc)},
            "reader_comparisons": [asdict(c) for c in self.reader_comparisons],
        }


def or_analysis(
    data: RatingArray, covariance: str = "jackknife", level: float = 0.95, n_bootstrap: int = 2000, seed: int = 0
) -> MRMCResult:
    """Compare modalities' empirical AUCs by the Obuchowski-Rockette method (module docstring).

    Args:
        data: a fully crossed study (every reader reads every case in every modality).
        covariance: ``jackknife`` (default), ``delong`` or ``bootstrap``.
        level: confidence level of every interval.
        n_bootstrap, seed: replicates and seed for ``bootstrap`` covariances.

    Raises:
        StatsInputError: fewer than two modalities or readers, or too few cases.
    """
    level = check_level(level)
    m, r, _ = data.scores.shape
    if m < 2:
        raise StatsInputError(f"the OR analysis compares modalities and needs at least two (found {m})")
    if r < 2:
        raise StatsInputError(f"the OR analysis needs at least two readers (found {r})")
    cov = auc_covariance(data, covariance, n_bootstrap, seed)
    components = _variance_components(cov)
    names = data.modalities
    means = cov.auc.mean(axis=1)
    per_modality = [_modality_terms(cov, i) for i in range(m)]
    return MRMCResult(
        modalities=names,
        readers=data.readers,
        n_normal=data.n_normal,
        n_abnormal=data.n_abnormal,
        auc=cov.auc,
        auc_se=np.sqrt(np.clip(np.diag(cov.covariance), 0.0, None)).reshape(m, r),
        modality_means=tuple(float(x) for x in means),
        components=components,
        covariance_method=covariance,
        level=level,
        rrrc=_rrrc(names, means, r, components, per_modality, level, covariance),
        frrc=_frrc(names, means, r, components, per_modality, level, covariance),
        rrfc=_rrfc(names, means, r, components, per_modality, level),
        reader_comparisons=_reader_comparisons(cov, names, data.readers, level),
    )


def _variance_components(cov: AUCCovariance) -> VarianceComponents:
    auc = cov.auc
    m, r = auc.shape
    grand = auc.mean()
    ms_t = r * ((auc.mean(axis=1) - grand) ** 2).sum() / (m - 1)
    ms_r = m * ((auc.mean(axis=0) - grand) ** 2).sum() / (r - 1)
    interaction = auc - auc.mean(axis=1, keepdims=True) - auc.mean(axis=0, keepdims=True) + grand
    ms_tr = (interaction**2).sum() / ((m - 1) * (r - 1))
    sums = {"var": [], "cov1": [], "cov2": [], "cov3": []}
    for a in range(m * r):
        for b in range(m * r):
            (i, j), (k, l) = divmod(a, r), divmod(b, r)
            kind = "var" if a == b else "cov1" if j == l else "cov2" if i == k else "cov3"
            sums[kind].append(cov.covariance[a, b])
    var, cov1, cov2, cov3 = (float(np.mean(sums[key])) for key in ("var", "cov1", "cov2", "cov3"))
    # Expected mean squares under the OR model (Hillis et al. 2005, table I).
    var_tr = ms_tr - var + cov1 + cov2 - cov3
    var_r = (ms_r - var_tr - var - (m - 1) * cov1 + cov2 + (m - 1) * cov3) / m
    return VarianceComponents(float(ms_t), float(ms_r), float(ms_tr), float(var_r), float(var_tr), var, cov1, cov2, cov3)


@dataclass(frozen=True)
class _ModalityTerms:
    ms_r: float
    var_error: float
    cov2: float


def _modality_terms(cov: AUCCovariance, i: int) -> _ModalityTerms:
    r = cov.auc.shape[1]
    values = cov.auc[i]
    block = cov.covariance[i * r : (i + 1) * r, i * r : (i + 1) * r]
    off = block[~np.eye(r, dtype=bool)]
    return _ModalityTerms(float(values.var(ddof=1)), float(np.diag(block).mean()), float(off.mean()))


def _t_comparison(first, second, estimate, se, df, level, reader=None) -> Comparison:
    statistic = estimate / se if se > 0 else float("nan")
    p = float(2 * stats.t.sf(abs(statistic), df)) if se > 0 else float("nan")
    half = t_critical(level, df) * se
    return Comparison(first, second, float(estimate), float(se), float(df), float(statistic), p, float(estimate - half), float(estimate + half), reader)


def _z_comparison(first, second, estimate, se, level, reader=None) -> Comparison:
    statistic = estimate / se if se > 0 else float("nan")
    p = float(2 * stats.norm.sf(abs(statistic))) if se > 0 else float("nan")
    half = z_critical(level) * se
    return Comparison(first, second, float(estimate), float(se), None, float(statistic), p, float(estimate - half), float(estimate + half), reader)


def _pairs(names, means):
    for i, k in combinations(range(len(names)), 2):
        yield names[i], names[k], float(means[i] - means[k])


def _rrrc(names, means, r, c: VarianceComponents, per_modality, level, covariance) -> ORTest:
    m = len(names)
    denominator = c.ms_tr + r * max(c.cov2 - c.cov3, 0.0)
    df2 = denominator**2 / (c.ms_tr**2 / ((m - 1) * (r - 1))) if c.ms_tr > 0 else float("inf")
    statistic = c.ms_t / denominator
    se = np.sqrt(2.0 * denominator / r)
    comparisons = tuple(_t_comparison(a, b, est, se, df2, level) for a, b, est in _pairs(names, means))
    intervals = []
    for name, mean, terms in zip(names, means, per_modality):
        error = terms.ms_r + r * max(terms.cov2, 0.0)
        df = error**2 / (terms.ms_r**2 / (r - 1)) if terms.ms_r > 0 else float("inf")
        single_se = np.sqrt(error / r)
        half = t_critical(level, df) * single_se
        intervals.append(ModalityInterval(name, float(mean), float(single_se), float(df), float(mean - half), float(mean + half)))
    return ORTest("RRRC", "F", float(statistic), float(m - 1), float(df2), float(stats.f.sf(statistic, m - 1, df2)),
                  float(denominator), comparisons, tuple(intervals),
                  f"OR random readers and cases, {covariance} covariances, Hillis (2007) ddf")


def _frrc(names, means, r, c: VarianceComponents, per_modality, level, covariance) -> ORTest:
    m = len(names)
    denominator = c.var_error - c.cov1 + (r - 1) * max(c.cov2 - c.cov3, 0.0)
    statistic = (m - 1) * c.ms_t / denominator
    se = np.sqrt(2.0 * denominator / r)
    comparisons = tuple(_z_comparison(a, b, est, se, level) for a, b, est in _pairs(names, means))
    z = z_critical(level)
    intervals = []
    for name, mean, terms in zip(names, means, per_modality):
        single_se = float(np.sqrt((terms.var_error + (r - 1) * max(terms.cov2, 0.0)) / r))
        intervals.append(ModalityInterval(name, float(mean), single_se, None, float(mean - z * single_se), float(mean + z * single_se)))
    return ORTest("FRRC", "X2", float(statistic), float(m - 1), None, float(stats.chi2.sf(statistic, m - 1)),
                  float(denominator), comparisons, tuple(intervals), f"OR fixed readers, random cases, {covariance} covariances")


def _rrfc(names, means, r, c: VarianceComponents, per_modality, level) -> ORTest:
    m = len(names)
    df2 = float((m - 1) * (r - 1))
    statistic = c.ms_t / c.ms_tr if c.ms_tr > 0 else float("inf")
    se = np.sqrt(2.0 * c.ms_tr / r)
    comparisons = tuple(_t_comparison(a, b, est, se, df2, level) for a, b, est in _pairs(names, means))
    intervals = []
    for name, mean, terms in zip(names, means, per_modality):
        single_se = float(np.sqrt(terms.ms_r / r))
        half = t_critical(level, r - 1) * single_se
        intervals.append(ModalityInterval(name, float(mean), single_se, float(r - 1), float(mean - half), float(mean + half)))
    return ORTest("RRFC", "F", float(statistic), float(m - 1), df2, float(stats.f.sf(statistic, m - 1, df2)),
                  float(c.ms_tr), comparisons, tuple(intervals), "OR random readers, fixed cases (modality x reader ANOVA)")


def _reader_comparisons(cov: AUCCovariance, names, readers, level) -> tuple[Comparison, ...]:
    out = []
    for j, reader in enumerate(readers):
        for i, k in combinations(range(len(names)), 2):
            variance = cov.block(i, j, i, j) + cov.block(k, j, k, j) - 2 * cov.block(i, j, k, j)
            se = float(np.sqrt(max(variance, 0.0)))
            out.append(_z_comparison(names[i], names[k], float(cov.auc[i, j] - cov.auc[k, j]), se, level, reader))
    return tuple(out)
