"""What the three training recipes share: the seeded network, the epoch loop that keeps the best
epoch, temperature fitting, and ``RecipeRun``, the skeleton of a run that ends in a written bundle.

A recipe (``train_glioma``, ``train_histopathology``, ``train_lung_ultrasound``) keeps only what is
its own: reading and splitting its data, its augmentation, how it judges an epoch on its validation
part, its metrics and its model card. Its metadata is composed by ``engine.training.bundle_writer``
and its command line by ``engine.training.cli``. Nothing here draws random numbers but from
the seeds it is given, so a recipe run twice with the same seeds and thread count writes the same
weights, byte for byte.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import SalienceError
from engine.models.bundle import load_bundle
from engine.training.bundle_writer import BundleSpec, bundle_metadata, write_bundle
from engine.training.evaluation import expected_calibration_error, fit_temperature
from engine.models.inference import batches, predict_items
from engine.models.network_config import build_network
from engine.progress import NullProgress, Progress, check_cancelled

#: Where a run's metrics are written inside its bundle.
TRAINING_METRICS_FILE = "docs/training_metrics.json"
#: Share of the progress bar the epochs fill; evaluation and writing the bundle take the rest.
TRAINING_SHARE = 0.9

#: ``augment(batch, generator) -> batch``: a recipe's random augmentation of one training batch.
Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
#: ``objective(network, batch, labels) -> loss``: a recipe's own training loss of an augmented batch
#: (e.g. ``engine.training.guidance.GuidedObjective``); the default is the cross-entropy.
Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class FitSettings:
    """How a network is fitted: AdamW with a one-cycle learning rate (Smith and Topin,
    "Super-Convergence", 2019) over ``epochs`` passes of shuffled batches.

    Attributes:
        epochs: passes over the training items.
        seed: seeds the batch order and the augmentation (and, through ``seeded_network``, the
            initial weights).
        batch_size: items per optimiser step.
        learning_rate: peak learning rate of the one-cycle schedule.
    """

    epochs: int
    seed: int
    batch_size: int
    learning_rate: float


@dataclass(frozen=True)
class EpochScore:
    """How a recipe judges one epoch on its validation part.

    Attributes:
        score: lower is better; the epoch with the lowest score is kept.
        record: the epoch's validation figures, written to the history after ``epoch`` and
            ``train_loss``.
        summary: the same figures for the progress line, e.g. ``"val NLL 0.412, val AUC 0.873"``.
    """

    score: float
    record: dict[str, float]
    summary: str


def seeded_network(network_def: dict[str, Any], seed: int) -> nn.Module:
    """The network of ``network_def`` with initial weights drawn right after ``torch.manual_seed(seed)``.

    Args:
        network_def: a ``monai.networks.nets`` config (the one written to ``inference.json``).
        seed: the recipe's seed.

    Returns:
        The network on the CPU.
    """
    torch.manual_seed(seed)
    return build_network(network_def, "training")


def network_logits(network: nn.Module, inputs: torch.Tensor) -> np.ndarray:
    """``(N, K)`` float32 logits of every item, the network in eval mode, 64 items per pass."""
    network.eval()
    logits, _ = predict_items(network, inputs, batch_size=64)
    return logits


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities of ``logits / temperature`` (rows sum to 1)."""
    return torch.softmax(torch.from_numpy(logits) / temperature, 1).numpy()


