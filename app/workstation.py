"""``SalienceWorkstation``: the ``ui.backend.Workstation`` port implemented over engine and db.

This is where engine results enter the database: one session scope per user action
(``with self._sessions.begin() as session:``), maps stored as content-addressed .npy files whose
path and hash the Explanation rows keep.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app.settings import Settings
from app.tasks import vocabulary
from db import blobs, cases, readers, readings, runs
from db.errors import DbError
from engine.errors import SalienceError
from engine.explain.summary import map_summary
from engine.imaging import ImageVolume, read_image
from engine.imaging.open import CLIP_SUFFIXES, PATCH_SUFFIXES
from engine.progress import Progress, ScaledProgress, check_cancelled
from ui.backend import (
    Analysis,
    AnnotationDraft,
    OpenedCase,
    ReaderInfo,
    ReadingDraft,
    SavedReading,
    Verdict,
    WorklistItem,
)

log = logging.getLogger(__name__)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the database's refusals into the one-line errors the window shows."""
    try:
        yield
    except (DbError, PermissionError) as exc:
        raise SalienceError(str(exc)) from exc


def demo_worklist(demo_data: Path) -> list[WorklistItem]:
    """The demo cases of every task found under ``demo_data`` (``../shared/data``).

    Glioma: one row per patient folder. Lung ultrasound: every clip and still frame. Histopathology:
    the shipped model's held-out test patches (at most ``PATCHES_PER_CLASS`` per class), so the
    demo never shows the model the images it learned from.
    """
    return _glioma_cases(demo_data) + _ultrasound_cases(demo_data) + _histopathology_cases(demo_data)


#: Histopathology patches per class in the demo worklist.
PATCHES_PER_CLASS = 15


def _glioma_cases(demo_data: Path) -> list[WorklistItem]:
    root = demo_data / "glioma-lgg"
    if not root.is_dir():
        return []
    return [
        WorklistItem(key=str(folder), title=folder.name, source=str(folder), task="glioma")
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
    ]


def _ultrasound_cases(demo_data: Path) -> list[WorklistItem]:
    root = demo_data / "lung-ultrasound"
    if not root.is_dir():
        return []
    items = []
    for folder, suffixes, what in (("pocus_videos", CLIP_SUFFIXES, ""), ("pocus_images", PATCH_SUFFIXES, " still")):
        files = sorted(p for p in (root / folder).rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        for path in files:
            probe = path.parent.name if path.parent.name in ("convex", "linear") else "probe unknown"
            items.append(WorklistItem(key=str(path), title=f"{path.name} ({probe}{what})", source=str(path),
                                      task="lung-ultrasound"))
    return items


def _histopathology_cases(demo_data: Path) -> list[WorklistItem]:
    root = demo_data / "histopathology-lc25000"
    if not root.is_dir():
        return []
    try:
        from engine.models.metadata import read_metadata

        held_out = set(read_metadata("histopathology").get("split", {}).get("test", []))
    except SalienceError:
        held_out = set()
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PATCH_SUFFIXES)
        chosen = [n for n in names if n in held_out] if held_out else names
        for name in chosen[:PATCHES_PER_CLASS]:
            path = folder / name
            items.append(WorklistItem(key=str(path), title=name, source=str(path), task="histopathology"))
    return items


def task_of(volume: ImageVolume) -> str:
    """Which task reads this image, from what it is (used for files opened outside the worklist).

    Ultrasound reads as lung ultrasound, slide microscopy as histopathology, MR as glioma;
    anything else (a CT, a grey picture of unknown modality) gets the generic "image" task, whose
    reading form asks a neutral question.
    """
    return {"US": "lung-ultrasound", "SM": "histopathology", "MR": "glioma"}.get(volume.modality, "image")


