"""``SalienceWorkstation``: the ``ui.backend.Workstation`` port implemented over engine and db.

This is where engine results enter the database: one session scope per user action
(``with self._sessions.begin() as session:``), maps stored as content-addressed .npy files whose
path and hash the Explanation rows keep. One analysis (``engine.analysis.analyse_case``) is one
Prediction row with one Explanation per class and method; "Compare with..." adds the second
method's Explanations to the same row, computed from the analysis kept in memory (its capture
serves every gradient-family method with no forward pass).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from app.demo import demo_cases
from app.errors import engine_errors, user_errors
from app.devices import checked_device, device_choices
from app.settings import DEVICE_ENV, Settings
from app.store import MAP_SIDE, store_case, store_maps, store_prediction, uncertainty_record
from app.stored_analysis import stored_analysis, uncertainty_shown
from app.study_workstation import StudyDesk
from app.tasks import task_of, vocabulary  # noqa: F401 (task_of re-exported)
from db import blobs, readers, readings, runs
from db.models import Prediction
from engine.errors import SalienceError
from engine.imaging import read_image
from engine.imaging.mask_rle import MaskRLE
from engine.progress import Progress, ScaledProgress, check_cancelled
from ui.backend import (
    Analysis,
    AnnotationDraft,
    DeviceChoice,
    MethodCost,
    OpenedCase,
    ReaderInfo,
    ReadingDraft,
    SavedReading,
    Uncertainty,
    Verdict,
    WorklistItem,
)
from ui.model.geometry import ellipse_polygon

if TYPE_CHECKING:
    from engine.analysis import CaseAnalysis

log = logging.getLogger(__name__)



#: Analyses kept in memory (with their captures) for "Compare with..." and the map check.
CACHED_ANALYSES = 2

#: How the window's analyses estimate their uncertainty: MC dropout when the network has dropout,
#: else test-time augmentation (``engine.analysis.uncertainty``).
UNCERTAINTY = "auto"


def uncertainty_view(result: "CaseAnalysis", stored: dict | None = None) -> Uncertainty | None:
    """What the window shows of an analysis's uncertainty: its stored record
    (``app.store.uncertainty_record``) as a reopened reading shows it, so both say the same. One
    entry per row of ``CaseAnalysis.item_probabilities``, except that a slide's one row (its score)
    and a whole-volume model's answer repeated on every slice are judged as the case.

    Args:
        result: the analysis.
        stored: the record its Prediction row keeps, shown when ``result`` measured none (a map
            method added to a prediction after its analysis left memory).
    """
    per_item = result.slide is None and result.item_axis != "volume"
    return uncertainty_shown(uncertainty_record(result) or stored, per_item)


def demo_worklist(demo_data: Path) -> list[WorklistItem]:
    """The demo cases of every task found under ``demo_data`` (``app.demo.demo_cases``)."""
    return [WorklistItem(key=c.key, title=c.title, source=c.source, task=c.task) for c in demo_cases(demo_data)]


class SalienceWorkstation(StudyDesk):
    """The workstation for one signed-in reader.

    Args:
        settings: where data lives.
        session_factory: a SQLAlchemy sessionmaker bound to a migrated database.
        reader_id: the signed-in reader's database id.
    """

    def __init__(self, settings: Settings, session_factory, reader_id: int):
        self._settings = settings
        self._sessions = session_factory
        self._blobs = blobs.BlobStore(settings.blob_root)
        self._bundles: dict[str, object] = {}  # loaded on self._device
        self._device = settings.device
        self._bundle_lock = threading.Lock()
        self._stored: dict[int, _Stored] = {}  # prediction id -> what was stored of it in this session
        self._analyses: OrderedDict[int, CaseAnalysis] = OrderedDict()  # prediction id -> its CaseAnalysis, newest last
        self._cache_lock = threading.Lock()
        with self._sessions() as session:
            row = readers.get_reader(session, reader_id)
            self._reader = ReaderInfo(id=row.id, name=row.display_name or row.username, role=row.role)

    @property
    def reader(self) -> ReaderInfo:
        return self._reader

    # -- worklist and vocabulary ---------------------------------------------------------------

    def worklist(self) -> list[WorklistItem]:
        items = demo_worklist(self._settings.demo_data)
        with self._sessions() as session:
            read_sources = readings.sources_read_by(session, self._reader.id)
        return [
            WorklistItem(i.key, i.title, i.source, i.task, "read" if i.source in read_sources else "new")
            for i in items
        ]

    def bundles(self, task: str) -> list[str]:
        """The task's own bundles first, then every other installed bundle (shipped and added): a
        researcher may run any model on any image (a model that cannot read it says why in one
        line). A bundle whose metadata no longer reads is left out and logged."""
        from engine.models.metadata import list_bundles, read_metadata

        tasks = {}
        for name in list_bundles():
            try:
                tasks[name] = read_metadata(name).get("task")
            except SalienceError as exc:
                log.warning("model %s not offered: %s", name, exc)
        own = [name for name, its_task in tasks.items() if its_task == task]
        return own + [name for name in tasks if name not in own]

    def add_bundle(self, path: str) -> str:
        """Check the bundle at ``path`` (a folder, its metadata.json or a .zip), add it to the data
        folder and return one line saying what was added and its CAM layer.

        Raises:
            engine.errors.BundleError: one line naming what is wrong; nothing added before changes.
        """
        from app import bundles

        added = bundles.add(path, folder=self._settings.bundles)
        with self._bundle_lock:
            self._bundles.pop(added["name"], None)
        return added["result"]

    def methods(self) -> list[str]:
        from engine.models.inference import method_names

        return method_names()

    def data_folder(self) -> str:
        """The demo data folder, where File > Open starts the first time."""
        return str(self._settings.demo_data)

    def diagnoses(self, task: str) -> list[str]:
        return list(vocabulary(task).diagnoses)

    def annotation_labels(self, task: str) -> list[str]:
        return list(vocabulary(task).annotation_labels)

    # -- opening -------------------------------------------------------------------------------

    def open_case(self, item: WorklistItem, progress: Progress) -> OpenedCase:
        return self._open(item.source, item.task, progress)

    def open_path(self, path: str, progress: Progress, series_uid: str | None = None) -> OpenedCase:
        return self._open(path, None, progress, series_uid)

    def _open(self, source: str, task: str | None, progress: Progress, series_uid: str | None = None) -> OpenedCase:
        volume = read_image(source, progress=ScaledProgress(progress, 0.0, 0.9), series_uid=series_uid)
        task = task or task_of(volume)
        with user_errors(), self._sessions.begin() as session:
            case_id = store_case(session, volume, str(source), task)
        progress.report(1.0, "opened")
        preferred = vocabulary(task).display_channel
        channel = preferred if preferred in volume.channel_names else volume.channel_names[0]
        return OpenedCase(case_id=case_id, volume=volume, display_channel=channel, task=task)

    # -- analysis ------------------------------------------------------------------------------

    def _bundle(self, name: str):
        from engine.models.bundle import load_bundle

        with self._bundle_lock:
            if name not in self._bundles:
                self._bundles[name] = load_bundle(name, device=self._device)
            return self._bundles[name]

    # -- device --------------------------------------------------------------------------------

    @property
    def device(self) -> str:
        return self._device

    @property
    def device_override(self) -> str:
        return f"{DEVICE_ENV}={self._settings.device}" if self._settings.device_from_env else ""

    def set_device(self, spec: str) -> None:
        """Run the next analysis on ``spec``. A change drops the loaded models (they load again
        on the new device) and the kept captures (a comparison then analyses the case again
        rather than mix tensors of two devices)."""
        if self.device_override:
            raise SalienceError(f"{self.device_override} is set: it decides where models run")
        spec = checked_device(spec)
        with self._bundle_lock:
            if spec == self._device:
                return
            self._device = spec
            self._bundles.clear()
        with self._cache_lock:
            self._analyses.clear()
        log.info("models run on %s from the next analysis", spec)

    def device_choices(self, progress: Progress) -> tuple[DeviceChoice, ...]:
        return device_choices(progress)

    def analyse(self, case: OpenedCase, bundle: str, method: str, progress: Progress) -> Analysis:
        """Analyse the case (``engine.analysis.analyse_case``) and store ONE Prediction with one
        Explanation per class; the analysis stays cached for ``compare`` and ``check_map``."""
        from engine.analysis import analyse_case

        model = self._bundle(bundle)
        progress.report(0.0, f"running {model.name} {model.version}")
        with engine_errors():
            result = analyse_case(case.volume, model, (method,), progress=ScaledProgress(progress, 0.0, 0.95),
                                  max_map_side=MAP_SIDE, uncertainty=UNCERTAINTY)
        if not len(result.probabilities):
            raise SalienceError(f"{case.volume.source}: nothing to classify ({'; '.join(result.notes) or 'no items'})")
        check_cancelled(progress)
        with user_errors(), self._sessions.begin() as session:
            prediction_id = store_prediction(session, result, case.case_id, str(model.device))
        shown = self._store_explanations(result, method, prediction_id, bundle, str(model.device))
        progress.report(1.0, "done")
        return shown

    def compare(self, case: OpenedCase, analysis: Analysis, method: str, progress: Progress) -> Analysis:
        """Add ``method``'s maps to the shown analysis: new Explanation rows on its Prediction, from
        the kept capture (no forward pass for a gradient-family method). An analysis no longer in
        memory is analysed again, its maps stored on the same Prediction row."""
        from engine.analysis import add_methods, analyse_case

        stored = self._stored.get(analysis.prediction_id)
        if stored is None:
            raise SalienceError(f"analysis {analysis.prediction_id} was not made in this session: analyse the case again")
        model = self._bundle(stored.bundle)
        with self._cache_lock:
            cached = self._analyses.get(analysis.prediction_id)
        with engine_errors():
            if cached is None:
                result = analyse_case(case.volume, model, (method,), progress=ScaledProgress(progress, 0.0, 0.95),
                                      max_map_side=MAP_SIDE)
            else:
                result = add_methods(cached, case.volume, model, (method,), progress=ScaledProgress(progress, 0.0, 0.95))
        check_cancelled(progress)
        shown = self._store_explanations(result, method, analysis.prediction_id, stored.bundle, str(model.device))
        progress.report(1.0, "done")
        return shown

    def _store_explanations(self, result: "CaseAnalysis", method: str, prediction_id: int, bundle: str,
                            device: str) -> Analysis:
        """Store ``method``'s map of every explained class against the Prediction row (once), keep
        the analysis in memory, and return what the window shows."""
        maps = result.maps[method]
        stored = self._stored.setdefault(prediction_id, _Stored(bundle))
        with user_errors(), self._sessions.begin() as session:
            if method not in stored.explanation_ids:
                stored.explanation_ids[method] = store_maps(session, self._blobs, result, method, prediction_id)
            study_ranges = tuple(
                runs.stored_map_range(session, weights_sha256=result.weights_sha256, method=method, class_index=k)
                for k in maps.classes
            )
            stored_uncertainty = None if result.uncertainty is not None else session.get(
                Prediction, prediction_id).uncertainty
        with self._cache_lock:
            self._analyses.pop(prediction_id, None)
            self._analyses[prediction_id] = result
            while len(self._analyses) > CACHED_ANALYSES:
                self._analyses.popitem(last=False)
        verdict = None
        if result.verdict is not None:
            verdict = Verdict(label=result.verdict.label,
                              probabilities=np.asarray(result.verdict.probabilities, dtype=np.float32),
                              key_items=maps.key_items, notes=result.verdict.details + result.notes,
                              class_index=result.verdict.class_index)
        return Analysis(
            bundle=f"{result.bundle_name} {result.bundle_version}",
            class_names=result.class_names,
            probabilities=np.asarray(result.item_probabilities, dtype=np.float32),
            method=method,
            maps=maps.maps,
            prediction_id=prediction_id,
            explanation_ids=stored.explanation_ids[method],
            verdict=verdict,
            probability_maps=result.probability_maps,
            study_ranges=study_ranges,
            uncertainty=uncertainty_view(result, stored_uncertainty),
            calibrated=result.calibrated,
            device=device,
        )

    def check_map(
        self, case: OpenedCase, bundle: str, analysis: Analysis, class_index: int, item: int, progress: Progress
    ) -> dict:
        """Measure one shown map (``engine.analysis.check_map``) and store the measures with its
        Explanation (a slide's against the tile measured)."""
        from engine.analysis import analyse_case, check_map

        if not 0 <= class_index < len(analysis.class_names) or not 0 <= item < analysis.maps.shape[1]:
            raise SalienceError(f"no map for class {class_index} on item {item} of this analysis")
        model = self._bundle(bundle)
        with self._cache_lock:
            result = self._analyses.get(analysis.prediction_id)
        start = 0.0
        with engine_errors():
            if result is None or analysis.method not in result.maps:  # no longer in memory: its map again
                result = analyse_case(case.volume, model, (analysis.method,), classes=[class_index],
                                      progress=ScaledProgress(progress, 0.0, 0.3), max_map_side=MAP_SIDE,
                                      keep_capture=False)
                start = 0.3
            measured = check_map(result, case.volume, model, analysis.method, class_index, item,
                                 progress=ScaledProgress(progress, start, 1.0))
        check_cancelled(progress)
        with user_errors(), self._sessions.begin() as session:
            runs.add_map_check(
                session, explanation_id=analysis.explanation_ids[class_index], item_index=measured.item,
                report=measured.report,
            )
        return measured.report

    # -- readings ------------------------------------------------------------------------------

    def save_reading(self, case: OpenedCase, draft: ReadingDraft) -> SavedReading:
        if not 1 <= draft.confidence <= 5:
            raise SalienceError(f"confidence must be 1 to 5, not {draft.confidence}")
        with user_errors(), self._sessions.begin() as session:
            row = readings.save_reading(
                session,
                reader_id=self._reader.id,
                case_id=case.case_id,
                diagnosis=draft.diagnosis,
                confidence=draft.confidence,
                comment=draft.comment,
                annotations=tuple(_as_stored(mark) for mark in draft.annotations),
                prediction_id=draft.prediction_id,
                seconds_on_case=draft.seconds_on_case,
            )
            return _saved(row)

    def my_readings(self, case: OpenedCase) -> list[SavedReading]:
        with self._sessions() as session:
            return [_saved(r) for r in readings.readings_for_reader(session, self._reader.id, case_id=case.case_id)]

    def reopen_reading(self, case: OpenedCase, reading_id: int, progress: Progress) -> tuple[SavedReading, Analysis | None]:
        """One of this reader's readings of ``case`` with the analysis it was made on, rebuilt from
        the stored prediction and maps (``app.stored_analysis``); kept so that "Compare with..."
        and "Check this map" work on it as on a fresh analysis."""
        progress.report(0.1, "reading the saved reading")
        with user_errors(), self._sessions() as session:
            mine = readings.readings_for_reader(session, self._reader.id, case_id=case.case_id)
            row = next((r for r in mine if r.id == reading_id), None)
            if row is None:
                raise SalienceError(f"reading {reading_id} is not one of your readings of this case")
            saved = _saved(row)
            if row.prediction_id is None:
                return saved, None
            prediction = next(p for p in runs.predictions_for_case(session, case.case_id) if p.id == row.prediction_id)
            progress.report(0.4, "loading the maps")
            shown = stored_analysis(prediction, self._blobs)
            if shown is None:
                return saved, None
            ranges = tuple(
                runs.stored_map_range(session, weights_sha256=prediction.model_run.weights_sha256,
                                      method=shown.method, class_index=k)
                for k in range(len(shown.class_names))
            )
            stored = self._stored.setdefault(prediction.id, _Stored(prediction.model_run.bundle_name))
            stored.explanation_ids.setdefault(shown.method, shown.explanation_ids)
        progress.report(1.0, "done")
        return saved, dataclasses.replace(shown, study_ranges=None if None in ranges else ranges)

    def method_cost(self, case: OpenedCase, bundle: str, method: str, progress: Progress) -> MethodCost:
        """Forward passes and time of ``method`` on ``case`` (``app.method_cost``)."""
        from app.method_cost import estimate_cost

        return estimate_cost(self._bundle(bundle), case.volume, method, progress)


@dataclass
class _Stored:
    """What this session stored of one analysis: the bundle it was made with and, per method, the
    Explanation ids of its maps (one per explained class, in class order)."""

    bundle: str
    explanation_ids: dict[str, tuple[int, ...]] = field(default_factory=dict)


def _as_stored(mark: AnnotationDraft) -> AnnotationDraft:
    """The mark as the database keeps it: an ellipse becomes its outline polygon."""
    if mark.kind != "ellipse":
        return mark
    return AnnotationDraft("polygon", mark.slice_index, ellipse_polygon(*mark.points), mark.label)


def _saved(row) -> SavedReading:
    return SavedReading(
        id=row.id,
        diagnosis=row.diagnosis,
        confidence=row.confidence,
        comment=row.comment or "",
        created_at=row.created_at.strftime("%Y-%m-%d %H:%M"),
        prediction_id=row.prediction_id,
        annotations=tuple(_mark(a) for a in row.annotations),
    )


def _mark(row) -> AnnotationDraft:
    """A stored annotation as the viewer draws it (a mask with its run-length encoding)."""
    if row.kind == "mask":
        return AnnotationDraft("mask", row.slice_index, (), row.label,
                               MaskRLE.from_json(row.geometry, f"annotation {row.id}"))
    return AnnotationDraft(row.kind, row.slice_index, tuple(tuple(p) for p in row.geometry["points"]), row.label)
