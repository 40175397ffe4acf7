"""Uncertainty a reader can see: how much a model's answer moves when it is asked again.

Two ways of asking again, both as batched forward passes over the preprocessed items:

* Monte Carlo dropout (Gal & Ghahramani, "Dropout as a Bayesian approximation: representing
  model uncertainty in deep learning", ICML 2016): the network's dropout layers stay on at test
  time, so each pass samples the weights from an approximate posterior. Only a network with
  dropout (``p > 0``) can do this; batch normalisation stays in eval mode.
* Test-time augmentation (``engine.analysis.test_time``; Wang et al., Neurocomputing 2019): each
  pass sees a transformed copy that keeps the image's meaning (flips, a small intensity jitter),
  the transforms a task declares. The first copy is the image itself.

From ``S`` samples of class probabilities ``p_s`` (temperature-scaled like the shown ones) the
predictive entropy splits into two parts (Kendall & Gal, "What uncertainties do we need in
Bayesian deep learning for computer vision?", NeurIPS 2017; Depeweg et al., "Decomposition of
uncertainty in Bayesian deep learning for efficient and risk-sensitive learning", ICML 2018)::

    total      H[mean_s p_s]                  predictive entropy
    aleatoric  mean_s H[p_s]                  expected entropy: what each sample is unsure of
    epistemic  total - aleatoric  (>= 0)      mutual information: how much the samples disagree

in nats (natural logarithms; ``log K`` is the most ``K`` classes can have). With test-time
augmentation the samples differ in their input, not their weights, so "epistemic" there reads
as the disagreement between transformed copies of the image. The standard deviation across
samples of the top class's probability is reported beside them.

``judge`` says in words whether a case is uncertain. The rule (``RULE``): uncertain when ANY of

1. the top two of the shown probabilities are within ``MARGIN`` (0.15) of each other;
2. aleatoric uncertainty is high: the expected entropy is at least ``ALEATORIC_SHARE`` (75%) of
   ``log K`` nats (with two classes: every sample about 78:22 or closer);
3. epistemic uncertainty is high: the mutual information is at least ``EPISTEMIC_SHARE`` (10%)
   of ``log K`` nats;
4. the top class's probability has a standard deviation of at least ``STD_LIMIT`` (0.10)
   across the samples.

The shown probabilities stay the deterministic, temperature-scaled ones; the samples only
measure how far they move. A case answer pooled from items by a rule (``pool``) is measured on
that rule's answers: a slide's verdict (``engine.analysis.slide_verdict``) is called again on
each sample's tiles, so its uncertainty says how often the slide's answer changes (the share of
samples per answer is what is judged; its aleatoric part is 0), while each tile keeps its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import numpy as np

from engine.progress import NullProgress, Progress, check_cancelled

if TYPE_CHECKING:
    import torch
    from torch import nn

    from engine.models.bundle import Bundle

#: The ways of sampling; "auto" picks MC dropout when the network has dropout, else TTA.
METHODS = ("mc_dropout", "tta")
AUTO = "auto"
METHOD_NAMES = {"mc_dropout": "Monte Carlo dropout", "tta": "test-time augmentation"}

#: Samples per item by default.
DEFAULT_SAMPLES = 16

#: The words rule's limits (see the module docstring).
MARGIN = 0.15
ALEATORIC_SHARE = 0.75
EPISTEMIC_SHARE = 0.10
STD_LIMIT = 0.10
RULE = (
    f"uncertain when the top two classes are within {MARGIN:.2f}, or the expected entropy (aleatoric) is "
    f"at least {ALEATORIC_SHARE:.0%} of log K nats, or the mutual information (epistemic) is at least "
    f"{EPISTEMIC_SHARE:.0%} of log K nats, or the top-class probability's standard deviation across samples "
    f"is at least {STD_LIMIT:.2f}"
)


@dataclass(frozen=True)
class UncertaintyEstimate:
    """The decomposition for ``n`` rows (items, or the one case verdict).

    Attributes:
        mean_probabilities: ``(n, K)`` mean of the samples' probabilities.
        total: ``(n,)`` predictive entropy in nats.
        aleatoric: ``(n,)`` expected entropy in nats.
        epistemic: ``(n,)`` mutual information in nats (``total - aleatoric``, at least 0).
        top_std: ``(n,)`` standard deviation across samples of the probability of the top class
            of ``mean_probabilities``.
    """

    mean_probabilities: np.ndarray
    total: np.ndarray
    aleatoric: np.ndarray
    epistemic: np.ndarray
    top_std: np.ndarray

    def row(self, index: int) -> dict[str, float]:
        """One row's numbers, JSON-ready."""
        return {
            "total_entropy": float(self.total[index]),
            "aleatoric_entropy": float(self.aleatoric[index]),
            "epistemic_mutual_information": float(self.epistemic[index]),
            "top_class_std": float(self.top_std[index]),
        }