def train_one_epoch(
    network: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    optimiser: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    augment: Augment,
    generator: torch.Generator,
    batch_size: int,
    class_weights: torch.Tensor | None,
    progress: Progress,
    span: tuple[float, float],
    objective: Objective | None = None,
) -> float:
    """One pass over the training items in an order drawn from ``generator``.

    Args:
        network: put in training mode here.
        inputs: ``(N, C, h, w)`` training items.
        labels: ``(N,)`` class indices.
        optimiser: stepped after each batch, and then ``scheduler``.
        scheduler: the learning-rate schedule.
        augment: the recipe's augmentation, applied to each batch with ``generator``.
        generator: the run's generator (batch order first, then each batch's augmentation).
        batch_size: items per step.
        class_weights: per-class weights of the cross-entropy; None weighs every item alike.
        progress: told after each batch, within ``span`` of the whole run; checked for cancellation.
        span: ``(start, end)`` fractions of the whole run this epoch covers.
        objective: the loss of an augmented batch; None: cross-entropy with ``class_weights``.

    Returns:
        The mean training loss over the items.

    Raises:
        engine.progress.Cancelled: the user cancelled.
    """
    network.train()
    order = torch.randperm(len(labels), generator=generator)
    chunks = batches(len(order), batch_size)
    total = 0.0
    for done, chunk in enumerate(chunks, start=1):
        check_cancelled(progress)
        index = order[chunk.start : chunk.stop]
        batch = augment(inputs[index], generator)
        if objective is None:
            loss = F.cross_entropy(network(batch), labels[index], weight=class_weights)
        else:
            loss = objective(network, batch, labels[index])
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        scheduler.step()
        total += float(loss.detach()) * len(index)
        progress.report(span[0] + (span[1] - span[0]) * done / len(chunks), "")
    return total / len(order)


