"""Analyse and explain a whole cohort into the database: what a study freezes before readers start.

``analyse_cohort(sources, bundle, methods, store, progress)`` reads each case, analyses it with
``engine.analysis.analyse_case`` (every method from one capture per batch) and stores it through
``app.store``, the code the window stores with: one Case, one Prediction, one Explanation per class
and method. Each case is stored in one transaction, so an interrupted run leaves whole cases only,
and a new run skips every case already stored with the same weights (bundle hash) and methods,
found by its path before it is read and by its content hash after. With ``uncertainty`` each
Prediction also keeps how much its answers move under Monte Carlo dropout or test-time
augmentation (``app.store.uncertainty_record``), and a case stored before without it is analysed
again. A case that cannot be read or analysed is reported (one line naming the file) and the run
goes on.

``cohort_sources(spec, demo_data)`` turns what a user names (a worklist file, a folder, or the demo
worklist ``demo[:task]``) into the cases to analyse. ``salience analyse-cohort`` is the command.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.store import MAP_SIDE, store_analysis, store_case
from app.tasks import task_of
from db import blobs, runs
from db.errors import DbError
from engine.errors import SalienceError
from engine.progress import Cancelled, NullProgress, Progress, ScaledProgress, check_cancelled

if TYPE_CHECKING:
    from engine.analysis.precision import PrecisionDifference
    from engine.models.bundle import Bundle

log = logging.getLogger(__name__)

#: Names a worklist CSV may give its path column (compared without case).
PATH_COLUMNS = ("path", "source", "file")


@dataclass(frozen=True)
class CohortCase:
    """One case to analyse: the path ``read_image`` opens, and its task (None: from what it is)."""

    source: str
    task: str | None = None


@dataclass(frozen=True)
class CaseFailure:
    """A case that could not be read, analysed or stored, and why (one line)."""

    source: str
    reason: str

    def line(self) -> str:
        """``<source>: <reason>``, the reason alone when it already starts with the path it names."""
        return self.reason if self.reason.startswith(self.source) else f"{self.source}: {self.reason}"


@dataclass(frozen=True)
class CohortStore:
    """Where a cohort's results go: a session factory on a migrated database and the map store."""

    sessions: Callable
    blob_store: blobs.BlobStore


@dataclass(frozen=True)
class CohortSummary:
    """What a cohort run did.

    Attributes:
        bundle: ``"<name> <version>"``.
        weights_sha256: the bundle's weights hash (what a later run compares to skip cases).
        methods: the CAM methods stored for every case.
        device: where the model ran.
        half: the autocast dtype name, or None for float32.
        done: cases analysed and stored by this run.
        skipped: cases an earlier run had stored (same weights and methods).
        failures: the cases that failed, with their reasons.
        items: items (slices, frames, patches, tiles) analysed by this run.
        seconds: wall time spent on the cases (reading, analysing, storing), without the float32
            comparison run of ``precision``.
        precision: with ``half``, the first analysed case's maps and probabilities against float32.
        interrupted: the run stopped before the end (a rerun resumes).
        uncertainty: the uncertainty asked for ("auto", "tta", "mc_dropout"), None for none.
        samples: its draws per item.
        flagged: cases stored by this run whose answer the rule calls uncertain.
    """

    bundle: str
    weights_sha256: str
    methods: tuple[str, ...]
    device: str
    half: str | None
    done: int = 0
    skipped: int = 0
    failures: tuple[CaseFailure, ...] = ()
    items: int = 0
    seconds: float = 0.0
    precision: "PrecisionDifference | None" = None
    interrupted: bool = False
    uncertainty: str | None = None
    samples: int = 0
    flagged: int = 0

    @property
    def cases_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict:
        return {
            "bundle": self.bundle,
            "weights_sha256": self.weights_sha256,
            "methods": list(self.methods),
            "device": self.device,
            "half": self.half,
            "cases": {"done": self.done, "skipped": self.skipped, "failed": len(self.failures)},
            "failures": [{"source": f.source, "reason": f.reason} for f in self.failures],
            "items": self.items,
            "seconds": round(self.seconds, 3),
            "throughput": {"cases_per_s": round(self.cases_per_second, 3), "items_per_s": round(self.items_per_second, 3)},
            "precision": None if self.precision is None else self.precision.to_dict(),
            "interrupted": self.interrupted,
            "uncertainty": None if self.uncertainty is None else {
                "method": self.uncertainty, "samples": self.samples, "cases_flagged_uncertain": self.flagged},
        }


