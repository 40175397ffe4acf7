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

from engine.stats.study_reads import ArmFacts, QuestionFacts, StudyFacts

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


SEPARATION = {"unaided": 1.0, "ai+gradcam": 2.0}
READERS, CASES = 5, 60
QUESTIONS = (
    QuestionFacts("diagnosis", "Lesion?", "single_choice", CLASSES),
    QuestionFacts("p_lesion", "Probability of lesion (0-100)", "probability_0_100"),
    QuestionFacts("helpful", "How helpful was the map?", "helpfulness", arms=("ai+gradcam",)),
    QuestionFacts("better", "Which map explains better?", "pairwise_explanation", ("gradcam", "eigencam"), arms=("ai+gradcam",)),
)


def study_facts(design="fully_crossed", arms=None, questions=QUESTIONS, readers=READERS, cases=CASES) -> StudyFacts:
    arms = arms or (ArmFacts("unaided"), ArmFacts("ai+gradcam", True, "gradcam"))
    return StudyFacts(1, "sim", design, "glioma", arms, questions, tuple(f"r{j}" for j in range(readers)), cases)


def record(reader, case, arm, question, answer, *, phase=1, truth=None, seconds=30.0, ai=None, sides=None, repeat=False):
    return {
        "reader": reader, "case": case, "arm": arm, "session": 1, "phase": phase, "repeat": repeat, "position": 0,
        "question": question, "final_answer": answer, "submitted": True, "ground_truth": truth,
        "seconds_open": seconds, "seconds_to_first_answer": 2.0, "shown_predicted_class": ai,
        "pairwise_left": sides[0] if sides else None, "pairwise_right": sides[1] if sides else None,
    }


def binormal_records(seed: int = 1):
    """``(answers, records)`` of a fully crossed study of READERS readers and CASES cases in the export's format."""
    answers = binormal_answers(READERS, CASES, SEPARATION, seed)
    records = []
    for (j, k, arm), answer in answers.items():
        truth = POSITIVE if diseased(k) else NEGATIVE
        common = dict(truth=truth, seconds=20.0 + 10 * (arm == "unaided") + k % 7)
        records.append(record(f"r{j}", f"S1-C{100 + k}", arm, "diagnosis", answer.diagnosis, **common))
        records.append(record(f"r{j}", f"S1-C{100 + k}", arm, "p_lesion", answer.probability, **common))
        if arm == "ai+gradcam":
            records.append(record(f"r{j}", f"S1-C{100 + k}", arm, "helpful", (j + k) % 7 - 3, **common))
            sides = ("gradcam", "eigencam") if k % 2 else ("eigencam", "gradcam")
            records.append(record(f"r{j}", f"S1-C{100 + k}", arm, "better", "left" if k % 3 else "equal", sides=sides, **common))
    return answers, records