def fit_network(
    network: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    validate: Callable[[nn.Module], EpochScore],
    settings: FitSettings,
    *,
    augment: Augment,
    progress: Progress,
    class_weights: torch.Tensor | None = None,
    objective: Objective | None = None,
) -> tuple[list[dict[str, float]], int]:
    """Train with AdamW (weight decay 1e-4) and a one-cycle schedule; keep the best epoch.

    After each epoch ``validate`` judges the network; the weights of the epoch with the lowest
    score (the first of equal ones) are restored at the end.

    Args:
        network: the network to train (its weights are changed in place).
        inputs: ``(N, C, h, w)`` training items.
        labels: ``(N,)`` class indices.
        validate: the recipe's judgement of an epoch on its validation part.
        settings: epochs, seed, batch size and peak learning rate.
        augment: the recipe's augmentation of a training batch.
        progress: told the fraction done and each epoch's figures; cancellation raises
            ``engine.progress.Cancelled``.
        class_weights: per-class weights of the cross-entropy; None weighs every item alike.
        objective: the recipe's own loss of an augmented batch (it then owns any class
            weights); None: the cross-entropy.

    Returns:
        ``(history, best_epoch)``: one dict per epoch (``epoch``, ``train_loss`` and the
        validation record) and the kept epoch, counted from 1; ``network`` holds its weights, in
        eval mode.

    Raises:
        SalienceError: no epoch gave a finite validation score (the loss diverged).
    """
    epochs = settings.epochs
    optimiser = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate, weight_decay=1e-4)
    steps = epochs * len(batches(len(labels), settings.batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=settings.learning_rate, total_steps=steps, pct_start=0.2
    )
    generator = torch.Generator().manual_seed(settings.seed)
    history: list[dict[str, float]] = []
    best_score, best_epoch, best_state = math.inf, -1, None
    for epoch in range(1, epochs + 1):
        span = (TRAINING_SHARE * (epoch - 1) / epochs, TRAINING_SHARE * epoch / epochs)
        loss = train_one_epoch(
            network, inputs, labels, optimiser=optimiser, scheduler=scheduler, augment=augment, generator=generator,
            batch_size=settings.batch_size, class_weights=class_weights, progress=progress, span=span,
            objective=objective,
        )
        judged = validate(network)
        history.append({"epoch": epoch, "train_loss": loss, **judged.record})
        progress.report(span[1], f"epoch {epoch}/{epochs}: loss {loss:.3f}, {judged.summary}")
        if judged.score < best_score:
            best_score, best_epoch, best_state = judged.score, epoch, copy.deepcopy(network.state_dict())
    if best_state is None:
        raise SalienceError(f"training diverged: no epoch of {epochs} gave a finite validation score")
    network.load_state_dict(best_state)
    network.eval()
    return history, best_epoch


@dataclass(frozen=True)
class Calibration:
    """A softmax temperature fitted on the validation part, and the held-out logits.

    Temperature scaling: Guo et al., "On Calibration of Modern Neural Networks", ICML 2017.

    Attributes:
        temperature: divides the logits before the softmax.
        val_logits: ``(N_val, K)`` logits of the validation items (the temperature's data).
        test_logits: ``(N_test, K)`` logits of the test items.
    """

    temperature: float
    val_logits: np.ndarray
    test_logits: np.ndarray

    def val_probabilities(self) -> np.ndarray:
        """Calibrated probabilities of the validation items."""
        return softmax(self.val_logits, self.temperature)

    def test_probabilities(self, calibrated: bool = True) -> np.ndarray:
        """Probabilities of the test items, calibrated or as the network gives them."""
        return softmax(self.test_logits, self.temperature if calibrated else 1.0)

    def test_ece(self, labels: np.ndarray) -> tuple[float, float]:
        """Expected calibration error on the test items: ``(calibrated, uncalibrated)``."""
        return (
            expected_calibration_error(self.test_probabilities(), labels),
            expected_calibration_error(self.test_probabilities(calibrated=False), labels),
        )


def calibrate(
    network: nn.Module, val_inputs: torch.Tensor, val_labels: np.ndarray, test_inputs: torch.Tensor
) -> Calibration:
    """Fit the temperature that minimises the validation NLL and run the test items.

    Args:
        network: the trained network.
        val_inputs: ``(N_val, C, h, w)`` validation items.
        val_labels: ``(N_val,)`` their class indices.
        test_inputs: ``(N_test, C, h, w)`` test items.
    """
    val_logits = network_logits(network, val_inputs)
    temperature = fit_temperature(val_logits, val_labels)
    return Calibration(temperature, val_logits, network_logits(network, test_inputs))


def training_record(settings: FitSettings, split_seed: int, best_epoch: int, **details: Any) -> dict[str, Any]:
    """The ``training`` section of ``metadata.json``: settings, split seed, kept epoch, then ``details``
    (in the order given; recipes name ``torch_threads`` there)."""
    return {
        "seed": settings.seed,
        "split_seed": split_seed,
        "epochs": settings.epochs,
        "best_epoch": best_epoch,
        "batch_size": settings.batch_size,
        "learning_rate": settings.learning_rate,
        **details,
    }


class TrainingClock:
    """Wall-clock and CPU time of a run: reading the data, training, and the whole run."""

    def __init__(self) -> None:
        self._started = self._now()
        self._read = self._trained = self._started

    @staticmethod
    def _now() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    def data_read(self) -> None:
        """Mark the end of reading and preparing the data."""
        self._read = self._now()

    def trained(self) -> None:
        """Mark the end of training."""
        self._trained = self._now()

    def phases(self) -> dict[str, float]:
        """``seconds_loading``, ``seconds_training`` and ``cpu_seconds_training``."""
        return {
            "seconds_loading": self._read[0] - self._started[0],
            "seconds_training": self._trained[0] - self._read[0],
            "cpu_seconds_training": self._trained[1] - self._read[1],
        }

    def totals(self) -> dict[str, float]:
        """``seconds_total`` and ``cpu_seconds_total`` up to now."""
        now = self._now()
        return {"seconds_total": now[0] - self._started[0], "cpu_seconds_total": now[1] - self._started[1]}


class RecipeRun:
    """One run of a training recipe, the skeleton every recipe follows.

    The recipe reads and splits its data, then calls, in this order: ``data_read``, ``train``
    (seeded network, epoch loop, best epoch), ``calibrate`` (temperature on the validation part,
    logits of the test part), ``metadata`` and ``save``. Between them it computes its own metrics;
    ``fit_figures`` and ``clock.phases`` give the figures every recipe reports.

    Attributes:
        spec: what the bundle declares.
        network_def: the network config (a copy; written to ``inference.json``).
        settings: epochs, seed, batch size and learning rate.
        split_seed: the seed of the recipe's split (recorded in the metadata).
        progress: told the fraction done; cancellation raises ``engine.progress.Cancelled``.
        clock: wall-clock and CPU times of the run.
        network: the trained network (after ``train``).
        history: one record per epoch (after ``train``).
        best_epoch: the kept epoch, counted from 1 (after ``train``).
        calibration: the fitted temperature and held-out logits (after ``calibrate``).
    """

    def __init__(
        self,
        spec: BundleSpec,
        network_def: dict[str, Any],
        settings: FitSettings,
        split_seed: int,
        progress: Progress | None = None,
    ) -> None:
        self.clock = TrainingClock()
        self.spec = spec
        self.network_def = copy.deepcopy(network_def)
        self.settings = settings
        self.split_seed = split_seed
        self.progress: Progress = progress or NullProgress()
        self.network: nn.Module | None = None
        self.history: list[dict[str, float]] = []
        self.best_epoch = -1
        self.calibration: Calibration | None = None

    def data_read(self) -> None:
        """Mark the end of reading and preparing the data."""
        self.clock.data_read()

    def train(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        validate: Callable[[nn.Module], EpochScore],
        *,
        augment: Augment,
        class_weights: torch.Tensor | None = None,
        objective: Objective | None = None,
    ) -> nn.Module:
        """Build the seeded network and fit it (``fit_network``); returns it with its best epoch's weights."""
        self.network = seeded_network(self.network_def, self.settings.seed)
        self.history, self.best_epoch = fit_network(
            self.network, inputs, labels, validate, self.settings,
            augment=augment, progress=self.progress, class_weights=class_weights, objective=objective,
        )
        self.clock.trained()
        return self.network

    def calibrate(self, val_inputs: torch.Tensor, val_labels: np.ndarray, test_inputs: torch.Tensor) -> Calibration:
        """Fit the temperature on the validation part and run the test part (``calibrate``)."""
        self.calibration = calibrate(self._trained(), val_inputs, val_labels, test_inputs)
        return self.calibration

    def metadata(self, parameters: dict[str, Any], details: dict[str, Any], **sections: Any) -> dict[str, Any]:
        """``metadata.json`` (``bundle_metadata``) with the network's ``target_layer_grid`` last.

        Args:
            parameters: the preprocessing parameters.
            details: more of the ``training`` section, after the settings (``training_record``).
            sections: further recipe sections (the split, the grouping), in this order.
        """
        if self.calibration is None:
            raise RuntimeError("calibrate the network before writing its metadata")
        training = training_record(self.settings, self.split_seed, self.best_epoch, **details)
        metadata = bundle_metadata(self.spec, parameters, self.calibration.temperature, training, **sections)
        metadata["target_layer_grid"] = self.spec.target_layer_grid(self._trained())
        return metadata

    def fit_figures(self) -> dict[str, Any]:
        """The metrics every recipe reports on its fit: temperature, kept epoch, parameter count, history."""
        if self.calibration is None:
            raise RuntimeError("calibrate the network before reporting its fit")
        return {
            "temperature": self.calibration.temperature,
            "best_epoch": self.best_epoch,
            "parameters": sum(p.numel() for p in self._trained().parameters()),
            "history": self.history,
        }

    def save(
        self,
        out_dir: str | Path,
        metadata: dict[str, Any],
        metrics: dict[str, Any],
        model_card: Callable[[dict[str, Any]], str],
    ) -> Path:
        """Write the bundle, check that it loads, and write the run's metrics beside its model card.

        ``metrics`` gains the total times (before the card is written, which quotes them) and then
        ``bundle``, the folder written.

        Args:
            out_dir: the bundle folder (created; files overwritten).
            metadata: ``metadata.json`` content (``metadata``).
            metrics: what the run measured; written to ``TRAINING_METRICS_FILE``.
            model_card: Markdown card of the final metrics.

        Returns:
            The bundle folder.

        Raises:
            BundleError: the written bundle does not load (e.g. fails its checksum).
        """
        network = self._trained()
        metrics.update(self.clock.totals())
        out = write_bundle(out_dir, metadata, self.network_def, network.state_dict(), model_card(metrics))
        load_bundle(out)
        (out / TRAINING_METRICS_FILE).write_text(json.dumps(metrics, indent=1) + "\n", encoding="utf-8")
        metrics["bundle"] = str(out)
        self.progress.report(1.0, f"wrote {out}")
        return out

    def _trained(self) -> nn.Module:
        if self.network is None:
            raise RuntimeError("train the network first")
        return self.network