class CohortInterrupted(Cancelled):
    """The run was cancelled; ``summary`` says what was stored before it stopped."""

    def __init__(self, summary: CohortSummary):
        super().__init__("cohort run interrupted")
        self.summary = summary


@dataclass
class _Tally:
    done: int = 0
    skipped: int = 0
    items: int = 0
    seconds: float = 0.0
    failures: list[CaseFailure] = field(default_factory=list)
    precision: "PrecisionDifference | None" = None
    flagged: int = 0


def analyse_cohort(
    sources: Sequence[CohortCase | str],
    bundle: "Bundle",
    methods: Sequence[str],
    store: CohortStore,
    progress: Progress | None = None,
    *,
    half: str | None = None,
    batch_size: int = 32,
    classes: Sequence[int] | str | None = None,
    max_map_side: int = MAP_SIDE,
    on_failure: Callable[[CaseFailure], None] | None = None,
    uncertainty: str | None = None,
    samples: int = 16,
) -> CohortSummary:
    """Analyse, explain and store every case not already stored with this bundle and these methods.

    Args:
        sources: the cases (``CohortCase`` or a path).
        bundle: the loaded model (``engine.models.load_bundle(name, device=...)``); it runs on
            its own device, and the ModelRun rows record it.
        methods: CAM method names (``engine.models.inference.method_names()``); may be empty
            (predictions only).
        store: the database and the map store.
        progress: told the share of the cohort done with the current case's name; its
            ``cancelled()`` stops the run after the last whole case (``CohortInterrupted``).
        half: "bf16" or "fp16" to run the network under ``torch.autocast``; the first analysed
            case is also analysed in float32 and the difference reported (``precision``).
        batch_size: items per forward pass.
        classes: class indices to explain, None for every class, or "shown" for the class a
            reviewer looks at first (``engine.analysis.SHOWN``).
        max_map_side: the longest side of a stored map (``app.store.MAP_SIDE``, as the window).
        on_failure: called with each failed case as it fails (the command prints a line).
        uncertainty: "auto", "tta" or "mc_dropout" to measure and store each prediction's
            uncertainty (``samples`` forward passes per item more), None for none.
        samples: draws per item for the uncertainty.

    Returns:
        The ``CohortSummary``.

    Raises:
        SalienceError: an unknown method or class, a half precision the device does not run, or an
            uncertainty the network cannot give (MC dropout without dropout).
        CohortInterrupted: ``progress`` asked to stop; its ``summary`` counts what was stored.
    """
    from engine.device import autocast
    from engine.models.inference import check_methods

    progress = progress or NullProgress()
    names = tuple(dict.fromkeys(methods))
    try:
        check_methods(names)
    except ValueError as exc:
        raise SalienceError(str(exc)) from None
    cases = [c if isinstance(c, CohortCase) else CohortCase(str(c)) for c in sources]
    autocast(bundle.device, half)  # checks the precision before any case is read
    asked = _uncertainty_asked(bundle, uncertainty, samples)
    with store.sessions() as session:
        stored = runs.explained_cases(session, weights_sha256=bundle.weights_sha256, methods=names,
                                      measured=asked is not None)
    stored_sources, stored_hashes = {s for s, _ in stored}, {h for _, h in stored}
    tally = _Tally()
    for index, case in enumerate(cases):
        step = _CaseProgress(progress, index, len(cases), Path(case.source).name)
        try:
            check_cancelled(progress)
            if case.source in stored_sources:
                tally.skipped += 1
                step.report(1.0, "stored before")
                continue
            started = time.perf_counter()
            try:
                outcome = _analyse_one(case, bundle, names, store, step, half=half, batch_size=batch_size,
                                       classes=classes, max_map_side=max_map_side, stored_hashes=stored_hashes,
                                       compare=half is not None and tally.precision is None,
                                       uncertainty=asked, samples=samples)
                stored_sources.add(case.source)
            except Cancelled:
                raise
            except (SalienceError, DbError, ValueError, OSError) as exc:
                outcome = CaseFailure(case.source, str(exc))
            except Exception as exc:  # noqa: BLE001 - one case's crash must not end a cohort
                log.error("%s: %s: %s", case.source, type(exc).__name__, exc, exc_info=True)
                outcome = CaseFailure(case.source, f"{type(exc).__name__}: {exc}")
            _count(tally, outcome, time.perf_counter() - started, on_failure)
            step.report(1.0)
        except Cancelled:
            raise CohortInterrupted(_summary(bundle, names, half, tally, asked, samples, interrupted=True)) from None
    return _summary(bundle, names, half, tally, asked, samples)


