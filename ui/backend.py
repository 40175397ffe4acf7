"""The port between the window and the rest of the program.

``ui`` imports ``engine`` and ``db`` types but never decides how results are stored: ``app``
implements ``Workstation`` (engine for images, models and CAMs; db for cases, runs and
readings) and hands it to the main window. Tests pass their own implementation.

Every method may be slow and is called from a worker thread, never the GUI thread, except the
ones marked fast. Methods raise ``engine.errors.SalienceError`` (or a subclass) for bad input,
with a one-line message naming the file and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from db.accounts import Account
from db.studies import StudySummary
from db.study_reader import ReaderCase, ReaderStudy, Worklist
from db.study_reading import SavedAnswer
from engine.imaging.mask_rle import MaskRLE
from engine.imaging.volume import ImageVolume
from engine.progress import Progress


@dataclass(frozen=True)
class WorklistItem:
    """One row of the worklist: a case a reader can open."""

    key: str  # stable id: the source path for demo cases, or "case:<id>" for stored ones
    title: str
    source: str
    task: str = "glioma"  # which bundle family reads it
    status: Literal["new", "read"] = "new"


@dataclass(frozen=True)
class ReaderInfo:
    id: int
    name: str
    role: str


@dataclass(frozen=True)
class OpenedCase:
    case_id: int  # database id of the Case (created on first open)
    volume: ImageVolume
    display_channel: str  # the channel shown by default ("flair" for glioma)
    task: str = "glioma"  # which bundles, diagnoses and labels apply (as WorklistItem.task)


@dataclass(frozen=True)
class Verdict:
    """One answer for the whole case, pooled from its items (a clip's frames, a slide's tiles).

    Attributes:
        label: what was pooled and how, e.g. "Clip verdict: mean of 120 frames".
        probabilities: ``(K,)`` pooled class probabilities.
        key_items: per class index, the items (frames) that matter most, most important first.
        notes: assumptions a reviewer should know (e.g. an assumed magnification).
        class_index: the verdict's class when its rule names it, and then ``label`` says the
            answer in words (a slide: "Slide: Adenocarcinoma in 10 of 48 tissue tiles (21%)",
            ``probabilities`` the tile shares); None: the most probable pooled class.
    """

    label: str
    probabilities: np.ndarray
    key_items: dict[int, tuple[int, ...]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    class_index: int | None = None

    @property
    def winner(self) -> int:
        """The verdict's class: ``class_index``, else the most probable pooled class."""
        return int(np.argmax(self.probabilities)) if self.class_index is None else int(self.class_index)


@dataclass(frozen=True)
class Uncertainty:
    """How much the model's answers move when it is asked again (Monte Carlo dropout or test-time
    augmentation; ``engine.analysis.uncertainty``), in numbers and in words.

    Attributes:
        label: how it was estimated, e.g. "test-time augmentation, 16 samples".
        words: the case's answer judged by the stated rule, e.g. "Uncertain: the top two classes
            are within 0.15 (...)" or "Not flagged as uncertain: ...".
        uncertain: whether the case's answer is flagged.
        case_answer: which answer was judged: "verdict" (a clip's or slide's) or "item N".
        case: the case answer's ``total_entropy``, ``aleatoric_entropy``,
            ``epistemic_mutual_information`` (nats) and ``top_class_std``.
        item_words: per item (row of ``Analysis.probabilities``), its judgement in words.
        item_uncertain: ``(N,)`` bool, per item whether it is flagged.
        total, aleatoric, epistemic, top_std: ``(N,)`` per item, as in ``case``.
        rule: the rule that decides "uncertain", in words.
    """

    label: str
    words: str
    uncertain: bool
    case_answer: str
    case: dict[str, float]
    item_words: tuple[str, ...]
    item_uncertain: np.ndarray
    total: np.ndarray
    aleatoric: np.ndarray
    epistemic: np.ndarray
    top_std: np.ndarray
    rule: str = ""