class SalienceWorkstation:
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
        self._bundles: dict[str, object] = {}
        self._bundle_lock = threading.Lock()
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
        """The task's own bundles first, then every other installed bundle: a researcher may run
        any model on any image (a model that cannot read it says why in one line)."""
        from engine.models.metadata import list_bundles, read_metadata

        names = list_bundles()
        own = [name for name in names if read_metadata(name).get("task") == task]
        return own + [name for name in names if name not in own]

    def methods(self) -> list[str]:
        from engine.models.inference import method_names

        return method_names()

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
            case = cases.get_or_create_case(
                session,
                content_hash=volume.content_hash,
                source=str(source),
                modality=volume.modality,
                kind=volume.kind,
                shape=list(volume.array.shape),
                task=task,
                header=volume.header,
            )
            case_id = case.id
        progress.report(1.0, "opened")
        preferred = vocabulary(task).display_channel
        channel = preferred if preferred in volume.channel_names else volume.channel_names[0]
        return OpenedCase(case_id=case_id, volume=volume, display_channel=channel, task=task)

    # -- analysis ------------------------------------------------------------------------------

    def _bundle(self, name: str):
        from engine.models.bundle import load_bundle

        with self._bundle_lock:
            if name not in self._bundles:
                self._bundles[name] = load_bundle(name)
            return self._bundles[name]

    def analyse(self, case: OpenedCase, bundle: str, method: str, progress: Progress) -> Analysis:
        model = self._bundle(bundle)
        progress.report(0.0, f"running {model.name} {model.version}")
        run = self._run_model(case, model, method, progress)
        check_cancelled(progress)
        class_names = tuple(model.class_names)
        stored = [self._blobs.put(_npy_bytes(run.maps[k]), ".npy") for k in range(len(class_names))]
        with user_errors(), self._sessions.begin() as session:
            model_run = runs.get_or_create_model_run(
                session, bundle_name=model.name, version=model.version, weights_sha256=model.weights_sha256, device="cpu"
            )
            row = runs.add_prediction(
                session,
                case_id=case.case_id,
                model_run_id=model_run.id,
                probabilities=run.stored_probabilities.tolist(),
                class_names=list(class_names),
                item_axis=run.item_axis,
                calibrated=model.calibrated,
            )
            explanation_ids = []
            for k, (path, sha) in enumerate(stored):
                explanation = runs.add_explanation(
                    session,
                    prediction_id=row.id,
                    method=method,
                    target_layer=model.target_layer,
                    class_index=k,
                    params=run.params,
                    map_path=path,
                    map_sha256=sha,
                    map_stats=map_summary(run.maps[k]).to_dict(),
                )
                explanation_ids.append(explanation.id)
            prediction_id = row.id
            study_ranges = tuple(
                runs.stored_map_range(session, weights_sha256=model.weights_sha256, method=method, class_index=k)
                for k in range(len(class_names))
            )
        progress.report(1.0, "done")
        return Analysis(
            bundle=f"{model.name} {model.version}",
            class_names=class_names,
            probabilities=run.probabilities,
            method=method,
            maps=run.maps,
            prediction_id=prediction_id,
            explanation_ids=tuple(explanation_ids),
            verdict=run.verdict,
            probability_maps=run.probability_maps,
            study_ranges=study_ranges,
        )

    def _run_model(self, case: OpenedCase, model, method: str, progress: Progress) -> "_ModelRun":
        """Predict and explain the case the way its kind needs: item by item, or a slide by tiles."""
        if case.volume.kind == "slide":
            return _run_on_slide(case, model, method, progress)
        if case.volume.kind == "clip":
            return _run_on_clip(case, model, method, progress)
        prediction = model.predict(case.volume, progress=ScaledProgress(progress, 0.0, 0.4))
        check_cancelled(progress)
        maps = np.asarray(
            model.explain(case.volume, method=method, classes=None, progress=ScaledProgress(progress, 0.4, 0.9)),
            dtype=np.float32,
        )
        probabilities = np.asarray(prediction.probabilities, dtype=np.float32)
        return _ModelRun(
            probabilities=probabilities,
            stored_probabilities=probabilities,
            item_axis=prediction.item_axis,
            maps=maps,
            params={"reduction": f"per {prediction.item_axis}", "upsampling": "bilinear"},
        )

    def check_map(
        self, case: OpenedCase, bundle: str, analysis: Analysis, class_index: int, item: int, progress: Progress
    ) -> dict:
        from engine.analysis.quality import quality_report

        if not 0 <= class_index < len(analysis.class_names) or not 0 <= item < analysis.maps.shape[1]:
            raise SalienceError(f"no map for class {class_index} on item {item} of this analysis")
        model = self._bundle(bundle)
        if case.volume.kind == "slide":  # a stitched map: measure the tile most likely to show the class
            report, item = _check_slide_tile(case, model, analysis.method, class_index, progress)
        else:
            cam = on_image_grid(analysis.maps[class_index, item], case.volume.shape[1:])
            report = quality_report(
                model, case.volume, cam, method=analysis.method, class_index=class_index, item=item, progress=progress
            )
        check_cancelled(progress)
        with user_errors(), self._sessions.begin() as session:
            runs.add_map_check(
                session, explanation_id=analysis.explanation_ids[class_index], item_index=item, report=report
            )
        return report

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
                annotations=draft.annotations,
                prediction_id=draft.prediction_id,
                seconds_on_case=draft.seconds_on_case,
            )
            return _saved(row)

    def my_readings(self, case: OpenedCase) -> list[SavedReading]:
        with self._sessions() as session:
            return [_saved(r) for r in readings.readings_for_reader(session, self._reader.id, case_id=case.case_id)]


