"""``FakeWorkstation``: the Workstation port over a tiny synthetic case, readings in memory."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from engine.errors import ImageReadError, SalienceError
from engine.imaging.volume import ImageVolume, plain_affine
from engine.progress import Progress, check_cancelled
from ui.backend import (
    Analysis, DeviceChoice, MethodCost, OpenedCase, ReaderInfo, ReadingDraft, SavedReading, Uncertainty, Verdict, WorklistItem,
)

SLICES, ROWS, COLS = 5, 32, 32
SQUARE = (slice(8, 16), slice(8, 16))  # the bright "lesion" on FLAIR
HOT = (slice(20, 28), slice(20, 28))  # where the "tumour" map peaks
COLD_NEGATIVE = (slice(2, 6), slice(24, 30))  # negative saliency, hidden by default
CLASS_NAMES = ("normal", "tumour")


def synthetic_volume() -> ImageVolume:
    """3 channels (t1, flair, t1ce) x 5 slices x 32 x 32: background 20, a bright square whose
    FLAIR value grows by 20 per slice (100, 120, ... 180), so every slice looks different."""
    array = np.full((3, SLICES, ROWS, COLS), 20.0, dtype=np.float32)
    for k in range(SLICES):
        array[1, k][SQUARE] = 100.0 + 20.0 * k
        array[0, k][SQUARE] = 60.0
        array[2, k][SQUARE] = 140.0
    return ImageVolume(array=array, spacing=(2.0, 1.0, 1.0), affine=plain_affine((2.0, 1.0, 1.0)),
                       modality="MR", kind="volume", source="/fake/CASE_A",
                       channel_names=("t1", "flair", "t1ce"))


def synthetic_maps() -> np.ndarray:
    """``(2, 5, 32, 32)`` maps: "tumour" is 1.0 on HOT at slice 2 (0.5 on other slices) and -1.0
    on COLD_NEGATIVE; "normal" is 0.25 everywhere on the square."""
    maps = np.zeros((2, SLICES, ROWS, COLS), dtype=np.float32)
    for k in range(SLICES):
        maps[1, k][HOT] = 1.0 if k == 2 else 0.5
        maps[1, k][COLD_NEGATIVE] = -1.0
        maps[0, k][SQUARE] = 0.25
    return maps


def synthetic_clip() -> ImageVolume:
    """A lung-ultrasound clip: one grey channel, 6 frames of 24 x 32 at 25 fps."""
    array = np.zeros((1, 6, 24, 32), dtype=np.float32)
    for k in range(6):
        array[0, k, 4 + k:10 + k, 8:20] = 200.0
    return ImageVolume(array=array, spacing=(1.0, 0.2, 0.2), affine=plain_affine((1.0, 0.2, 0.2)),
                       modality="US", kind="clip", source="/fake/clip.mp4", channel_names=("grey",),
                       frame_time_ms=40.0)


ULTRASOUND_ITEM = WorklistItem("/fake/clip.mp4", "clip.mp4", "/fake/clip.mp4", "lung-ultrasound", "new")

PROBABILITIES = np.array([[0.9, 0.1], [0.7, 0.3], [0.05, 0.95], [0.6, 0.4], [0.8, 0.2]])


@dataclass
class FakeWorkstation:
    """Implements ``ui.backend.Workstation``; knobs make it fail or wait for tests."""

    open_error: Exception | None = None
    analyse_error: Exception | None = None
    save_error: Exception | None = None
    check_error: Exception | None = None
    analyse_gate: threading.Event | None = None  # analyse waits here (checking cancel) if set
    readings: list[tuple[OpenedCase, ReadingDraft]] = field(default_factory=list)
    saved: list[SavedReading] = field(default_factory=list)
    analyse_calls: list[tuple[str, str]] = field(default_factory=list)
    compare_calls: list[tuple[int, str, str]] = field(default_factory=list)  # (prediction id, first, added)
    check_calls: list[tuple[str, str, int, int]] = field(default_factory=list)
    installed_bundles: tuple[str, ...] = ("glioma 1.0.0",)
    cam_methods: tuple[str, ...] = ("gradcam", "gradcam++")
    method_maps: dict[str, np.ndarray] = field(default_factory=dict)  # maps per method, else synthetic_maps()
    verdict: Verdict | None = None  # the pooled answer analyse returns (as for a clip or a slide)
    probability_maps: np.ndarray | None = None  # tile probabilities analyse returns (as for a slide)
    study_ranges: tuple | None = None  # per class (low, high) of the stored maps of every case
    uncertainty: Uncertainty | None = None  # what analyse says of its answers' uncertainty
    added_models: list[str] = field(default_factory=list)  # paths given to add_bundle
    extra_items: list[WorklistItem] = field(default_factory=list)  # e.g. ULTRASOUND_ITEM
    analyses: dict[int, Analysis] = field(default_factory=dict)  # prediction id -> analysis, as stored
    cost_calls: list[tuple[str, str]] = field(default_factory=list)
    seconds_per_pass: float = 0.05  # what method_cost's timed batch "measured"
    data_root: str = "/fake/data"
    checks: list[tuple[int, int, dict]] = field(default_factory=list)  # (class, item, report) as stored
    device: str = "auto"  # where the next analysis runs (set_device)
    device_override: str = ""  # "SALIENCE_DEVICE=..." when the environment decides
    device_calls: list[str] = field(default_factory=list)  # specs given to set_device

    @property
    def reader(self) -> ReaderInfo:
        return ReaderInfo(id=1, name="Dr Test", role="reader")

    def worklist(self) -> list[WorklistItem]:
        status = "read" if self.saved else "new"
        return [WorklistItem("/fake/CASE_A", "CASE_A", "/fake/CASE_A", "glioma", status),
                WorklistItem("/fake/CASE_B", "CASE_B", "/fake/CASE_B", "glioma", "new")] + self.extra_items

    def bundles(self, task: str) -> list[str]:
        """As the real one: the task's own bundles first, then every other installed bundle."""
        own = [name for name in self.installed_bundles if name.startswith(task)]
        return own + [name for name in self.installed_bundles if name not in own]

    def methods(self) -> list[str]:
        return list(self.cam_methods)

    def add_bundle(self, path: str) -> str:
        """Adds ``<path's name> 1.0.0`` for the glioma task; a path with "bad" in it is refused."""
        self.added_models.append(path)
        if "bad" in path:
            raise SalienceError(f"bundle {path}: configs/metadata.json lacks 'task'")
        name = f"glioma-{path.rsplit('/', 1)[-1]} 1.0.0"
        self.installed_bundles = self.installed_bundles + (name,)
        return f"Added {name} (glioma; CAM layer layer4 (found: the last spatial layer before global pooling))"

    def diagnoses(self, task: str) -> list[str]:
        return ["no tumour", "low-grade glioma", "high-grade glioma"]

    def annotation_labels(self, task: str) -> list[str]:
        return ["lesion", "oedema"]

    def open_case(self, item: WorklistItem, progress: Progress) -> OpenedCase:
        progress.report(0.5, "reading")
        if self.open_error is not None:
            raise self.open_error
        if item.task == "lung-ultrasound":
            return OpenedCase(case_id=3, volume=synthetic_clip(), display_channel="grey", task=item.task)
        return OpenedCase(case_id=1, volume=synthetic_volume(), display_channel="flair")

    def open_path(self, path: str, progress: Progress, series_uid: str | None = None) -> OpenedCase:
        """Folders are read for real (DICOM series); files are refused."""
        from pathlib import Path

        from engine.imaging import read_image

        if not Path(path).is_dir():
            raise ImageReadError(path, "not a NIfTI, DICOM or image file")
        volume = read_image(path, progress, series_uid=series_uid)
        return OpenedCase(case_id=99, volume=volume, display_channel=volume.channel_names[0], task="ct")

    def analyse(self, case: OpenedCase, bundle: str, method: str, progress: Progress) -> Analysis:
        self.analyse_calls.append((bundle, method))
        for k in range(SLICES):
            check_cancelled(progress)
            if self.analyse_gate is not None:
                while not self.analyse_gate.wait(0.01):
                    check_cancelled(progress)
            progress.report((k + 1) / SLICES, f"slice {k + 1} of {SLICES}")
        if self.analyse_error is not None:
            raise self.analyse_error
        analysis = Analysis(bundle=bundle, class_names=CLASS_NAMES, probabilities=PROBABILITIES.copy(),
                            method=method, maps=self.method_maps.get(method, synthetic_maps()).copy(),
                            prediction_id=7,
                            explanation_ids=(11, 12), verdict=self.verdict,
                            probability_maps=self.probability_maps, study_ranges=self.study_ranges,
                            uncertainty=self.uncertainty, calibrated=True,
                            device="cpu" if self.device == "auto" else self.device)
        self.analyses[analysis.prediction_id] = analysis
        return analysis

    def compare(self, case: OpenedCase, analysis: Analysis, method: str, progress: Progress) -> Analysis:
        """The same prediction explained by ``method`` too: its maps, new explanation ids."""
        self.compare_calls.append((analysis.prediction_id, analysis.method, method))
        progress.report(0.5, "computing maps")
        check_cancelled(progress)
        if self.analyse_error is not None:
            raise self.analyse_error
        return Analysis(bundle=analysis.bundle, class_names=analysis.class_names,
                        probabilities=analysis.probabilities, method=method,
                        maps=self.method_maps.get(method, synthetic_maps()).copy(),
                        prediction_id=analysis.prediction_id,
                        explanation_ids=tuple(i + 100 for i in analysis.explanation_ids),
                        verdict=analysis.verdict, probability_maps=analysis.probability_maps,
                        study_ranges=self.study_ranges)

    def set_device(self, spec: str) -> None:
        """As the real one: refused while the environment decides, or for a name that is no device."""
        self.device_calls.append(spec)
        if self.device_override:
            raise SalienceError(f"{self.device_override} is set: it decides where models run")
        if spec not in ("auto", "cpu", "cuda", "cuda:0"):
            raise SalienceError(f"device {spec!r}: expected auto, cpu, cuda or cuda:N")
        self.device = spec

    def device_choices(self, progress: Progress) -> tuple[DeviceChoice, ...]:
        """This machine as a CPU build of torch sees it: Auto and CPU, CUDA disabled."""
        return (DeviceChoice("auto", "Auto (cpu)"), DeviceChoice("cpu", "CPU"),
                DeviceChoice("cuda", "CUDA", available=False, reason="torch sees no CUDA device"))

    def check_map(self, case: OpenedCase, bundle: str, analysis: Analysis, class_index: int, item: int,
                  progress: Progress) -> dict:
        """A report shaped like ``quality_report``'s whose figures say what was measured."""
        self.check_calls.append((bundle, analysis.method, class_index, item))
        progress.report(0.5, "sanity check")
        if self.check_error is not None:
            raise self.check_error
        trustworthy = item != 0
        report = {
            "item": item, "class": analysis.class_names[class_index], "method": analysis.method,
            "deletion": {"auc": 0.1 + 0.01 * item}, "insertion": {"auc": 0.8},
            "confidence": {"average_drop": 12.5, "increase_in_confidence": 0.0},
            "pointing_game": {"hit": True}, "energy_inside_mask": {"fraction": 0.4},
            "mask_area_fraction": 0.05,
            "sanity": {"trustworthy": trustworthy, "threshold": 0.5, "decided_on": "region",
                       "reason": "the map changes" if trustworthy else "the map stays similar",
                       "steps": [{"layers": ["fc"], "spearman": 0.7, "ssim": 0.5,
                                  "spearman_in_region": 0.1 if trustworthy else 0.9}]},
        }
        self.checks.append((class_index, item, report))
        return report

    def save_reading(self, case: OpenedCase, draft: ReadingDraft) -> SavedReading:
        if self.save_error is not None:
            raise self.save_error
        self.readings.append((case, draft))
        saved = SavedReading(id=len(self.saved) + 1, diagnosis=draft.diagnosis,
                             confidence=draft.confidence, comment=draft.comment,
                             created_at=f"2024-05-0{len(self.saved) + 1} 10:00",
                             annotations=draft.annotations, prediction_id=draft.prediction_id)
        self.saved.insert(0, saved)
        return saved

    def my_readings(self, case: OpenedCase) -> list[SavedReading]:
        return list(self.saved)

    def reopen_reading(self, case: OpenedCase, reading_id: int, progress: Progress):
        """The saved reading and the analysis stored under its prediction id (as made)."""
        progress.report(0.5, "loading maps")
        reading = next((r for r in self.saved if r.id == reading_id), None)
        if reading is None:
            from engine.errors import SalienceError

            raise SalienceError(f"reading {reading_id} is not one of yours")
        import dataclasses

        analysis = self.analyses.get(reading.prediction_id) if reading.prediction_id else None
        return reading, analysis and dataclasses.replace(analysis, map_checks=tuple(self.checks))

    def method_cost(self, case: OpenedCase, bundle: str, method: str, progress: Progress) -> MethodCost:
        """Score-CAM: one pass per channel (say 64) per slice; occlusion: 49 windows per slice."""
        self.cost_calls.append((bundle, method))
        passes = SLICES * (64 if method == "scorecam" else 49)
        return MethodCost(method, passes, passes * self.seconds_per_pass)

    def data_folder(self) -> str:
        return self.data_root

    def my_studies(self) -> list:
        """A reader in no study: the window stays the free-review workstation."""
        return []