@dataclass(frozen=True)
class Analysis:
    """A model's output on an opened case, aligned with the volume's grid.

    Attributes:
        bundle: bundle name and version, e.g. "glioma 1.0.0".
        class_names: the model's classes, in output order.
        probabilities: ``(N, K)`` per-slice (or per-frame) class probabilities.
        method: CAM method name, e.g. "gradcam".
        maps: ``(K, N, h, w)`` raw signed maps, one per class, on the volume grid or on a coarser
            grid over the same field of view (long clips).
        prediction_id: database id of the stored Prediction (shared by the analyses of a comparison).
        explanation_ids: database ids of this method's stored Explanations, one per class.
        verdict: the pooled whole-case answer of a clip or a slide; None for per-slice tasks.
        probability_maps: ``(K, N, h, w)`` each pixel's tile probability (a slide: NaN off
            tissue), shown instead of the CAM on request; None where there are no tiles.
        study_ranges: per class, the ``(low, high)`` raw values of every stored map of this
            model's weights and method across all cases (this one included): the range that puts
            a study's maps on one colour scale. None when not known.
        uncertainty: how sure the model is of each item and of the case, in numbers and words;
            None when it was not estimated.
        calibrated: whether the probabilities were temperature-scaled on held-out data (so a
            70% means about 70% of such cases); None when not known.
        map_checks: quality reports already made of this method's maps, as ``(class index,
            item, report)`` (a reopened reading shows the checks its reader saw).
        device: where the model ran ("cpu", "cuda:0"); "" when not known.
    """

    bundle: str
    class_names: tuple[str, ...]
    probabilities: np.ndarray
    method: str
    maps: np.ndarray
    prediction_id: int
    explanation_ids: tuple[int, ...]
    verdict: Verdict | None = None
    probability_maps: np.ndarray | None = None
    study_ranges: tuple[tuple[float, float], ...] | None = None
    uncertainty: Uncertainty | None = None
    calibrated: bool | None = None
    map_checks: tuple[tuple[int, int, dict], ...] = ()
    device: str = ""


@dataclass(frozen=True)
class DeviceChoice:
    """One place a model can run, as the Device menu offers it.

    Attributes:
        spec: what ``Workstation.set_device`` takes: "auto", "cpu" or "cuda:N".
        label: how the menu names it, e.g. "Auto (cpu)", "CUDA 0: NVIDIA H200".
        available: False for a device this machine lacks (shown disabled).
        reason: why it is not available ("" when it is).
    """

    spec: str
    label: str
    available: bool = True
    reason: str = ""


@dataclass(frozen=True)
class MethodCost:
    """What a CAM method will cost on the open case, said before it starts.

    Attributes:
        method: the method's identifier.
        forward_passes: model forward passes it needs over the case (one per mask or window per
            item for a perturbation method; one per batch for a gradient method).
        seconds: the estimated run time on this machine, from a timed forward batch.
    """

    method: str
    forward_passes: int
    seconds: float


@dataclass(frozen=True)
class AnnotationDraft:
    """A mark the reader drew, in image coordinates (slice, row, col) of the volume.

    ``points`` are ``(row, col)`` pairs in voxel indices of the shown volume (pixel ``i`` covers
    ``[i - 0.5, i + 0.5]``): one for a point, two opposite corners for a box or for the box an
    ellipse is inscribed in, three or more vertices for a polygon, none for a mask. A ``"mask"``
    is the pixels of one label painted on one slice, kept in ``mask`` (run-length encoded on the
    slice's ``(rows, cols)``). The database keeps points, boxes, polygons and masks: an ellipse
    is stored as its outline polygon (``ui.model.geometry.ellipse_polygon``).
    """

    kind: Literal["point", "box", "ellipse", "polygon", "mask"]
    slice_index: int
    points: tuple[tuple[float, float], ...]
    label: str
    mask: MaskRLE | None = None


@dataclass(frozen=True)
class ReadingDraft:
    diagnosis: str
    confidence: int  # 1-5
    comment: str = ""
    annotations: tuple[AnnotationDraft, ...] = ()
    seconds_on_case: float = 0.0
    prediction_id: int | None = None  # the model output the reader saw, if any


@dataclass(frozen=True)
class SavedReading:
    id: int
    diagnosis: str
    confidence: int
    comment: str
    created_at: str
    annotations: tuple[AnnotationDraft, ...] = field(default_factory=tuple)
    prediction_id: int | None = None  # the model output shown when it was made, if any


# -- reader studies -----------------------------------------------------------------------------
# The reader's side of a study comes from ``db.study_reader`` (frozen values, blinded by the data
# layer); the window adds nothing a reader may not see. The image arrives as pixels only.


