"""How a candidate recipe replaces the shipped glioma bundle (issue 11): a rule declared before
the candidates were trained, applied to their figures on the validation patients only.

The held-back test patients never choose: a candidate is judged by its validation pointing game
(Grad-CAM peak inside the FLAIR mask, per patient then averaged) and its validation AUC, both as
``salience evaluate glioma --lever`` measures them (``engine.training.evaluate.lever_rows``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The most a candidate's validation AUC may fall below the shipped bundle's and still be adopted.
MAX_AUC_DROP = 0.005
#: The rule in words, as the model card states it.
RULE = (
    "candidates are judged on the validation patients only; a candidate is adopted only if its "
    "validation pointing game is higher than the shipped bundle's and its validation AUC is not lower "
    f"by more than {MAX_AUC_DROP}; among those, the one with the highest validation pointing game"
)

#: The lever label (``salience evaluate glioma --lever LABEL=BUNDLE``) of the bundle candidates must beat.
SHIPPED_LABEL = "2.0.0 (shipped before)"
#: What had been seen of the candidates' held-back test figures before the choice.
TEST_SEEN_BEFORE = (
    "The class-balanced run's test figures (seed 0, the same settings) had been computed and printed once, "
    "in session 3, before this rule was declared and before anybody chose it; the other candidates' test "
    "figures were not looked at before the choice."
)


@dataclass(frozen=True)
class Verdict:
    """One candidate measured against the shipped bundle on the validation patients.

    Attributes:
        label: the candidate's name (its lever row's label).
        auc_change: its validation AUC minus the shipped bundle's.
        pointing_change: its validation pointing game minus the shipped bundle's.
        eligible: whether it passes both conditions of ``RULE``.
    """

    label: str
    auc_change: float
    pointing_change: float
    eligible: bool


@dataclass(frozen=True)
class Selection:
    """What ``RULE`` decided: every candidate's verdict and the one adopted (None: keep the shipped one)."""

    verdicts: tuple[Verdict, ...]
    chosen: str | None
    rule: str = RULE


def choose(shipped: Mapping[str, Any], candidates: Sequence[Mapping[str, Any]], max_auc_drop: float = MAX_AUC_DROP) -> Selection:
    """Apply ``RULE``: keep candidates with a higher pointing game and an AUC at most
    ``max_auc_drop`` lower than ``shipped``'s; adopt the one with the highest pointing game.

    Args:
        shipped: the shipped bundle's validation figures (``auc``, ``pointing_game``).
        candidates: each candidate's validation figures with its ``label``, in the order tried;
            of equal pointing games the first tried wins.
        max_auc_drop: the largest AUC loss allowed.

    Returns:
        The verdicts, in the order given, and the adopted label (None when no candidate passes).
    """
    verdicts = tuple(
        Verdict(
            str(c["label"]),
            float(c["auc"]) - float(shipped["auc"]),
            float(c["pointing_game"]) - float(shipped["pointing_game"]),
            float(c["pointing_game"]) > float(shipped["pointing_game"])
            and float(c["auc"]) >= float(shipped["auc"]) - max_auc_drop,
        )
        for c in candidates
    )
    eligible = [v for v in verdicts if v.eligible]
    chosen = max(eligible, key=lambda v: v.pointing_change).label if eligible else None
    return Selection(verdicts, chosen)