@dataclass(frozen=True)
class _ModelRun:
    """What one model run on a case produced, before it is stored.

    ``probabilities`` are per item of the opened volume (what the viewer plots);
    ``stored_probabilities`` are the rows the Prediction keeps (a slide's tiles).
    """

    probabilities: np.ndarray
    stored_probabilities: np.ndarray
    item_axis: str
    maps: np.ndarray
    params: dict
    verdict: Verdict | None = None
    probability_maps: np.ndarray | None = None


def _run_on_slide(case: OpenedCase, model, method: str, progress: Progress) -> _ModelRun:
    """Tiles over the slide's tissue at the model's magnification; maps stitched on the thumbnail."""
    from engine.analysis.slide import analyse_slide

    slide = analyse_slide(model, case.volume.source, method=method, grid_shape=case.volume.shape[1:], progress=progress)
    if not slide.tiles:
        raise SalienceError(f"{case.volume.source}: no tissue found to classify (every tile is glass)")
    scores = np.asarray(slide.slide_scores, dtype=np.float32)
    verdict = Verdict(
        label=f"Slide score: mean of {len(slide.tiles)} tissue tiles",
        probabilities=scores,
        notes=tuple(slide.notes),
    )
    return _ModelRun(
        probabilities=scores[None, :],
        stored_probabilities=np.asarray(slide.tile_probabilities, dtype=np.float32),
        item_axis="tile",
        maps=np.asarray(slide.maps, dtype=np.float32)[:, None],
        params={"tiles": len(slide.tiles), "level": slide.level, "tile_mpp": slide.tile_mpp,
                "tile_size_level0": slide.tile_size0, "stitching": "mean where tiles overlap, NaN off tissue"},
        verdict=verdict,
        probability_maps=np.asarray(slide.probability_maps, dtype=np.float32)[:, None],
    )