@dataclass(frozen=True)
class StudyAi:
    """The frozen AI output one study reading shows, ready to draw.

    Attributes:
        class_names: the model's classes.
        predicted_class: the case-level answer frozen when the study was created.
        case_probabilities: ``(K,)`` case-level probabilities, made as ``case_rule`` says.
        case_rule: e.g. "mean over 40 frames" (a clip's verdict) or "highest over 20 slices".
        probabilities: ``(N, K)`` per-item probabilities.
        item_axis: what an item is ("frame", "slice", ...).
        map: the arm's map as a one-class ``Analysis`` (its ``method`` names the CAM method), or
            None in an arm that shows the prediction only.
        pairwise: per pairwise question id, the ``(left, right)`` maps as one-class analyses named
            "Map A" and "Map B", in the random order recorded for this reading; which method is
            which is not said.
        uncertainty: how sure the model was of its answers, frozen with them; None when it was
            not measured or the arm hides it.
        uncertainty_hidden: the study's arm hides the uncertainty (``show_uncertainty: false``):
            the panel says nothing of it.
    """

    class_names: tuple[str, ...]
    predicted_class: str
    case_probabilities: np.ndarray
    case_rule: str
    probabilities: np.ndarray
    item_axis: str
    map: Analysis | None = None
    pairwise: dict[int, tuple[Analysis, Analysis]] = field(default_factory=dict)
    uncertainty: Uncertainty | None = None
    uncertainty_hidden: bool = False


@dataclass(frozen=True)
class StudyCaseView:
    """One opened study reading: the form (``db.study_reader.ReaderCase``) and the AI it may show."""

    form: ReaderCase
    ai: StudyAi | None


@dataclass(frozen=True)
class OpenedStudyCase:
    """A study case opened for its reader.

    Attributes:
        view: the form and the AI output.
        volume: the pixels, de-identified by the app: ``source`` is the pseudonym, the header
            keeps only technical fields, no label layer (it could be the reference answer).
        display_channel: the channel shown first.
        task: the case's task (labels for marks).
    """

    view: StudyCaseView
    volume: ImageVolume
    display_channel: str
    task: str


class StudyWorkstation(Protocol):
    """What the window asks of a study: a reader's side and a coordinator's side.

    Every method raises ``SalienceError`` with one line for what the data layer refuses (a
    locked answer, a question not asked here, a role without the permission).
    """

    def my_studies(self) -> list[ReaderStudy]:
        """The signed-in account's studies as a reader, with progress (fast)."""

    def study_worklist(self, study_id: int) -> Worklist:
        """Their own cases of one study, under pseudonyms, in their order (fast)."""

    def open_study_case(self, assignment_id: int, progress: Progress) -> OpenedStudyCase:
        """Open one of their cases: start its reading and timer, read its pixels (slow)."""

    def study_case_view(self, assignment_id: int) -> StudyCaseView:
        """The form and AI again, e.g. after a submit opened the aided step (fast)."""

    def save_study_answer(self, assignment_id: int, question_id: int, value: object) -> SavedAnswer:
        """Store one answer as a draft now (``None`` clears it) (fast)."""

    def submit_study_case(self, assignment_id: int) -> str:
        """Lock the current step's answers: "phase 1 locked" or "submitted" (fast)."""

    def revise_study_case(self, assignment_id: int) -> int:
        """Reopen a submitted case as a new version, where the study allows (fast)."""

    def leave_study_case(self, assignment_id: int) -> None:
        """The reader left the case: stop its timer; drafts stay (fast)."""

    def studies(self) -> list[StudySummary]:
        """Every study (coordinators and administrators) (fast)."""

    def study_status(self, study_id: int) -> dict:
        """``db.study_progress.study_status``: progress without answers (fast)."""

    def create_study_from_file(self, path: str, progress: Progress) -> dict:
        """Create a draft study from a study file, freezing its AI output (slow)."""

    def open_study(self, study_id: int) -> None:
        """Open a draft study to its readers (fast)."""

    def close_study(self, study_id: int) -> None:
        """Close a study: read-only from then on (fast)."""

    def study_report(self, study_id: int, progress: Progress) -> object:
        """A closed study's report (``engine.stats.study_report.StudyReport``) for the dashboard (slow)."""


class SignIn(Protocol):
    """Who is signing in at start (the app implements it over the accounts in the database)."""

    @property
    def single_user(self) -> bool:
        """Whether accounts without a password may sign in without one (a site's setting)."""

    def accounts(self) -> list[Account]:
        """Every account, by user name."""

    def preselected(self) -> str | None:
        """The user name to preselect (the last one signed in)."""

    def sign_in(self, username: str, password: str | None) -> ReaderInfo | None:
        """The account if the password is right, else None; both are audited."""

    def create_first_account(self, username: str, password: str | None) -> ReaderInfo:
        """On a database with no account: create an administrator and sign it in."""


