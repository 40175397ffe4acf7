"""A reader study with known truth: binormal scores, so every arm's true AUC, sensitivity,
specificity and kappa are known in closed form.

Reader j's latent score of case k in an arm with separation ``mu`` is
``x = mu * d_k + e`` with ``e ~ N(0, 1)`` independent across readers, cases and arms and
``d_k = 1`` for a diseased case. Then (Metz, Semin Nucl Med 8:283, 1978):

* AUC = Phi(mu / sqrt(2));
* answering "disease" when ``x > mu / 2`` gives sensitivity = specificity = Phi(mu / 2);
* two readers agree with probability s^2 + (1 - s)^2 on every case, both classes are answered
  half the time, so chance agreement is 1/2 and kappa = (2s - 1)^2.

The 0-100 probability a reader gives is ``100 * Phi(x - mu / 2)``, monotone in ``x``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

POSITIVE, NEGATIVE = "lesion", "no lesion"
CLASSES = (POSITIVE, NEGATIVE)


@dataclass(frozen=True)
class Answer:
    probability: float
    diagnosis: str


def true_auc(mu: float) -> float:
    return float(stats.norm.cdf(mu / math.sqrt(2)))


def true_sensitivity(mu: float) -> float:
    return float(stats.norm.cdf(mu / 2))


def true_kappa(mu: float) -> float:
    return (2 * true_sensitivity(mu) - 1) ** 2


def diseased(case_index: int) -> bool:
    return case_index % 2 == 0


def binormal_answers(readers: int, cases: int, separations: dict[str, float], seed: int) -> dict[tuple[int, int, str], Answer]:
    """``{(reader, case, arm): Answer}`` drawn from the binormal model above."""
    rng = np.random.default_rng(seed)
    out = {}
    for arm, mu in separations.items():
        noise = rng.standard_normal((readers, cases))
        for j in range(readers):
            for k in range(cases):
                x = mu * diseased(k) + noise[j, k]
                probability = round(100 * float(stats.norm.cdf(x - mu / 2)), 2)
                out[j, k, arm] = Answer(probability, POSITIVE if x > mu / 2 else NEGATIVE)
    return out
