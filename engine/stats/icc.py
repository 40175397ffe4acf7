"""Intraclass correlation: the six Shrout-Fleiss forms with McGraw-Wong F-based confidence intervals.

From the two-way ANOVA of an ``n`` cases x ``k`` readers matrix (mean squares for cases MSR,
readers MSC, residual MSE, and within cases MSW), after Shrout & Fleiss (Psychol Bull
86:420-428, 1979) and McGraw & Wong (Psychol Methods 1:30-46, 1996):

======  ==============  ===========================================  ================================
form    McGraw-Wong     model                                        formula
======  ==============  ===========================================  ================================
ICC1    ICC(1)          one-way random, single reader                (MSR-MSW)/(MSR+(k-1)MSW)
ICC2    ICC(A,1)        two-way, absolute agreement, single reader   (MSR-MSE)/(MSR+(k-1)MSE+k(MSC-MSE)/n)
ICC3    ICC(C,1)        two-way, consistency, single reader          (MSR-MSE)/(MSR+(k-1)MSE)
ICC1k   ICC(k)          one-way random, mean of k readers            (MSR-MSW)/MSR
ICC2k   ICC(A,k)        two-way, absolute agreement, mean of k       (MSR-MSE)/(MSR+(MSC-MSE)/n)
ICC3k   ICC(C,k)        two-way, consistency, mean of k readers      (MSR-MSE)/MSR
======  ==============  ===========================================  ================================

Whether readers are random (Shrout-Fleiss case 2) or fixed (case 3) changes the interpretation,
not these numbers (McGraw & Wong 1996, table 4). The CIs invert the F tests; for the
absolute-agreement forms they use Satterthwaite's approximate df (McGraw & Wong 1996, table 7),
as SPSS, R's irr and pingouin do. That interval covers less than it claims when a large reader
variance is estimated from few readers (about 90% for a nominal 95% with 4 readers in
tests/engine/stats/test_simulation.py); report the number of readers with it.
Cases with a missing rating are left out (the ANOVA needs a complete matrix).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from engine.stats.results import StatsInputError, check_level


@dataclass(frozen=True)
class ICCForm:
    """One intraclass correlation with its F test and CI.

    Attributes:
        name: Shrout-Fleiss name (``ICC2``); ``mcgraw_wong``: McGraw-Wong name (``ICC(A,1)``).
        description: the model in words.
        f, df1, df2, p_value: the F test of ICC = 0.
    """

    name: str
    mcgraw_wong: str
    description: str
    estimate: float
    f: float
    df1: float
    df2: float
    p_value: float
    ci_low: float
    ci_high: float


@dataclass(frozen=True)
class ICCResult:
    """All six intraclass correlations of one ratings matrix.

    Attributes:
        forms: ICC1, ICC2, ICC3, ICC1k, ICC2k, ICC3k in that order.
        n_cases: complete cases used; ``n_dropped``: cases left out for a missing rating.
        n_readers: readers (columns).
    """

    forms: tuple[ICCForm, ...]
    n_cases: int
    n_readers: int
    n_dropped: int
    level: float
    method: str = "intraclass correlation, Shrout & Fleiss (1979) / McGraw & Wong (1996), F-based CIs"

    def __getitem__(self, name: str) -> ICCForm:
        for form in self.forms:
            if name in (form.name, form.mcgraw_wong):
                return form
        raise KeyError(name)

    def to_dict(self) -> dict:
        return asdict(self)


def _matrix(ratings) -> tuple[np.ndarray, int]:
    rows = ratings.tolist() if isinstance(ratings, np.ndarray) else [list(r) for r in ratings]
    try:
        values = np.array([[np.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64)
    except (TypeError, ValueError):
        raise StatsInputError("the ICC needs numeric ratings") from None
    if values.ndim != 2:
        raise StatsInputError("the ICC needs a (cases, readers) matrix with the same readers for every case")
    complete = np.isfinite(values).all(axis=1)
    return values[complete], int((~complete).sum())


def icc(ratings, level: float = 0.95) -> ICCResult:
    """The six intraclass correlations of a ``(cases, readers)`` matrix of numeric ratings.

    Raises:
        StatsInputError: fewer than two complete cases or two readers, or no variation at all.
    """
    level = check_level(level)
    x, dropped = _matrix(ratings)
    n, k = x.shape if x.size else (0, 0)
    if n < 2 or k < 2:
        raise StatsInputError(f"the ICC needs at least two cases rated by every reader and two readers (found {n} and {k})")
    grand = x.mean()
    ss_rows = k * ((x.mean(axis=1) - grand) ** 2).sum()
    ss_cols = n * ((x.mean(axis=0) - grand) ** 2).sum()
    ss_total = ((x - grand) ** 2).sum()
    ss_error = ss_total - ss_rows - ss_cols
    msr, msc = ss_rows / (n - 1), ss_cols / (k - 1)
    mse = ss_error / ((n - 1) * (k - 1))
    msw = (ss_cols + ss_error) / (n * (k - 1))
    if msr == 0 and mse == 0 and msw == 0:
        raise StatsInputError("the ICC is undefined when every rating is the same")
    alpha = 1.0 - level
    forms = []

    # One-way random (ICC1) and two-way consistency (ICC3): exact F intervals.
    for name, mw, text, denominator, df2 in (
        ("ICC1", "ICC(1)", "one-way random, single reader", msw, n * (k - 1)),
        ("ICC3", "ICC(C,1)", "two-way, consistency, single reader", mse, (n - 1) * (k - 1)),
    ):
        f = msr / denominator
        f_low = f / stats.f.ppf(1 - alpha / 2, n - 1, df2)
        f_high = f * stats.f.ppf(1 - alpha / 2, df2, n - 1)
        single = (msr - denominator) / (msr + (k - 1) * denominator)
        p = float(stats.f.sf(f, n - 1, df2))
        forms.append(ICCForm(name, mw, text, float(single), float(f), float(n - 1), float(df2), p,
                             float((f_low - 1) / (f_low + k - 1)), float((f_high - 1) / (f_high + k - 1))))
        forms.append(ICCForm(name + "k", mw.replace("1", "k") if name == "ICC1" else "ICC(C,k)",
                             text.replace("single reader", f"mean of {k} readers"), float(1 - 1 / f), float(f),
                             float(n - 1), float(df2), p, float(1 - 1 / f_low), float(1 - 1 / f_high)))

    # Two-way absolute agreement (ICC2): Satterthwaite df for the CI.
    single = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    a = k * single / (n * (1 - single))
    b = 1 + k * single * (n - 1) / (n * (1 - single))
    v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1)))
    f_star, f_star_inv = stats.f.ppf(1 - alpha / 2, n - 1, v), stats.f.ppf(1 - alpha / 2, v, n - 1)
    low = n * (msr - f_star * mse) / (f_star * (k * msc + (k * n - k - n) * mse) + n * msr)
    high = n * (f_star_inv * msr - mse) / (k * msc + (k * n - k - n) * mse + n * f_star_inv * msr)
    f = msr / mse
    p = float(stats.f.sf(f, n - 1, (n - 1) * (k - 1)))
    forms.append(ICCForm("ICC2", "ICC(A,1)", "two-way, absolute agreement, single reader", float(single), float(f),
                         float(n - 1), float((n - 1) * (k - 1)), p, float(low), float(high)))
    forms.append(ICCForm("ICC2k", "ICC(A,k)", f"two-way, absolute agreement, mean of {k} readers",
                         float((msr - mse) / (msr + (msc - mse) / n)), float(f), float(n - 1), float((n - 1) * (k - 1)), p,
                         float(low * k / (1 + low * (k - 1))), float(high * k / (1 + high * (k - 1)))))
    order = ("ICC1", "ICC2", "ICC3", "ICC1k", "ICC2k", "ICC3k")
    forms.sort(key=lambda form: order.index(form.name))
    return ICCResult(tuple(forms), n, k, dropped, level)