def _check_slide_tile(case: OpenedCase, model, method: str, class_index: int, progress: Progress) -> tuple[dict, int]:
    """Quality of a slide's map where it matters most: on the tissue tile the model finds likeliest
    to show the class, with that tile's own map. Returns the report and the tile's index (the
    row of the stored prediction)."""
    from engine.imaging.slide import SlideReader, rgb_volume
    from engine.imaging.tissue import read_tile
    from engine.analysis.quality import quality_report
    from engine.analysis.slide import analyse_slide

    slide = analyse_slide(model, case.volume.source, method=method, classes=[class_index],
                          grid_shape=case.volume.shape[1:], progress=ScaledProgress(progress, 0.0, 0.3))
    if not slide.tiles:
        raise SalienceError(f"{case.volume.source}: no tissue tile to measure")
    best = int(np.argmax(slide.tile_probabilities[:, class_index]))
    with SlideReader(case.volume.source) as reader:
        rgb = read_tile(reader, slide.tiles[best])
    top = slide.top_tiles(class_index, 1)[0]
    tile = rgb_volume(f"{case.volume.source} (tile at row {top['row0']}, col {top['col0']})", rgb)
    cam = on_image_grid(slide.tile_maps[0, best], rgb.shape[:2])
    report = quality_report(model, tile, cam, method=method, class_index=class_index, item=0,
                            progress=ScaledProgress(progress, 0.3, 1.0))
    report["tile"] = top
    return report, best


#: Longest side of a clip's stored maps: a 300-frame clip's maps for 3 classes at 256 px take
#: 240 MB in float32; at the frame's own size they could take gigabytes. The viewer stretches them.
CLIP_MAP_SIDE = 256


def _run_on_clip(case: OpenedCase, model, method: str, progress: Progress) -> _ModelRun:
    """Every frame classified and explained; the clip verdict is the mean frame probability."""
    from engine.analysis.clip import analyse_clip

    clip = analyse_clip(model, case.volume, method=method, progress=progress, max_map_side=CLIP_MAP_SIDE)
    probabilities = np.asarray(clip.prediction.probabilities, dtype=np.float32)
    notes = []
    if clip.crop_box is not None:
        notes.append("The model sees the scan region only; the map is zero outside it.")
    verdict = Verdict(
        label=f"Clip verdict: mean of {case.volume.n_slices} frames",
        probabilities=np.asarray(clip.verdict, dtype=np.float32),
        key_items={k: tuple(explanation.key_frames) for k, explanation in clip.key_frames.items()},
        notes=tuple(notes),
    )
    return _ModelRun(
        probabilities=probabilities,
        stored_probabilities=probabilities,
        item_axis="frame",
        maps=np.asarray(clip.maps, dtype=np.float32),
        params={"reduction": "per frame", "map_grid": list(clip.maps.shape[2:]),
                "crop_box": None if clip.crop_box is None else {
                    "top": clip.crop_box.top, "left": clip.crop_box.left,
                    "height": clip.crop_box.height, "width": clip.crop_box.width},
                "key_frames": {str(k): list(v) for k, v in verdict.key_items.items()}},
        verdict=verdict,
    )


def on_image_grid(cam: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A map kept on a coarser grid over the image (clips), resampled onto the image's pixels."""
    if cam.shape == tuple(shape):
        return cam
    import torch

    from engine.explain import upsample

    return upsample(torch.as_tensor(cam, dtype=torch.float32)[None], tuple(shape))[0].numpy()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def load_map(blob_store: blobs.BlobStore, path: str, sha256: str) -> np.ndarray:
    """Read a stored map back, verifying its hash (never unpickling)."""
    return np.load(io.BytesIO(blob_store.get(path, sha256)), allow_pickle=False)


def _saved(row) -> SavedReading:
    return SavedReading(
        id=row.id,
        diagnosis=row.diagnosis,
        confidence=row.confidence,
        comment=row.comment or "",
        created_at=row.created_at.isoformat(timespec="seconds"),
        annotations=tuple(
            AnnotationDraft(
                kind=a.kind,
                slice_index=a.slice_index,
                points=tuple(tuple(p) for p in a.geometry["points"]),
                label=a.label,
            )
            for a in row.annotations
        ),
    )
