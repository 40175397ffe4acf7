"""A whole slide's answer from its tiles: a finding is present when enough tissue tiles show it.

A pathologist calls a slide positive when tumour is present anywhere in it, and reports how much
of the tissue it takes (tumour burden, e.g. the percentage of tumour cells or of tissue area);
benign tissue around a focus does not dilute the diagnosis. Averaging tile probabilities over all
tissue does exactly that: ten tumour tiles in forty-eight read as 79% benign. Multiple-instance
learning for slides pools tiles the same way a pathologist does, the slide being positive when
at least one (here: enough) of its tiles is (max-pooling; Campanella et al., "Clinical-grade
computational pathology using weakly supervised deep learning on whole slide images", Nature
Medicine 2019; Ilse et al., "Attention-based deep multiple instance learning", ICML 2018).

The rule (``RULE``), generic over tasks:

1. each tissue tile is called by its most probable class (argmax of its calibrated probabilities);
2. a finding is present when the finding classes (classes whose names do not mean "nothing
   found", ``engine.models.classes.is_no_finding``) are called in at least
   ``minimum_tiles(n)`` = max(``MIN_TILES``, ceil(``MIN_SHARE`` x n)) of the ``n`` tissue tiles
   together (one adenocarcinoma tile beside one squamous tile is two tiles of tumour);
3. the slide's answer is then the finding called in the most tiles (ties: the higher mean tile
   probability), the others named beside it; when no finding is present, the "nothing found"
   class called in the most tiles (a model without such a class: the class called in the most
   tiles).

Why that minimum: a single tile is the noise floor of a patch classifier (at a per-tile error of a
few percent, a benign slide of hundreds of tiles always has some stray tumour calls), so one tile
never makes a slide positive, and two neighbouring calls is the smallest focus worth showing; on a
large slide the floor grows with the tissue (5%: above the per-tile false-positive rate of the
shipped histopathology model, so that a large benign slide is not flagged by chance calls alone).
A focus smaller than that is not hidden: the label names it ("below the minimum") and the tile
map shows it.

The verdict's probabilities are the tile shares per class (the burden: the fraction of tissue
tiles called each class); the mean tile probability per class is kept beside them as a second
figure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.analysis.result import CaseVerdict
from engine.models.classes import is_no_finding

#: A finding is present in at least this many tissue tiles ...
MIN_TILES = 2
#: ... and in at least this share of them (whichever is more).
MIN_SHARE = 0.05

RULE = (f"finding present: each tissue tile called by its most probable class; when finding classes are "
        f"called in at least max({MIN_TILES}, {MIN_SHARE:.0%} of the tissue tiles) together, the slide shows the "
        f"finding called in the most tiles, else no finding; probabilities are the share of tissue tiles "
        f"called each class")


def minimum_tiles(tissue_tiles: int) -> int:
    """How many of ``tissue_tiles`` must show a finding for the slide to show it."""
    return max(MIN_TILES, math.ceil(MIN_SHARE * tissue_tiles - 1e-9))


def tile_counts(tile_probabilities: np.ndarray) -> np.ndarray:
    """``(K,)`` int64: how many of the ``(n, K)`` tiles are called each class (argmax)."""
    table = np.asarray(tile_probabilities)
    return np.bincount(table.argmax(axis=1), minlength=table.shape[1]).astype(np.int64)


@dataclass(frozen=True)
class SlideCall:
    """A slide's answer by ``RULE``.

    Attributes:
        class_index: the slide's class.
        finding: whether findings are present in enough tiles (else "nothing found").
        tile_counts: ``(K,)`` tissue tiles called each class.
        minimum: tiles a finding needs (``minimum_tiles``).
        mean_probabilities: ``(K,)`` mean tile probability per class (the second figure).
        label: the answer in words, e.g. "Slide: Adenocarcinoma in 10 of 48 tissue tiles (21%)".
    """

    class_index: int
    finding: bool
    tile_counts: np.ndarray
    minimum: int
    mean_probabilities: np.ndarray
    label: str

    @property
    def tiles(self) -> int:
        """Tissue tiles called."""
        return int(self.tile_counts.sum())

    @property
    def shares(self) -> np.ndarray:
        """``(K,)`` float32 share of the tissue tiles called each class (the burden)."""
        return (self.tile_counts / max(1, self.tiles)).astype(np.float32)

    def mean_line(self, class_names: Sequence[str]) -> str:
        """The second figure in words: "Mean tile probability: Adenocarcinoma 24%, ..."."""
        parts = ", ".join(f"{name} {p:.0%}" for name, p in zip(class_names, self.mean_probabilities))
        return f"Mean tile probability: {parts}"


def call_slide(class_names: Sequence[str], tile_probabilities: np.ndarray) -> SlideCall:
    """The slide's answer by ``RULE`` from its tissue tiles' ``(n, K)`` probabilities.

    Raises:
        ValueError: no tiles, or rows that do not have one probability per class.
    """
    names = list(class_names)
    table = np.asarray(tile_probabilities, dtype=np.float64)
    if table.ndim != 2 or table.shape[1] != len(names) or not len(table):
        raise ValueError(f"tile probabilities {table.shape} are not (n >= 1, {len(names)}) rows")
    n = len(table)
    counts = tile_counts(table)
    mean = table.mean(axis=0)
    minimum = minimum_tiles(n)
    normal = [k for k, name in enumerate(names) if is_no_finding(name)]
    findings = [k for k in range(len(names)) if k not in normal]
    present = sum(int(counts[k]) for k in findings) >= minimum
    rank = lambda k: (counts[k], mean[k], -k)  # noqa: E731 (most tiles, then most probable, then first)
    stray = [f"{names[f]} in {counts[f]}" for f in findings if counts[f]]
    if present:
        k = max(findings, key=rank)
        label = f"Slide: {names[k]} in {counts[k]} of {n} tissue tiles ({counts[k] / n:.0%})"
        others = [f"{names[f]} in {counts[f]}" for f in findings if counts[f] and f != k]
        label += f" (also {', '.join(others)})" if others else ""
    else:
        k = max(normal or range(len(names)), key=rank)
        label = f"Slide: {names[k]} in {counts[k]} of {n} tissue tiles"
        if normal:
            label = f"Slide: no finding in {n} tissue tiles"
            label += f" ({', '.join(stray)}: below the minimum of {minimum})" if stray else ""
    return SlideCall(class_index=int(k), finding=present, tile_counts=counts, minimum=minimum,
                     mean_probabilities=mean.astype(np.float32), label=label)


def slide_verdict(class_names: Sequence[str], tile_probabilities: np.ndarray) -> CaseVerdict:
    """``call_slide`` as the ``CaseVerdict`` an analysis carries: the tile shares as its
    probabilities, its class named, the mean tile probability as a detail."""
    call = call_slide(class_names, tile_probabilities)
    return CaseVerdict(call.shares, RULE, call.label, answer=call.class_index,
                       details=(call.mean_line(class_names),))


def sample_calls(class_names: Sequence[str], draws: np.ndarray) -> np.ndarray:
    """Each sample's slide answer as one-hot ``(S, 1, K)`` rows, from ``(S, n, K)`` tile draws (MC
    dropout or test-time augmentation, ``engine.analysis.uncertainty``): their mean is the share
    of samples whose slide answer is each class, and their decomposition measures how often the
    slide's answer changes (no aleatoric part: each sample's answer is certain)."""
    draws = np.asarray(draws)
    votes = np.zeros((draws.shape[0], 1, len(class_names)), np.float32)
    for s, sample in enumerate(draws):
        votes[s, 0, call_slide(class_names, sample).class_index] = 1.0
    return votes
