"""Exports of a closed study into a folder: long-format CSV and JSON, iMRMC, the frozen AI output
per case with its uncertainty (``ai``), and annotations (NIfTI label maps, QuPath GeoJSON, DICOM
SEG; ``app.study_annotation_exports``).

Every export is de-identified: cases appear under their study pseudonyms, and no source path,
file name or patient identifier is written; each file says so (a ``#`` comment line in CSV, a
``metadata`` member in JSON and GeoJSON, the description lines of iMRMC, the NIfTI ``descrip``
field, the SEG's de-identification attributes). A file name that would leave the chosen folder
(a name with ``/``, ``\\`` or ``..``) is refused. Every export is audited.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from app.study_report import DEIDENTIFIED, StudyData, audit_written, load_study_data, software_version
from app.errors import user_errors
from db.uncertainty import case_columns
from engine.errors import SalienceError
from engine.stats.imrmc import format_imrmc
from engine.stats.study_reads import mrmc_ratings, positive_class, reads_from_records, score_of

RECORD_FORMATS = ("csv", "json", "imrmc", "ai")
ANNOTATION_FORMATS = ("nifti", "geojson", "seg")
EXPORT_FORMATS = RECORD_FORMATS + ANNOTATION_FORMATS
_UNSAFE = re.compile(r"[\x00-\x1f/\\]")


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote.

    Attributes:
        files: the files written, inside ``folder``.
        skipped: one line per thing left out and why (e.g. a case that is not DICOM for SEG).
    """

    format: str
    folder: Path
    files: tuple[Path, ...]
    skipped: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "folder": str(self.folder), "files": [p.name for p in self.files],
                "skipped": list(self.skipped), "deidentified": True}


def safe_target(folder: str | Path, *parts: str, suffix: str = "") -> Path:
    """``folder / "part1_part2...suffix"``, refusing any name that could leave the folder.

    Raises:
        SalienceError: a part is empty, holds a path separator or a control character, is ``.``
            or ``..`` or starts with a dot, or the result would not lie directly in ``folder``.
    """
    root = Path(folder).resolve()
    for part in parts:
        if not part or _UNSAFE.search(part) or part.startswith(".") or ".." in part:
            raise SalienceError(f"export: the name {part!r} would write outside {root}; refused")
    target = root / ("_".join(parts) + suffix)
    if target.resolve().parent != root:
        raise SalienceError(f"export: {target.name!r} would write outside {root}; refused")
    return target


#: The columns of the ``ai`` export, one row per study case.
AI_CASE_COLUMNS = (
    "study_id", "case", "ground_truth", "prediction_id", "bundle_name", "bundle_version", "bundle_sha256",
    "item_axis", "calibrated", "predicted_class", "ai_correct", "uncertainty_method", "uncertainty_samples",
    "uncertainty_answer", "total_entropy", "aleatoric_entropy", "epistemic_mutual_information", "top_class_std",
    "flagged_uncertain", "uncertainty_words",
)


def ai_case_rows(data: StudyData) -> list[dict[str, Any]]:
    """One row per study case with the AI output frozen for it (``AI_CASE_COLUMNS``): the model,
    the class it named, whether that is the ground truth, and the uncertainty of the case answer
    (method, samples, total / aleatoric entropy and epistemic mutual information in nats, the top
    class's standard deviation, flagged uncertain or not, the words shown); the uncertainty
    columns are empty where it was not measured, every AI column where no arm shows the AI."""
    rows = []
    for case in data.materials:
        ai = case.ai
        row: dict[str, Any] = dict.fromkeys(AI_CASE_COLUMNS)
        row.update(study_id=data.facts.study_id, case=case.pseudonym, ground_truth=case.ground_truth)
        if ai is not None:
            row.update(
                prediction_id=ai.prediction_id, bundle_name=ai.bundle_name, bundle_version=ai.bundle_version,
                bundle_sha256=ai.bundle_sha256, item_axis=ai.item_axis, calibrated=ai.calibrated,
                predicted_class=ai.predicted_class,
                ai_correct=None if case.ground_truth is None else ai.predicted_class == case.ground_truth,
                **case_columns(ai.uncertainty),
                uncertainty_words=None if ai.uncertainty is None else ai.uncertainty["case"]["words"],
            )
        rows.append(row)
    return rows


def _header(data: StudyData, what: str) -> dict[str, Any]:
    facts = data.facts
    return {"study_id": facts.study_id, "study": facts.name, "design": facts.design, "export": what,
            "software": f"Salience {software_version()}", "generated_at": facts.generated_at,
            "deidentified": True, "note": DEIDENTIFIED}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _csv(data: StudyData, what: str, rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str) -> str:
    buffer = io.StringIO()
    head = _header(data, what)
    buffer.write(f"# {title}: study {head['study_id']} ({head['study']}), {head['software']}, "
                 f"{head['generated_at']}. {DEIDENTIFIED}\n")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in columns])
    return buffer.getvalue()


