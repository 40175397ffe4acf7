"""Krippendorff's alpha for nominal, ordinal, interval and ratio answers, missing answers allowed.

``alpha = 1 - D_o / D_e``: observed disagreement within cases over the disagreement expected
from all pairable values (Krippendorff, *Content Analysis*, 2004, ch. 11; "Computing
Krippendorff's alpha-reliability", 2011). Both come from the coincidence matrix ``o[c, k]``,
which counts, within each case rated by ``m >= 2`` readers, every ordered pair of values from
different readers with weight ``1 / (m - 1)``; cases rated by fewer than two readers drop out.

The squared difference function depends on the level of measurement:

* nominal: 1 between different values;
* ordinal: ``(sum_{g=c..k} n_g - (n_c + n_k) / 2)^2`` over the ordered value domain, where
  ``n_g`` is how often value g was used: a value nobody used weighs nothing, but the domain
  fixes the order (pass it as ``categories``);
* interval: ``(c - k)^2``;
* ratio: ``((c - k) / (c + k))^2``.

The CI is a percentile bootstrap over cases (units) with a fixed seed, so a report is
reproducible; Hayes & Krippendorff (Commun Methods Meas 1:77, 2007) resample pairable values
instead, which gives intervals of similar width but is not reproduced here.
"""

from __future__ import annotations

import numpy as np

from engine.stats.categories import code_ratings
from engine.stats.results import Estimate, StatsInputError, check_level, percentile_interval

LEVELS = ("nominal", "ordinal", "interval", "ratio")


def _unit_coincidences(counts: np.ndarray) -> np.ndarray:
    """``(pairable cases, q, q)``: each case's contribution to the coincidence matrix."""
    per_case = counts.sum(axis=1)
    pairable = counts[per_case >= 2].astype(np.float64)
    m = pairable.sum(axis=1)
    pairs = pairable[:, :, None] * pairable[:, None, :]
    diagonal = np.arange(counts.shape[1])
    pairs[:, diagonal, diagonal] -= pairable
    return pairs / (m - 1)[:, None, None]


def _delta(level: str, values: np.ndarray | None, marginals: np.ndarray) -> np.ndarray:
    q = marginals.size
    if level == "nominal":
        return 1.0 - np.eye(q)
    if level == "ordinal":
        cumulative = np.concatenate([[0.0], np.cumsum(marginals)])
        low, high = np.minimum.outer(np.arange(q), np.arange(q)), np.maximum.outer(np.arange(q), np.arange(q))
        between = cumulative[high + 1] - cumulative[low]
        return (between - (marginals[:, None] + marginals[None, :]) / 2.0) ** 2
    difference = np.subtract.outer(values, values)
    if level == "interval":
        return difference**2
    total = np.add.outer(values, values)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total == 0, 0.0, (difference / np.where(total == 0, 1.0, total)) ** 2)


def _alpha(coincidence: np.ndarray, level: str, values: np.ndarray | None) -> float:
    marginals = coincidence.sum(axis=1)
    total = marginals.sum()
    if total <= 1:
        return float("nan")
    delta = _delta(level, values, marginals)
    observed = (coincidence * delta).sum()
    expected = (np.outer(marginals, marginals) * delta).sum() / (total - 1)
    return float(1.0 - observed / expected) if expected > 0 else float("nan")


def krippendorff_alpha(
    ratings,
    level_of_measurement: str = "nominal",
    categories=None,
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> Estimate:
    """Krippendorff's alpha of a ``(cases, readers)`` ratings matrix (module docstring).

    Args:
        ratings: one row per case, one column per reader; ``None``/NaN where a reader gave none.
        level_of_measurement: ``nominal``, ``ordinal``, ``interval`` or ``ratio``.
        categories: the full ordered value domain (needed for ordinal answers whose order is
            not numeric, and to reject values outside the scale).
        level: confidence level of the bootstrap interval.
        n_bootstrap: bootstrap replicates over cases (0 for no interval).
        seed: bootstrap seed.

    Returns:
        An Estimate whose ``se`` is the bootstrap standard deviation.

    Raises:
        StatsInputError: an unknown level, non-numeric values for interval/ratio, negative values
            for ratio, or fewer than two pairable values.
    """
    level = check_level(level)
    if level_of_measurement not in LEVELS:
        raise StatsInputError(f"level of measurement {level_of_measurement!r} is not one of {', '.join(LEVELS)}")
    coded = code_ratings(ratings, categories, "Krippendorff's alpha")
    values = None
    if level_of_measurement in ("interval", "ratio"):
        values = coded.numeric_categories(f"Krippendorff's alpha at the {level_of_measurement} level")
        if level_of_measurement == "ratio" and (values < 0).any():
            raise StatsInputError("Krippendorff's alpha at the ratio level needs values of zero or more")
    units = _unit_coincidences(coded.counts)
    if units.shape[0] == 0:
        raise StatsInputError("Krippendorff's alpha needs at least one case rated by two or more readers")
    alpha = _alpha(units.sum(axis=0), level_of_measurement, values)
    name = f"Krippendorff's alpha ({level_of_measurement})"
    if n_bootstrap <= 0 or units.shape[0] < 2:
        return Estimate(alpha, None, None, None, level, name, int(units.shape[0]))
    rng = np.random.default_rng(seed)
    n_units = units.shape[0]
    flat = units.reshape(n_units, -1)
    replicates = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        weights = np.bincount(rng.integers(0, n_units, n_units), minlength=n_units)
        replicates[b] = _alpha((weights @ flat).reshape(units.shape[1:]), level_of_measurement, values)
    low, high = percentile_interval(replicates, level)
    se = float(np.nanstd(replicates, ddof=1))
    return Estimate(alpha, se, low, high, level, f"{name}, bootstrap over cases ({n_bootstrap}, seed {seed}), percentile CI",
                    int(n_units))
