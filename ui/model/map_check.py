"""One verdict on a checked map that weighs every measure of its quality report.

``engine.analysis.quality.quality_report`` measures a map three ways: faithfulness (deletion and
insertion curves), localisation against the image's mask (pointing game, share of the map's
energy inside the mask) and the parameter-randomisation sanity check (Adebayo et al., NeurIPS
2018). A map that passes the sanity check can still point at the wrong place, so the headline a
reader sees first must never read "good" when any measure fails:

* **fails** (red): the map does not depend on the weights, or it misses the mask (the peak lies
  outside it, or its energy inside the mask is no more than a uniform map would put there);
* **weak** (amber): a measure is borderline (deleting the map's hottest pixels does not lower the
  score faster than inserting them raises it; energy inside the mask below ``ENERGY_GOOD``);
* **passes** (green): every measure that could be made passed.

Energy inside the mask follows Wang et al., "Score-CAM", CVPR-W 2020 (energy-based pointing game);
the pointing game Zhang et al., ECCV 2016. Qt-free, so the panels and the tests share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Level = Literal["passes", "weak", "fails"]

#: Energy inside the mask needs to beat a uniform map (whose share equals the mask's area share)
#: by this factor, else localisation fails.
UNIFORM_MARGIN = 1.5
#: Energy inside the mask below this share is weak even when it beats a uniform map.
ENERGY_GOOD = 0.5


@dataclass(frozen=True)
class MapVerdict:
    """What a reader reads first about a checked map.

    Attributes:
        level: "passes", "weak" or "fails".
        headline: one line naming the worst finding, e.g. "Fails: the map's peak misses the mask".
        reasons: every finding that lowered the level, worst first (empty when it passes).
        measured: what could be measured ("faithfulness", "localisation", "sanity").
    """

    level: Level
    headline: str
    reasons: tuple[str, ...]
    measured: tuple[str, ...]

    @property
    def symbol(self) -> str:
        return {"passes": "\u2714", "weak": "\u26a0", "fails": "\u2718"}[self.level]


def map_verdict(report: dict) -> MapVerdict:
    """Weigh every measure of a quality report into one verdict.

    Args:
        report: ``quality_report``'s dict: ``deletion``, ``insertion``, ``sanity`` and, when the
            image has a mask, ``pointing_game``, ``energy_inside_mask`` and ``mask_area_fraction``.

    Returns:
        The verdict; "passes" only when no measure failed or was weak.
    """
    fails: list[str] = []
    weak: list[str] = []
    measured = ["faithfulness", "sanity"]
    sanity = report.get("sanity", {})
    if not sanity.get("trustworthy", False):
        fails.append("it barely changes when the model's weights are randomised (untrustworthy)")
    if "pointing_game" in report:
        measured.insert(1, "localisation")
        if not report["pointing_game"].get("hit", False):
            fails.append("the map's peak misses the mask")
        energy = float(report.get("energy_inside_mask", {}).get("fraction", 0.0))
        area = float(report.get("mask_area_fraction", 0.0))
        if energy <= UNIFORM_MARGIN * area:
            fails.append(f"only {100 * energy:.1f}% of its energy lies in the mask, no better than a "
                         f"uniform map ({100 * area:.1f}%)")
        elif energy < ENERGY_GOOD:
            weak.append(f"{100 * energy:.1f}% of its energy lies in the mask")
    deletion = report.get("deletion", {}).get("auc")
    insertion = report.get("insertion", {}).get("auc")
    if deletion is not None and insertion is not None and deletion >= insertion:
        weak.append(f"deleting its hottest pixels lowers the score no faster than inserting them raises it "
                    f"(deletion AUC {deletion:.2f} \u2265 insertion AUC {insertion:.2f})")
    if fails:
        level: Level = "fails"
        headline = f"Fails: {fails[0]}"
    elif weak:
        level = "weak"
        headline = f"Weak: {weak[0]}"
    else:
        level = "passes"
        checked = ", ".join(measured)
        headline = f"Passes every measure made ({checked})"
        if "localisation" not in measured:
            headline += "; no mask to check where it points"
    return MapVerdict(level, headline, tuple(fails + weak), tuple(measured))
