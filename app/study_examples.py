"""``salience study example NAME``: a complete study file over the demo data.

The designs are ``db.study_examples``'; the cases are chosen here, by a rule, from the demo data:

* pocovid: lung-ultrasound clips the shipped model never trained on (its bundle's held-out test
  split, or, for a bundle trained on every group but an inner validation part, that part, which
  only chose its epoch and temperature), ``PER_CLASS`` of each class, the shortest first (freezing the AI output of a clip costs
  about a second per 30 frames on a laptop CPU). The reference answer is the class the file name
  carries (``Cov`` COVID-19, ``Pneu`` bacterial pneumonia, ``Reg`` healthy).
* glioma-sequential: glioma patients of the glioma bundle's held-out split, ``PER_CLASS`` of
  each WHO grade, the fewest slices first; the reference answer is the grade in ``data.csv``
  (``neoplasm_histologic_grade`` 1 = grade II, 2 = grade III).

No readers are listed: ``salience study assign`` adds them once their accounts exist.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from db.study_examples import EXAMPLE_NAMES, GLIOMA_GRADES, LUNG_CLASSES, example_design_mapping
from engine.errors import SalienceError

PER_CLASS = 3
LUNG_PREFIXES = {"cov": LUNG_CLASSES[0], "pneu": LUNG_CLASSES[1], "reg": LUNG_CLASSES[2]}
TCGA_GRADES = {"1": GLIOMA_GRADES[0], "2": GLIOMA_GRADES[1]}


def lung_class(file_name: str) -> str | None:
    """The class a POCOVID file name carries (``Cov``, ``Pneu``/``pneu``, ``Reg``), or None."""
    head = file_name.split("_", 1)[0].split("-", 1)[0].lower()
    return LUNG_PREFIXES.get(head)


def clip_frames(path: Path) -> int:
    """Frames a clip's container declares (or its duration times its frame rate); 0 if unknown."""
    import av

    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            rate = stream.average_rate or stream.guessed_rate
            return round(float(rate) * container.duration / av.time_base) if rate and container.duration else 0
    except (av.error.FFmpegError, IndexError, OSError):
        return 0


def held_out(bundle: str) -> list[str]:
    """The items of a bundle's split it never trained on: its ``test`` part, else its ``val`` part."""
    from engine.models.metadata import read_metadata

    split = read_metadata(bundle).get("split", {})
    return list(split.get("test") or split.get("val", []))


def _pick(candidates: list[tuple[str, Path]], size: Callable[[Path], int], classes: list[str]) -> list[dict[str, Any]]:
    """``PER_CLASS`` of each class, smallest first (ties by name), listed class by class."""
    chosen = []
    for name in classes:
        mine = sorted((p for c, p in candidates if c == name), key=lambda p: (size(p) or 10**9, p.name))
        chosen += [{"source": str(p), "ground_truth": name} for p in mine[:PER_CLASS]]
    return chosen


def pocovid_cases(demo_data: Path) -> list[dict[str, Any]]:
    """The held-out lung-ultrasound clips of the example, with their file-name class."""
    root = demo_data / "lung-ultrasound"
    candidates = []
    for relative in held_out("lung-ultrasound"):
        path = root / relative
        truth = lung_class(path.name)
        if path.is_file() and relative.startswith("pocus_videos/") and truth is not None:
            candidates.append((truth, path))
    return _pick(candidates, clip_frames, LUNG_CLASSES)


def glioma_cases(demo_data: Path) -> list[dict[str, Any]]:
    """The held-out glioma patients of the example, with their WHO grade from ``data.csv``."""
    import nibabel as nib

    root = demo_data / "glioma-lgg"
    try:
        with (root / "data.csv").open(newline="", encoding="utf-8") as table:
            grades = {row["Patient"]: row.get("neoplasm_histologic_grade", "") for row in csv.DictReader(table)}
    except (OSError, KeyError):
        return []
    candidates = []
    for folder in held_out("glioma"):
        grade = TCGA_GRADES.get(grades.get(folder[:12], ""))
        if (root / folder).is_dir() and grade is not None:
            candidates.append((grade, root / folder))

    def slices(path: Path) -> int:
        flair = path / f"{path.name}_flair.nii.gz"
        return int(nib.load(str(flair)).shape[-1]) if flair.is_file() else 0

    return _pick(candidates, slices, GLIOMA_GRADES)


def example_study(name: str, demo_data: Path) -> dict[str, Any]:
    """A complete study file (as a mapping) of example ``name`` over ``demo_data``.

    Raises:
        SalienceError: an unknown example, or demo data without its cases.
    """
    if name not in EXAMPLE_NAMES:
        raise SalienceError(f"no example study {name!r}; known: {', '.join(EXAMPLE_NAMES)}")
    study = example_design_mapping(name)
    cases = pocovid_cases(demo_data) if name == "pocovid" else glioma_cases(demo_data)
    wanted = {"pocovid": "lung-ultrasound clips", "glioma-sequential": "glioma patients with a grade"}[name]
    if len({case["ground_truth"] for case in cases}) < 2:
        raise SalienceError(f"{demo_data}: too few {wanted} of the held-out split for the {name} example "
                            "(set SALIENCE_DEMO_DATA to the shared data folder)")
    return {**study, "bundle": study["task"], "cases": cases, "readers": []}


def render(study: dict[str, Any], fmt: str, name: str) -> str:
    """The study file's text: YAML with a header saying how to use it, or JSON."""
    import json

    import yaml

    if fmt == "json":
        return json.dumps(study, indent=2)
    header = (
        f"# Example reader study '{name}' over the demo data (salience study example {name}).\n"
        "# Create it:   salience study create THIS_FILE --as COORDINATOR\n"
        "# Readers:     salience study assign ID --reader NAME NAME ... (or list user names under readers:)\n"
        "# Ground truth is hidden from readers; the study key (pseudonym -> case) stays with coordinators.\n"
    )
    return header + yaml.safe_dump(study, sort_keys=False, allow_unicode=True, width=110)