def _uncertainty_asked(bundle: "Bundle", uncertainty: str | None, samples: int) -> str | None:
    """The uncertainty method as ``analyse_case`` takes it, checked before any case is read."""
    from engine.analysis.uncertainty import resolve_method

    if uncertainty is None:
        return None
    if samples < 1:
        raise SalienceError(f"uncertainty samples must be at least 1, got {samples}")
    word = uncertainty.replace("-", "_")
    try:
        resolve_method(bundle.network, word)
    except ValueError as exc:
        raise SalienceError(f"{bundle.name}: {exc}") from None
    return word


class _CaseProgress:
    """One case's share of the cohort's progress, its messages prefixed with which case it is."""

    def __init__(self, parent: Progress, index: int, total: int, name: str):
        self._scaled = ScaledProgress(parent, index / max(1, total), (index + 1) / max(1, total))
        self._prefix = f"case {index + 1} of {total} ({name})"

    def report(self, fraction: float, message: str = "") -> None:
        self._scaled.report(fraction, f"{self._prefix}: {message}" if message else self._prefix)

    def cancelled(self) -> bool:
        return self._scaled.cancelled()


@dataclass(frozen=True)
class _Stored:
    items: int
    comparison_seconds: float = 0.0
    precision: "PrecisionDifference | None" = None
    skipped: bool = False
    flagged: bool = False


def _count(tally: _Tally, outcome, seconds: float, on_failure) -> None:
    if isinstance(outcome, CaseFailure):
        tally.failures.append(outcome)
        tally.seconds += seconds
        if on_failure is not None:
            on_failure(outcome)
        return
    if outcome.skipped:
        tally.skipped += 1
        return
    tally.done += 1
    tally.items += outcome.items
    tally.seconds += seconds - outcome.comparison_seconds
    tally.precision = tally.precision or outcome.precision
    tally.flagged += outcome.flagged


def _analyse_one(
    case: CohortCase, bundle: "Bundle", methods: tuple[str, ...], store: CohortStore, progress: Progress, *,
    half: str | None, batch_size: int, classes, max_map_side: int, stored_hashes: set[str], compare: bool,
    uncertainty: str | None, samples: int,
) -> _Stored:
    """Read, analyse and store one case (one transaction); skip it when its content is stored."""
    from engine.analysis.precision import analyse_in_precision
    from engine.imaging import read_image

    volume = read_image(case.source, progress=ScaledProgress(progress, 0.0, 0.1))
    if volume.content_hash in stored_hashes:
        return _Stored(items=0, skipped=True)
    analysis, difference = analyse_in_precision(
        volume, bundle, half, compare=compare, progress=ScaledProgress(progress, 0.1, 0.95), methods=methods,
        classes=classes, batch_size=batch_size, max_map_side=max_map_side, keep_capture=False,
        uncertainty=uncertainty, uncertainty_samples=samples,
    )
    if not len(analysis.probabilities):
        raise SalienceError(f"nothing to classify ({'; '.join(analysis.notes) or 'no items'})")
    check_cancelled(progress)
    with store.sessions.begin() as session:
        case_id = store_case(session, volume, case.source, case.task or task_of(volume))
        store_analysis(session, store.blob_store, analysis, case_id, str(bundle.device), methods)
    stored_hashes.add(volume.content_hash)
    found = analysis.uncertainty
    return _Stored(items=len(analysis.probabilities), precision=difference,
                   comparison_seconds=0.0 if difference is None else difference.float32_seconds,
                   flagged=found is not None and found.judgement.uncertain)


