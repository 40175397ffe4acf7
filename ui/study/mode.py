"""``install_study_mode(window)``: what the signed-in account's role and studies add to the window.

* an account that reads in a study gets "My studies" and the study's reading form
  (``StudyReaderMode``); a reader taking part in an open study sees no free review;
* a coordinator or administrator gets the "Studies" view and File > New study from file...
  (``StudyCoordinatorMode``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from db.permissions import allowed
from engine.errors import SalienceError
from ui.study.coordinator import StudyCoordinatorMode
from ui.study.reader_mode import StudyReaderMode

log = logging.getLogger(__name__)


@dataclass
class StudyMode:
    """The study parts installed in a window (each None where the account has none)."""

    reader: StudyReaderMode | None = None
    coordinator: StudyCoordinatorMode | None = None

    def case_open(self) -> bool:
        """Whether a study case is open (its answers are stored as they are given)."""
        return self.reader is not None and self.reader.case_open()

    def leave(self) -> None:
        """Store what is still settling and stop the open case's timer (the window closes)."""
        if self.reader is not None:
            self.reader.leave()


def install_study_mode(window) -> StudyMode:
    """Add the study docks the signed-in account's role and assignments call for."""
    workstation = window.workstation
    mode = StudyMode()
    if allowed(workstation.reader.role, "study.progress"):
        mode.coordinator = StudyCoordinatorMode(window)
    try:
        studies = workstation.my_studies()
    except SalienceError as exc:
        window.show_error("Your studies could not be loaded", exc)
        studies = []
    if studies:
        mode.reader = StudyReaderMode(window, studies)
    return mode