@dataclass(frozen=True)
class Judgement:
    """Whether a model is unsure of one answer, by ``RULE``.

    Attributes:
        uncertain: any clause of the rule holds.
        reasons: the clauses that hold, in words.
        words: one sentence for the reader.
    """

    uncertain: bool
    reasons: tuple[str, ...]
    words: str


@dataclass(frozen=True, eq=False)
class Uncertainty:
    """How much a case's answers move over ``samples`` samples.

    Attributes:
        method: "mc_dropout" or "tta".
        samples: samples per item.
        augmentations: the transforms of each TTA sample ("identity", "hflip+gain ..."); empty for
            MC dropout.
        items: the decomposition per item (slice, frame, tile).
        case: the decomposition of the case's answer (one row).
        case_item: the item whose answer stands for the case (the one most likely to show the
            class a reviewer looks at first); None when the case's answer is a clip's or a
            slide's verdict pooled from its items.
        judgement: the case's answer judged by ``RULE``.
    """

    method: str
    samples: int
    augmentations: tuple[str, ...]
    items: UncertaintyEstimate
    case: UncertaintyEstimate
    case_item: int | None
    judgement: Judgement

    @property
    def case_from(self) -> str:
        """Which answer ``case`` is: "verdict" or "item N" (counted from 0)."""
        return "verdict" if self.case_item is None else f"item {self.case_item}"

    @property
    def label(self) -> str:
        """E.g. "test-time augmentation, 16 samples"."""
        return f"{METHOD_NAMES[self.method]}, {self.samples} samples"

    def item_judgements(self, probabilities: np.ndarray, class_names: Sequence[str]) -> list[Judgement]:
        """Each item judged by ``RULE``, from its shown ``(N, K)`` probabilities."""
        return [judge(row, self.items, i, class_names) for i, row in enumerate(np.asarray(probabilities))]


