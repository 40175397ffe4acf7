"""The glioma grade data set: each patient's WHO grade, a split by patient stratified by grade, and
the preprocessed volumes.

``glioma-lgg/data.csv`` gives one row per TCGA patient (``Patient`` = ``TCGA_CS_4941``);
``neoplasm_histologic_grade`` is 1 for WHO grade II and 2 for grade III. A patient folder is
named after the patient and the scan date (``TCGA_CS_4941_19960909``). Patients whose grade is
blank are left out.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.errors import SalienceError
from engine.imaging import read_image
from engine.tasks.glioma.data import CHANNELS, PatientSplit, list_patients
from engine.tasks.glioma_grade.preprocess import grade_input

GRADE_FILE = "data.csv"
GRADE_COLUMN = "neoplasm_histologic_grade"
#: ``data.csv`` grade code -> class index (0: WHO grade II, 1: WHO grade III).
GRADE_CODES = {"1": 0, "2": 1}
CLASS_NAMES = ("WHO grade II", "WHO grade III")

_FOLDER = re.compile(r"^(TCGA_[A-Z0-9]{2}_[A-Z0-9]{4})_\d{8}$")


@dataclass(frozen=True)
class GradedCase:
    """One patient folder and its grade class (0: grade II, 1: grade III)."""

    folder: str
    grade: int


@dataclass(frozen=True)
class VolumeSet:
    """Preprocessed volumes of some patients.

    Attributes:
        inputs: ``(N, C, d, h, w)`` float32, one volume per patient.
        labels: ``(N,)`` int64 grade class.
        folders: ``(N,)`` the patient folder of each volume.
        slices: ``(N,)`` how many slices each volume has.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    folders: tuple[str, ...]
    slices: tuple[int, ...] = ()


def patient_of(folder: str) -> str:
    """The ``data.csv`` patient id of a folder name: ``TCGA_CS_4941_19960909`` -> ``TCGA_CS_4941``.

    Raises:
        SalienceError: the name is not ``TCGA_<site>_<patient>_<yyyymmdd>``.
    """
    match = _FOLDER.match(folder)
    if match is None:
        raise SalienceError(f"{folder}: not a TCGA patient folder name (TCGA_<site>_<patient>_<yyyymmdd>)")
    return match.group(1)


def read_grades(path: str | Path) -> dict[str, int]:
    """Patient id -> grade class from ``data.csv``; patients with a blank grade are left out.

    Raises:
        SalienceError: the file is missing, lacks the ``Patient`` or grade column, or holds a grade
            code other than 1 or 2.
    """
    path = Path(path)
    if not path.is_file():
        raise SalienceError(f"{path}: grade table not found")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"Patient", GRADE_COLUMN} - set(reader.fieldnames or ())
        if missing:
            raise SalienceError(f"{path}: lacks the column(s) {sorted(missing)}")
        grades = {}
        for line, row in enumerate(reader, start=2):
            code = (row[GRADE_COLUMN] or "").strip()
            if not code:
                continue
            if code not in GRADE_CODES:
                raise SalienceError(f"{path} line {line}: grade {code!r} is not 1 (grade II) or 2 (grade III)")
            grades[row["Patient"].strip()] = GRADE_CODES[code]
    return grades


def graded_cases(data_dir: str | Path) -> list[GradedCase]:
    """Every patient folder of ``data_dir`` with a grade in its ``data.csv``, sorted by folder.

    Raises:
        SalienceError: no patient folders, no grade table, or no folder with a grade.
    """
    grades = read_grades(Path(data_dir) / GRADE_FILE)
    cases = [GradedCase(f, grades[patient_of(f)]) for f in list_patients(data_dir) if patient_of(f) in grades]
    if not cases:
        raise SalienceError(f"{data_dir}: no patient folder has a grade in {GRADE_FILE}")
    return cases


def split_by_grade(cases: list[GradedCase], counts: tuple[int, int, int], seed: int) -> PatientSplit:
    """Split patients into train, validation and test parts of ``counts`` patients, each part
    holding the grades in about the proportion of the whole (stratified), with ``seed``.

    Each grade's patients are shuffled with ``seed`` and spread evenly over one ordering (the
    ``i``-th of a grade's ``n`` patients sits at ``(i + 0.5) / n``); the parts are consecutive runs
    of it, so each holds every grade in proportion, give or take one patient.

    Raises:
        SalienceError: more patients asked for than there are, or a part of size 0.
    """
    if sum(counts) > len(cases) or min(counts) < 1:
        raise SalienceError(f"split {counts} needs {sum(counts)} patients, each part at least 1; found {len(cases)}")
    rng = np.random.default_rng(seed)
    placed = []
    for grade in sorted({c.grade for c in cases}):
        folders = sorted(c.folder for c in cases if c.grade == grade)
        order = rng.permutation(len(folders))
        placed += [((rank + 0.5) / len(folders), grade, folders[i]) for rank, i in enumerate(order)]
    merged = [folder for _, _, folder in sorted(placed)]
    a, b, c = counts
    return PatientSplit(*(tuple(sorted(part)) for part in (merged[:a], merged[a : a + b], merged[a + b : a + b + c])))


def load_volumes(
    data_dir: str | Path, cases: list[GradedCase], input_size: tuple[int, int, int], preprocessing: dict
) -> VolumeSet:
    """Read and preprocess the volume of each case with the bundle's preprocessing.

    Raises:
        SalienceError: a case cannot be read or lacks a sequence.
    """
    inputs, labels, slices = [], [], []
    for case in cases:
        volume = read_image(Path(data_dir) / case.folder)
        missing = [c for c in CHANNELS if c not in volume.channel_names]
        if missing:
            raise SalienceError(f"{volume.source}: missing sequences {missing}")
        array = np.stack([volume.channel(c) for c in CHANNELS])
        inputs.append(grade_input(array, input_size, **preprocessing)[0])
        labels.append(case.grade)
        slices.append(volume.n_slices)
    if not inputs:
        return VolumeSet(torch.zeros((0, len(CHANNELS)) + tuple(input_size)), torch.zeros(0, dtype=torch.int64), ())
    return VolumeSet(torch.cat(inputs), torch.tensor(labels, dtype=torch.int64), tuple(c.folder for c in cases),
                     tuple(slices))
