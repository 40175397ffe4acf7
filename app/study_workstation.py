"""The study half of the ``ui.backend.Workstation`` port: a reader's studies and a coordinator's.

``StudyDesk`` is a mixin of ``app.workstation.SalienceWorkstation`` (it uses its ``_sessions``,
``_settings``, ``_blobs`` and ``_reader``). Every call is one transaction of the data layer's
study functions, which decide what the signed-in account may see and do; this module only turns
their answers into what the window draws:

* the image: the reader's opaque case token is resolved here (``db.study_pixels``, app only),
  the file read, checked against the hash frozen in the study, and handed on de-identified
  (``deidentified``): the window never holds a path, a file name or an identifying header field;
* the AI: the frozen prediction and maps (``db.study_reader.ai_output_for_reader``), each map read
  back from the blob store with its hash checked, as one-class analyses the viewer overlays; the
  two maps of a pairwise question scaled to a peak of 1, so their raw scale cannot name them.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from app.errors import user_errors
from app.store import load_map
from app.stored_analysis import uncertainty_shown
from app.tasks import vocabulary
from db import study_progress, study_reader, study_reading, studies
from db.study_pixels import CasePixels, pixels_for_token
from db.study_reader import AiOutput, MapView
from engine.errors import SalienceError
from engine.imaging import ImageVolume, read_image
from engine.imaging.slide import SlidePixels, SlideReader
from engine.progress import Progress, ScaledProgress
from ui.backend import Analysis, OpenedStudyCase, StudyAi, StudyCaseView

log = logging.getLogger(__name__)

#: Header fields a study reader may see: how the image is stored, nothing about whom or where.
TECHNICAL_HEADER_FIELDS = (
    "format", "codec", "dtype", "dim", "zooms", "width", "height", "nominal_fps", "pixel_aspect", "duration_s",
    "frames_kept", "colour", "variable_frame_rate", "spacing_is_physical", "sequences",
)
#: Extras the viewer needs (a clip's frame times); everything else stays behind.
KEPT_EXTRAS = ("frame_times_ms",)


def deidentified(volume: ImageVolume, pseudonym: str) -> ImageVolume:
    """The volume as a study reader may have it: ``source`` is the pseudonym, the header keeps
    only ``TECHNICAL_HEADER_FIELDS``, and the label layer (a mask may be the reference answer)
    and reader-specific extras are gone; an open whole slide stays as its pyramid pixels only
    (``SlidePixels``: no path, no file properties), which the slide view reads and closes."""
    header = {key: volume.header[key] for key in TECHNICAL_HEADER_FIELDS if key in volume.header}
    extras = {key: volume.extras[key] for key in KEPT_EXTRAS if key in volume.extras}
    if isinstance(volume.extras.get("slide"), SlideReader):  # a whole slide: its pixels, not its file
        extras["slide"] = SlidePixels(volume.extras["slide"])
    return volume.with_(source=pseudonym, header=header, labels=None, label_names={}, extras=extras)


def read_study_pixels(pixels: CasePixels, progress: Progress) -> ImageVolume:
    """Read a study case's image, check it is the image frozen in the study, de-identify it.

    Raises:
        SalienceError: unreadable or changed since the study was created; the message names the
            pseudonym only (the path goes to the log).
    """
    try:
        volume = read_image(pixels.source, progress=progress)
    except SalienceError as exc:
        log.warning("study case %s could not be read: %s", pixels.pseudonym, exc)
        raise SalienceError(f"{pixels.pseudonym}: its image cannot be read; please tell the study's coordinator") from None
    if volume.content_hash != pixels.content_hash:
        if isinstance(volume.extras.get("slide"), SlideReader):
            volume.extras["slide"].close()  # not shown: nothing else would close it
        log.warning("study case %s: %s no longer holds the image the study froze", pixels.pseudonym, pixels.source)
        raise SalienceError(f"{pixels.pseudonym}: its image has changed since the study was created; "
                            "please tell the study's coordinator")
    return deidentified(volume, pixels.pseudonym)


def case_probabilities(probabilities: np.ndarray, item_axis: str) -> tuple[np.ndarray, str]:
    """Case-level probabilities of per-item ones: a clip's mean over its frames (its verdict); a
    slide's share of tissue tiles called each class (its verdict, ``engine.analysis.slide_verdict``);
    otherwise each class's highest item (where the finding is most likely)."""
    count = len(probabilities)
    if item_axis == "frame":
        return probabilities.mean(axis=0), f"mean over {count} frames"
    if item_axis == "tile" and count:
        from engine.analysis.slide_verdict import minimum_tiles, tile_counts

        shares = (tile_counts(probabilities) / count).astype(np.float32)
        return shares, f"share of {count} tissue tiles called each class (a finding needs {minimum_tiles(count)})"
    plural = {"slice": "slices", "patch": "patches", "tile": "tiles"}.get(item_axis, f"{item_axis}s")
    return probabilities.max(axis=0), f"highest over {count} {plural}"


def peak_scaled(maps: np.ndarray) -> np.ndarray:
    """``maps`` divided by their largest magnitude. The two maps of a pairwise question are shown
    so: CAM methods differ in raw scale by orders of magnitude, and the viewer prints a map's
    maximum, which would name the method. Where a map is zero it stays so."""
    peak = float(np.nanmax(np.abs(maps))) if maps.size else 0.0
    return maps / peak if peak > 0 else maps