def entropy(probabilities: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats over the last axis (``0 log 0 = 0``)."""
    p = np.asarray(probabilities, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log(p), 0.0)
    return terms.sum(axis=-1)


def decompose(samples: np.ndarray) -> UncertaintyEstimate:
    """Predictive entropy = expected entropy + mutual information, per row (Kendall & Gal 2017;
    Depeweg et al. 2018).

    Args:
        samples: ``(S, n, K)`` class probabilities of ``S`` samples for ``n`` rows.

    Returns:
        The ``UncertaintyEstimate`` (float64). The mutual information is clipped at 0: it is
        never negative in exact arithmetic (the entropy is concave).

    Raises:
        ValueError: not a ``(S, n, K)`` array with ``S >= 1``.
    """
    p = np.asarray(samples, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] < 1:
        raise ValueError(f"samples must be (S, n, K) with S >= 1, got shape {p.shape}")
    mean = p.mean(axis=0)
    total = entropy(mean)
    aleatoric = entropy(p).mean(axis=0)
    top = mean.argmax(axis=1) if mean.shape[1] else np.zeros(mean.shape[0], dtype=int)
    top_p = np.take_along_axis(p, np.broadcast_to(top[None, :, None], (p.shape[0], p.shape[1], 1)), axis=2)[..., 0]
    return UncertaintyEstimate(
        mean_probabilities=mean,
        total=total,
        aleatoric=np.minimum(aleatoric, total),
        epistemic=np.maximum(total - aleatoric, 0.0),
        top_std=top_p.std(axis=0),
    )


def judge(shown: Sequence[float] | np.ndarray, estimate: UncertaintyEstimate, row: int,
          class_names: Sequence[str]) -> Judgement:
    """Whether one answer is uncertain, by ``RULE``, said in words.

    Args:
        shown: ``(K,)`` the probabilities the reader is shown for this answer.
        estimate: its decomposition.
        row: the answer's row in ``estimate``.
        class_names: the ``K`` class names.
    """
    p = np.asarray(shown, dtype=np.float64)
    order = np.argsort(-p, kind="stable")
    k = len(p)
    margin = float(p[order[0]] - p[order[1]]) if k > 1 else 1.0
    expected, mutual = float(estimate.aleatoric[row]), float(estimate.epistemic[row])
    most = float(np.log(k)) if k > 1 else float("inf")  # no limit is reached with one class
    spread = float(estimate.top_std[row])
    reasons = []
    if margin < MARGIN:
        a, b = order[0], order[1]
        reasons.append(f"the top two classes are within {MARGIN:.2f} "
                       f"({class_names[a]} {p[a]:.0%}, {class_names[b]} {p[b]:.0%})")
    if expected >= ALEATORIC_SHARE * most:
        reasons.append(f"aleatoric uncertainty high (expected entropy {expected:.3f} nats, "
                       f"limit {ALEATORIC_SHARE * most:.3f})")
    if mutual >= EPISTEMIC_SHARE * most:
        reasons.append(f"epistemic uncertainty high (mutual information {mutual:.3f} nats, "
                       f"limit {EPISTEMIC_SHARE * most:.3f})")
    if spread >= STD_LIMIT:
        reasons.append(f"the top-class probability varies across samples (std {spread:.3f}, limit {STD_LIMIT:.2f})")
    if reasons:
        words = "Uncertain: " + "; ".join(reasons) + "."
    else:
        words = (f"Not flagged as uncertain: {class_names[order[0]]} {p[order[0]]:.0%}, margin {margin:.2f}, "
                 f"expected entropy {expected:.3f} nats, mutual information {mutual:.3f} nats, "
                 f"top-class std {spread:.3f}.")
    return Judgement(uncertain=bool(reasons), reasons=tuple(reasons), words=words)


# -- sampling --------------------------------------------------------------------------------------


def dropout_layers(network: "nn.Module") -> list["nn.Module"]:
    """The network's dropout layers that drop something (``p > 0``)."""
    from torch.nn.modules.dropout import _DropoutNd

    return [m for m in network.modules() if isinstance(m, _DropoutNd) and float(m.p) > 0]


def resolve_method(network: "nn.Module", requested: str | None) -> str | None:
    """The sampling method to use: ``requested``, or for "auto" MC dropout when the network has
    dropout and test-time augmentation otherwise; None stays None (no uncertainty).

    Raises:
        ValueError: an unknown method, or MC dropout asked of a network without dropout.
    """
    if requested is None:
        return None
    word = requested.replace("-", "_")
    if word == AUTO:
        return "mc_dropout" if dropout_layers(network) else "tta"
    if word not in METHODS:
        raise ValueError(f"uncertainty must be one of {[AUTO, *METHODS]} or None, got {requested!r}")
    if word == "mc_dropout" and not dropout_layers(network):
        raise ValueError("this network has no dropout layer (or only p = 0): Monte Carlo dropout is not available; "
                         "use test-time augmentation")
    return word


@contextmanager
def dropout_on(network: "nn.Module") -> Iterator[None]:
    """Switch the dropout layers (only) to training mode, restoring each one's mode after."""
    layers = dropout_layers(network)
    were = [m.training for m in layers]
    try:
        for m in layers:
            m.train(True)
        yield
    finally:
        for m, was in zip(layers, were):
            m.train(was)


def sample_probabilities(
    network: "nn.Module",
    batches: Iterable["torch.Tensor"],
    total: int,
    *,
    method: str,
    samples: int = DEFAULT_SAMPLES,
    temperature: float = 1.0,
    augmentations: Sequence[str] = (),
    batch_size: int = 32,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """``samples`` draws of every item's class probabilities, in batched forward passes.

    Each forward pass carries the samples of ``max(1, batch_size // samples)`` items together
    (their repeated copies for MC dropout, their transformed copies for TTA). Seeded: the same
    inputs give the same draws, and the global random state is left as it was.

    Args:
        network: classifier returning ``(B, K)`` logits.
        batches: ``(b, C, *spatial)`` preprocessed items (a tensor's chunks, or tiles read lazily).
        total: how many items the batches hold together (for progress).
        method: "mc_dropout" or "tta" (``resolve_method``).
        samples: draws per item.
        temperature: logits are divided by it before the softmax, as for the shown probabilities.
        augmentations: TTA's transform names (``engine.analysis.test_time.AUGMENTATIONS``).
        batch_size: about how many inputs one forward pass carries.
        seed: seeds the dropout masks and the intensity jitter.
        progress: told after each batch; cancellation raises ``engine.progress.Cancelled``.

    Returns:
        ``(probabilities (S, N, K) float32, each TTA sample's transform or () for MC dropout)``.

    Raises:
        ValueError: an unknown method or augmentation, or fewer than one sample.
    """
    import torch

    from engine.analysis import test_time
    from engine.models.inference import network_device

    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    progress = progress or NullProgress()
    device = network_device(network)
    step = max(1, batch_size // samples)
    plan: list[test_time.Augmentation] | None = None
    parts: list[torch.Tensor] = []
    done = 0
    with torch.random.fork_rng(devices=[]), torch.inference_mode(), (
        dropout_on(network) if method == "mc_dropout" else _nothing()
    ):
        torch.manual_seed(seed)
        for batch in batches:
            for start in range(0, batch.shape[0], step):
                check_cancelled(progress)
                x = batch[start : start + step].to(device)
                if method == "mc_dropout":
                    copies = x.repeat((samples,) + (1,) * (x.ndim - 1))
                else:
                    if plan is None:
                        plan = test_time.augmentation_plan(augmentations, samples, x.shape[-1] == x.shape[-2], seed)
                    copies = torch.cat([test_time.apply(a, x) for a in plan])
                logits = network(copies).float().cpu()
                parts.append(torch.softmax(logits / float(temperature), dim=1).reshape(samples, x.shape[0], -1))
            done += batch.shape[0]
            progress.report(done / max(1, total), f"sampled {done} of {total}")
    described = tuple(a.describe() for a in plan) if plan is not None else ()
    if not parts:
        return np.zeros((samples, 0, 0), np.float32), described
    return torch.cat(parts, dim=1).numpy().astype(np.float32), described


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def case_uncertainty(
    draws: np.ndarray,
    augmentations: tuple[str, ...],
    method: str,
    shown: np.ndarray | None,
    class_names: Sequence[str],
    *,
    pooled: bool,
    case_item: int = 0,
    pool: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Uncertainty:
    """The ``Uncertainty`` of a case from its draws.

    Args:
        draws: ``(S, N, K)`` from ``sample_probabilities``.
        augmentations: its transform names.
        method: "mc_dropout" or "tta".
        shown: the case answer's shown probabilities ``(K,)`` (a verdict's, or the item's); None:
            the mean of the case's pooled draws (e.g. a slide's share of samples per answer).
        class_names: the ``K`` classes.
        pooled: the case answer is pooled from the items (a clip's verdict, a slide's): its draws
            are each sample's items pooled by ``pool``. Otherwise it is item ``case_item``.
        case_item: the item that stands for the case when not pooled.
        pool: ``(S, N, K) -> (S, 1, K)``, how each sample's items give the case's answer; None:
            their mean (a clip's verdict).
    """
    items = decompose(draws)
    if pooled:
        case = decompose(draws.mean(axis=1, keepdims=True) if pool is None else pool(draws))
    else:
        case = decompose(draws[:, case_item : case_item + 1])
    if shown is None:
        shown = case.mean_probabilities[0]
    return Uncertainty(
        method=method,
        samples=int(draws.shape[0]),
        augmentations=augmentations,
        items=items,
        case=case,
        case_item=None if pooled else int(case_item),
        judgement=judge(shown, case, 0, class_names),
    )


#: The part of an analysis's progress bar its uncertainty samples take.
PROGRESS_SHARE = 0.6


def estimate_uncertainty(
    bundle: "Bundle",
    batches: Iterable["torch.Tensor"],
    total: int,
    shown: np.ndarray | None,
    *,
    method: str,
    pooled: bool,
    case_item: int = 0,
    pool: Callable[[np.ndarray], np.ndarray] | None = None,
    samples: int = DEFAULT_SAMPLES,
    batch_size: int = 32,
    seed: int = 0,
    progress: Progress | None = None,
) -> Uncertainty:
    """A case's uncertainty from a bundle and its preprocessed inputs: ``sample_probabilities``
    with the bundle's temperature and its task's test-time augmentations
    (``TaskSpec.test_time_augmentations``, else ``test_time.DEFAULT_AUGMENTATIONS``), then
    ``case_uncertainty``.

    Args:
        bundle: the model (``engine.models.load_bundle``).
        batches: the items' network inputs, batch by batch.
        total: how many items the batches hold.
        shown: ``(K,)`` the probabilities shown for the case's answer (None: see ``case_uncertainty``).
        method: "mc_dropout" or "tta" (``resolve_method``).
        pooled, case_item, pool: see ``case_uncertainty``.
        samples, batch_size, seed, progress: see ``sample_probabilities``.
    """
    from engine.analysis.test_time import DEFAULT_AUGMENTATIONS
    from engine.models.task_registry import task_spec

    declared = task_spec(bundle.task).test_time_augmentations
    draws, described = sample_probabilities(
        bundle.network, batches, total, method=method, samples=samples, temperature=bundle.temperature,
        augmentations=DEFAULT_AUGMENTATIONS if declared is None else declared, batch_size=batch_size, seed=seed,
        progress=progress,
    )
    return case_uncertainty(draws, described, method, shown, bundle.class_names, pooled=pooled, case_item=case_item,
                            pool=pool)
