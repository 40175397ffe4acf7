"""Study files: a study's design, its cases and readers in one YAML or JSON file.

    name, description, task, design, arms, questions, washout_days, repeat_fraction,
    order_seed, allow_revisions     the design (``db.study_spec.design_from_mapping``); an arm is
                                    {name, shows_prediction, cam_method, show_uncertainty}
    bundle                          the model whose output is frozen (default: the task's own)
    cases                           [{source: PATH, ground_truth: ANSWER}, ...]; a path may be
                                    relative to the file's folder; ground_truth is optional
    readers                         [USER NAME, ...] (optional; ``salience study assign`` adds more)

``salience study example NAME`` prints a complete one. Every problem is reported as one line
that names the file.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from db.errors import InvalidInput
from db.study_spec import StudyDesign, design_from_mapping
from engine.errors import SalienceError

EXTRA_KEYS = ("bundle", "cases", "readers")


@dataclass(frozen=True)
class CaseEntry:
    """One case of a study file: where its image is and its reference answer (hidden from readers)."""

    source: str
    ground_truth: str | None = None


@dataclass(frozen=True)
class StudyFile:
    """A parsed study file."""

    path: str
    design: StudyDesign
    bundle: str
    cases: tuple[CaseEntry, ...]
    readers: tuple[str, ...]


def load_mapping(path: str | Path) -> dict[str, Any]:
    """The file's top-level mapping (JSON for ``.json``, else YAML, which also reads JSON).

    Raises:
        SalienceError: unreadable, not YAML/JSON, or not a mapping.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SalienceError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SalienceError(f"{path}: cannot be read ({exc})") from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        reason = " ".join(str(exc).split())
        raise SalienceError(f"{path}: not a valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'} file ({reason})") from None
    if not isinstance(data, Mapping):
        raise SalienceError(f"{path}: a study file is a mapping of keys (name, task, design, ...), got {type(data).__name__}")
    return dict(data)


def _case(item: Any, index: int, folder: Path) -> CaseEntry:
    if isinstance(item, str):
        item = {"source": item}
    if not isinstance(item, Mapping) or set(map(str, item)) - {"source", "ground_truth"} or "source" not in item:
        raise InvalidInput(f"case {index}: expected {{source: PATH, ground_truth: ANSWER}}, got {item!r}")
    source = Path(str(item["source"])).expanduser()
    if not source.is_absolute():
        source = folder / source
    if not source.exists():
        raise InvalidInput(f"case {index}: {source} does not exist")
    truth = item.get("ground_truth")
    return CaseEntry(str(source), None if truth is None else str(truth))


def parse_study(data: Mapping[str, Any], folder: Path) -> tuple[StudyDesign, str, tuple[CaseEntry, ...], tuple[str, ...]]:
    """The design, bundle, cases and readers of a study file's mapping.

    Raises:
        InvalidInput: a broken design, no cases, a missing image, readers that are not names.
    """
    design = design_from_mapping(data, ignore=EXTRA_KEYS)
    cases = data.get("cases") or []
    if not isinstance(cases, list) or not cases:
        raise InvalidInput("cases: list one or more {source: PATH, ground_truth: ANSWER}")
    entries = tuple(_case(item, index, folder) for index, item in enumerate(cases))
    readers = data.get("readers") or []
    if not isinstance(readers, list) or not all(isinstance(name, str) and name.strip() for name in readers):
        raise InvalidInput(f"readers: expected a list of user names, got {readers!r}")
    bundle = data.get("bundle") or design.task
    if not isinstance(bundle, str):
        raise InvalidInput(f"bundle: expected a bundle name, got {bundle!r}")
    return design, bundle, entries, tuple(name.strip() for name in readers)


def read_study_file(path: str | Path) -> StudyFile:
    """Read and check a study file.

    Raises:
        SalienceError: one line naming the file and its first problem.
    """
    path = Path(path)
    data = load_mapping(path)
    try:
        design, bundle, cases, readers = parse_study(data, path.resolve().parent)
    except (ValueError, TypeError) as exc:  # InvalidInput, or a value of the wrong type
        raise SalienceError(f"{path}: {exc}") from None
    return StudyFile(str(path), design, bundle, cases, readers)