class StudyDesk:
    """Study methods of the workstation (a mixin; see the module docstring)."""

    # -- a reader's side ---------------------------------------------------------------------
    def my_studies(self) -> list[study_reader.ReaderStudy]:
        with self._sessions() as session:
            return study_reader.reader_studies(session, self._reader.id)

    def study_worklist(self, study_id: int) -> study_reader.Worklist:
        with user_errors(), self._sessions() as session:
            return study_reader.reader_worklist(session, self._reader.id, study_id)

    def open_study_case(self, assignment_id: int, progress: Progress) -> OpenedStudyCase:
        with user_errors(), self._sessions.begin() as session:
            form = study_reader.case_for_reader(session, self._reader.id, assignment_id)
            pixels = pixels_for_token(session, self._reader.id, form.token)
        volume = read_study_pixels(pixels, ScaledProgress(progress, 0.0, 0.9))
        view = StudyCaseView(form, self._study_ai(form))
        progress.report(1.0, "opened")
        preferred = vocabulary(pixels.task).display_channel
        channel = preferred if preferred in volume.channel_names else volume.channel_names[0]
        return OpenedStudyCase(view, volume, channel, pixels.task)

    def study_case_view(self, assignment_id: int) -> StudyCaseView:
        with user_errors(), self._sessions.begin() as session:
            form = study_reader.case_for_reader(session, self._reader.id, assignment_id)
        return StudyCaseView(form, self._study_ai(form))

    def _study_ai(self, form: study_reader.ReaderCase) -> StudyAi | None:
        if not form.shows_ai:
            return None
        with user_errors(), self._sessions() as session:
            output = study_reader.ai_output_for_reader(session, self._reader.id, form.assignment_id)
        with user_errors():
            return self._drawable(output)

    def _drawable(self, output: AiOutput) -> StudyAi:
        probabilities = np.asarray(output.probabilities, dtype=np.float32)
        pooled, rule = case_probabilities(probabilities, output.item_axis)

        def one_class(view: MapView, label: str, blind: bool = False) -> Analysis:
            maps = load_map(self._blobs, view.map_path, view.map_sha256).astype(np.float32)
            if blind:
                maps = peak_scaled(maps)
            return Analysis(bundle="frozen for this study", class_names=(view.class_name,),
                            probabilities=probabilities[:, [view.class_index]], method=label, maps=maps[None],
                            prediction_id=output.prediction_id, explanation_ids=(view.explanation_id,))

        return StudyAi(
            class_names=output.class_names, predicted_class=output.predicted_class, case_probabilities=pooled,
            case_rule=rule, probabilities=probabilities, item_axis=output.item_axis,
            map=None if output.map is None else one_class(output.map, output.map_method or "map"),
            pairwise={question: (one_class(left, "Map A", blind=True), one_class(right, "Map B", blind=True))
                      for question, (left, right) in output.pairwise.items()},
            uncertainty=uncertainty_shown(output.uncertainty, output.item_axis != "volume"),
            uncertainty_hidden=output.uncertainty_hidden,
        )

    def save_study_answer(self, assignment_id: int, question_id: int, value: Any) -> study_reading.SavedAnswer:
        with user_errors(), self._sessions.begin() as session:
            return study_reading.save_answer(session, self._reader.id, assignment_id, question_id, value)

    def submit_study_case(self, assignment_id: int) -> str:
        with user_errors(), self._sessions.begin() as session:
            return study_reading.submit_case(session, self._reader.id, assignment_id)

    def revise_study_case(self, assignment_id: int) -> int:
        with user_errors(), self._sessions.begin() as session:
            return study_reading.revise_case(session, self._reader.id, assignment_id)

    def leave_study_case(self, assignment_id: int) -> None:
        with user_errors(), self._sessions.begin() as session:
            study_reading.close_case(session, self._reader.id, assignment_id)

    # -- a coordinator's side ----------------------------------------------------------------
    def studies(self) -> list[studies.StudySummary]:
        with user_errors(), self._sessions() as session:
            return studies.list_studies(session, self._reader.id)

    def study_status(self, study_id: int) -> dict:
        with user_errors(), self._sessions() as session:
            return study_progress.study_status(session, self._reader.id, study_id)

    def create_study_from_file(self, path: str, progress: Progress) -> dict:
        from app.study_files import read_study_file
        from app.study_freeze import create_from_file

        return create_from_file(self._sessions, self._blobs, self._reader.id, read_study_file(path), progress)

    def open_study(self, study_id: int) -> None:
        with user_errors(), self._sessions.begin() as session:
            studies.open_study(session, self._reader.id, study_id)

    def study_report(self, study_id: int, progress: Progress):
        """The closed study's report (``app.study_report``): tables and figures the dashboard shows."""
        from app.study_report import build_study_report

        progress.report(0.1, "reading the study")
        report = build_study_report(self._sessions, self._reader.id, study_id, self._settings.blob_root)
        progress.report(1.0, "report ready")
        return report

    def close_study(self, study_id: int) -> None:
        with user_errors(), self._sessions.begin() as session:
            studies.close_study(session, self._reader.id, study_id)