def _summary(bundle: "Bundle", methods: tuple[str, ...], half: str | None, tally: _Tally, uncertainty: str | None,
             samples: int, interrupted: bool = False):
    return CohortSummary(
        bundle=f"{bundle.name} {bundle.version}", weights_sha256=bundle.weights_sha256, methods=methods,
        device=str(bundle.device), half=half, done=tally.done, skipped=tally.skipped, failures=tuple(tally.failures),
        items=tally.items, seconds=tally.seconds, precision=tally.precision, interrupted=interrupted,
        uncertainty=uncertainty, samples=samples if uncertainty else 0, flagged=tally.flagged,
    )


# -- what the user names: a worklist, a folder, or the demo worklist ------------------------------


def cohort_sources(spec: str, demo_data: Path) -> list[CohortCase]:
    """The cases named by ``spec``.

    Args:
        spec: ``demo`` or ``demo:<task>`` (the window's demo worklist, or one task's part of it);
            a folder (every image below it, ``engine.imaging.open.find_images``); an image file
            (that one case); or a worklist: a text file of paths, one a line (blank lines and
            ``#`` comments skipped), or a CSV file with a ``path`` (or ``source``, ``file``) column
            and optionally a ``task`` column. Relative paths are taken from the worklist's folder;
            every source comes back absolute (what a rerun compares with the stored cases).
        demo_data: the demo data folder (``Settings.demo_data``).

    Raises:
        SalienceError: an unknown demo task, a path that does not exist, a worklist without a
            path column or without any case, or a folder without images.
    """
    from app.demo import demo_cases, demo_tasks
    from engine.imaging.open import find_images

    if spec == "demo" or spec.startswith("demo:"):
        task = spec.partition(":")[2] or None
        if task is not None and task not in demo_tasks():
            raise SalienceError(f"demo worklist {spec!r}: unknown task {task!r} (known: {', '.join(demo_tasks())})")
        found = [CohortCase(c.source, c.task) for c in demo_cases(demo_data, task)]
        if not found:
            raise SalienceError(f"demo worklist {spec!r}: no demo cases under {demo_data}")
        return found
    path = Path(spec).expanduser().absolute()  # absolute, so that a rerun from elsewhere finds what was stored
    if not path.exists():
        raise SalienceError(f"{path}: no such worklist, folder or image")
    if path.is_dir():
        found = [CohortCase(str(p)) for p in find_images(path)]
        if not found:
            raise SalienceError(f"{path}: no images below this folder")
        return found
    if _looks_like_image(path):
        return [CohortCase(str(path))]
    return read_worklist(path)


def _looks_like_image(path: Path) -> bool:
    from engine.imaging.open import looks_like_image

    return path.suffix.lower() not in (".txt", ".csv", ".tsv", ".lst") and looks_like_image(path)


def read_worklist(path: Path) -> list[CohortCase]:
    """The cases of a worklist file (see ``cohort_sources``).

    Raises:
        SalienceError: an unreadable file, a CSV without a path column, or no case at all.
    """
    path = Path(path).absolute()
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise SalienceError(f"worklist {path}: cannot be read as text ({exc})") from None
    if path.suffix.lower() in (".csv", ".tsv"):
        cases = _csv_cases(path, text)
    else:
        lines = (line.strip() for line in text.splitlines())
        cases = [CohortCase(line) for line in lines if line and not line.startswith("#")]
    if not cases:
        raise SalienceError(f"worklist {path}: names no case")
    return [CohortCase(str(_resolved(path.parent, c.source)), c.task) for c in cases]


def _csv_cases(path: Path, text: str) -> list[CohortCase]:
    rows = list(csv.DictReader(text.splitlines(), delimiter="\t" if path.suffix.lower() == ".tsv" else ","))
    header = {name.strip().lower(): name for name in (rows[0].keys() if rows else []) if name}
    column = next((header[name] for name in PATH_COLUMNS if name in header), None)
    if column is None:
        raise SalienceError(f"worklist {path}: no {'/'.join(PATH_COLUMNS)} column (columns: {sorted(header.values())})")
    task = header.get("task")
    return [
        CohortCase((row[column] or "").strip(), ((row.get(task) or "").strip() or None) if task else None)
        for row in rows
        if (row[column] or "").strip()
    ]


def _resolved(folder: Path, source: str) -> Path:
    candidate = Path(source).expanduser()
    return candidate if candidate.is_absolute() else folder / candidate
