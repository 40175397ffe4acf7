"""What a reader answers for each clinical task: the diagnoses to pick from and the labels of marks.

These belong to the task, not to a model: a reader answers the same question whichever bundle
(or none, in an unaided study arm) is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.imaging.volume import ImageVolume


@dataclass(frozen=True)
class TaskVocabulary:
    name: str
    question: str
    diagnoses: tuple[str, ...]
    annotation_labels: tuple[str, ...]
    display_channel: str | None = None


TASKS: dict[str, TaskVocabulary] = {
    "glioma": TaskVocabulary(
        name="glioma",
        question="Does this MRI show a FLAIR abnormality (glioma)?",
        diagnoses=("FLAIR abnormality present", "No FLAIR abnormality", "Indeterminate"),
        annotation_labels=("lesion", "oedema", "enhancing focus", "artefact"),
        display_channel="flair",
    ),
    "lung-ultrasound": TaskVocabulary(
        name="lung-ultrasound",
        question="What does this lung ultrasound show?",
        diagnoses=("COVID-19", "Bacterial pneumonia", "Healthy", "Indeterminate"),
        annotation_labels=("B-line", "A-line", "consolidation", "pleural effusion", "pleural line"),
    ),
    "histopathology": TaskVocabulary(
        name="histopathology",
        question="Which tissue class does this patch show?",
        diagnoses=("Adenocarcinoma", "Squamous cell carcinoma", "Benign", "Indeterminate"),
        annotation_labels=("tumour", "stroma", "necrosis", "normal", "artefact"),
    ),
}


def vocabulary(task: str) -> TaskVocabulary:
    """The task's vocabulary; an unknown task gets a generic one rather than failing the reading."""
    return TASKS.get(
        task,
        TaskVocabulary(task, "What does this image show?", ("Abnormal", "Normal", "Indeterminate"), ("finding", "artefact")),
    )


def task_of(volume: "ImageVolume") -> str:
    """Which task reads this image, from what it is (for files opened outside the demo worklist).

    Ultrasound reads as lung ultrasound, slide microscopy as histopathology, MR as glioma;
    anything else (a CT, a grey picture of unknown modality) gets the generic "image" task, whose
    reading form asks a neutral question.
    """
    return {"US": "lung-ultrasound", "SM": "histopathology", "MR": "glioma"}.get(volume.modality, "image")