def records_csv(data: StudyData) -> str:
    """The records as CSV: one comment line (study, software, de-identification), the header, rows.

    Lists and mappings (region answers, multiple choices, the maps shown) are JSON in their cell.
    """
    columns = list(dict.fromkeys(key for row in data.records for key in row)) or ["study_id"]
    return _csv(data, "long-format records", data.records, columns, "Salience study export")


def ai_cases_csv(data: StudyData) -> str:
    """``ai_case_rows`` as CSV: one comment line, the header (``AI_CASE_COLUMNS``), one row per case."""
    return _csv(data, "frozen AI output per case", ai_case_rows(data), AI_CASE_COLUMNS,
                "Salience study export of the frozen AI output per case")


def records_json(data: StudyData) -> str:
    """The records as JSON: ``{"metadata": {...}, "records": [...]}``."""
    return json.dumps({"metadata": _header(data, "long-format records"), "records": data.records}, indent=1, default=str)


def case_numbers(pseudonyms: Sequence[str]) -> dict[str, str]:
    """Integer case ids for iMRMC (RJafroc needs integers): the number of each pseudonym
    ``S<study>-C<number>`` when they are all of that form and distinct, else 1, 2, ... in order."""
    numbers = {p: m.group(1) for p in pseudonyms if (m := re.fullmatch(r"S\d+-C(\d+)", p))}
    if len(numbers) == len(pseudonyms) and len({int(n) for n in numbers.values()}) == len(numbers):
        return {p: str(int(n)) for p, n in numbers.items()}
    return {p: str(k) for k, p in enumerate(sorted(pseudonyms), start=1)}


def records_imrmc(data: StudyData, positive: str | None = None) -> str:
    """The scores as an iMRMC file (conditions as modalities), as ``salience mrmc`` and RJafroc read it.

    Raises:
        StatsInputError: no score question or positive class, or the design is not fully crossed.
    """
    reads = reads_from_records(data.records, data.facts.sequential).primary
    chosen = positive_class(data.facts, reads, positive)
    score = score_of(data.facts, reads)
    ids = case_numbers(sorted({read.case for read in reads}))
    ratings = mrmc_ratings(data.facts, reads, score, chosen.name, ids)
    description = "\n".join([
        f"Salience study export: study {data.facts.study_id} ({data.facts.name}), {data.facts.design}",
        f"Salience {software_version()}, {data.facts.generated_at}",
        DEIDENTIFIED,
        f"Scores: {score.description}; truth 1 = {chosen.name} ({chosen.rule}).",
        "Case ids are the numbers of the pseudonyms S<study>-C<number>.",
    ])
    return format_imrmc(ratings, description)


def export_records(data: StudyData, fmt: str, folder: Path, positive: str | None = None) -> ExportResult:
    """Write the CSV, JSON, iMRMC or per-case AI export of loaded study data into ``folder``."""
    name = f"study-{data.facts.study_id}"
    if fmt == "ai":
        target, text = safe_target(folder, f"{name}-ai-cases", suffix=".csv"), ai_cases_csv(data)
    elif fmt == "csv":
        target, text = safe_target(folder, f"{name}-records", suffix=".csv"), records_csv(data)
    elif fmt == "json":
        target, text = safe_target(folder, f"{name}-records", suffix=".json"), records_json(data)
    else:
        target, text = safe_target(folder, name, suffix=".imrmc"), records_imrmc(data, positive)
    target.write_text(text, encoding="utf-8")
    return ExportResult(fmt, folder, (target,))


def export_study(
    factory: sessionmaker[Session], requester_id: int, study_id: int, fmt: str, folder: str | Path, *,
    positive: str | None = None,
) -> ExportResult:
    """Export a closed study in one format into an existing folder, and audit it.

    Args:
        fmt: one of ``EXPORT_FORMATS``.
        folder: the folder to write into (created if its parent exists).
        positive: the positive class of the iMRMC truth (chosen as in the report if None).

    Raises:
        SalienceError: one line: an unknown format, a folder that cannot be made, a refused
            name, a requester who may not export, a study not closed, or unusable data.
    """
    if fmt not in EXPORT_FORMATS:
        raise SalienceError(f"export format {fmt!r} is not one of {', '.join(EXPORT_FORMATS)}")
    folder = Path(folder)
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise SalienceError(f"{folder}: cannot create the export folder ({exc.strerror or exc})") from None
    if not folder.is_dir():
        raise SalienceError(f"{folder}: not a folder")
    if fmt in RECORD_FORMATS:
        with user_errors(), factory.begin() as session:
            data = load_study_data(session, requester_id, study_id)
        result = export_records(data, fmt, folder, positive)
    else:
        from app.study_annotation_exports import export_annotations

        result = export_annotations(factory, requester_id, study_id, fmt, folder)
    audit_written(factory, requester_id, study_id, "study.export_written",
                  {"format": fmt, "files": len(result.files), "skipped": len(result.skipped)})
    return result