class Workstation(StudyWorkstation, Protocol):
    """The reading workstation: free review (below) and reader studies (``StudyWorkstation``)."""

    @property
    def reader(self) -> ReaderInfo:
        """The signed-in reader (fast)."""

    def worklist(self) -> list[WorklistItem]:
        """Cases the reader can open (fast: no pixel reads)."""

    def bundles(self, task: str) -> list[str]:
        """Names of the installed model bundles, those that read this task first (fast)."""

    def methods(self) -> list[str]:
        """CAM method names offered (fast)."""

    def add_bundle(self, path: str) -> str:
        """Check the model bundle at ``path`` (a folder, its metadata.json or a .zip) and add it
        beside the installed ones; returns one line saying what was added and its CAM layer.
        Raises ``SalienceError`` with one line naming what is wrong (nothing added before changes).
        Slow: run it in a worker."""

    def diagnoses(self, task: str) -> list[str]:
        """The answers a reader picks from for this task (fast)."""

    def annotation_labels(self, task: str) -> list[str]:
        """Labels offered for points and boxes (fast)."""

    def open_case(self, item: WorklistItem, progress: Progress) -> OpenedCase:
        """Read the image and register the case."""

    def open_path(self, path: str, progress: Progress, series_uid: str | None = None) -> OpenedCase:
        """Read a file or folder chosen outside the worklist (File > Open) and register the case.

        A DICOM folder with several series raises ``MultipleSeriesError`` (its ``series`` lists
        them) unless ``series_uid`` names the one to open.
        """

    def analyse(self, case: OpenedCase, bundle: str, method: str, progress: Progress) -> Analysis:
        """Run the bundle and the CAM method on every slice, store and return the results."""

    def compare(self, case: OpenedCase, analysis: Analysis, method: str, progress: Progress) -> Analysis:
        """Add another CAM ``method``'s maps to ``analysis`` (same bundle, classes and prediction)
        and return them as an ``Analysis`` with the same ``prediction_id`` and new
        ``explanation_ids``: one prediction, explained by two methods."""

    def check_map(
        self, case: OpenedCase, bundle: str, analysis: Analysis, class_index: int, item: int, progress: Progress
    ) -> dict:
        """Measure one shown map (class, slice) and store the measures with its explanation.

        Returns ``engine.analysis.quality.quality_report``'s dict. Slow (the sanity check
        recomputes the map once per layer): run it in a worker.
        """

    def save_reading(self, case: OpenedCase, draft: ReadingDraft) -> SavedReading:
        """Store the reader's reading with its annotations (fast enough for the GUI thread)."""

    def my_readings(self, case: OpenedCase) -> list[SavedReading]:
        """The signed-in reader's own readings of this case, newest first (fast)."""

    def reopen_reading(self, case: OpenedCase, reading_id: int, progress: Progress) -> tuple[SavedReading, Analysis | None]:
        """One of the signed-in reader's saved readings of ``case`` with the analysis it was made
        on (its stored prediction and maps, the first method shown then), or None when the
        reading was made without one. Raises ``SalienceError`` for another reader's reading or
        one of another case."""

    def method_cost(self, case: OpenedCase, bundle: str, method: str, progress: Progress) -> MethodCost:
        """Estimate the forward passes and the time ``method`` takes on ``case`` with ``bundle``,
        from one timed forward batch (a second or two)."""

    def data_folder(self) -> str:
        """The folder File > Open starts in when none was used before: the demo data (fast)."""

    @property
    def device(self) -> str:
        """Where the next analysis runs its model: "auto", "cpu" or "cuda:N" (fast)."""

    @property
    def device_override(self) -> str:
        """"SALIENCE_DEVICE=<spec>" when that environment variable chose the device (the menu
        cannot change it then), else "" (fast)."""

    def set_device(self, spec: str) -> None:
        """Run the next analysis's model on ``spec`` ("auto", "cpu", "cuda" or "cuda:N"); models
        loaded on another device are loaded again there. Raises ``SalienceError`` for a name that
        is no device, or when ``device_override`` is set (fast)."""

    def device_choices(self, progress: Progress) -> tuple[DeviceChoice, ...]:
        """Auto, the CPU and each CUDA device torch sees (a disabled CUDA entry with its reason
        when it sees none). Loads torch the first time: run it in a worker."""
