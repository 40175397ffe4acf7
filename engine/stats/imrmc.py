"""The iMRMC input format: free text, the ``NR:``/``N0:``/``N1:``/``NM:`` header, then the data.

Gallas et al.'s iMRMC (FDA/DIDSR) reads, and RJafroc's ``DfReadDataFile(..., format="iMRMC")``
reads, a text file of the form::

    any description lines
    NR: 5          number of readers
    N0: 69         number of normal (truth 0) cases
    N1: 45         number of abnormal (truth 1) cases
    NM: 2          number of modalities
    BEGIN DATA:
    -1,1,truth,0   truth rows: reader -1, case, anything, 0 or 1
    1,1,CINE,3     readings: reader, case, modality, score

The header counts are optional when reading (iMRMC infers them) but checked when present; the
writer always writes them, with integer case ids so RJafroc reads the file too.
"""

from __future__ import annotations

from pathlib import Path

from engine.stats.ratings import RatingArray, rating_array
from engine.stats.results import StatsInputError

HEADER_KEYS = ("NR", "N0", "N1", "NM")


def read_imrmc(path: str | Path) -> RatingArray:
    """Read an iMRMC file into a ``RatingArray``.

    Raises:
        StatsInputError: when the file is missing or unreadable, has no ``BEGIN DATA:`` line,
            a malformed row, a header count that disagrees with the data, or an incomplete design.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise StatsInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StatsInputError(f"{path}: cannot be read as text ({exc})") from None
    return parse_imrmc(text, str(path))


def parse_imrmc(text: str, what: str = "iMRMC text") -> RatingArray:
    """Parse the text of an iMRMC file (see the module docstring)."""
    lines = text.splitlines()
    header: dict[str, int] = {}
    start = None
    for number, raw in enumerate(lines):
        line = raw.strip()
        if line.upper().startswith("BEGIN DATA"):
            start = number + 1
            break
        key, sep, value = line.partition(":")
        if sep and key.strip().upper() in HEADER_KEYS:
            try:
                header[key.strip().upper()] = int(value.strip())
            except ValueError:
                raise StatsInputError(f"{what}: line {number + 1}: {key.strip()} count {value.strip()!r} is not a whole number") from None
    if start is None:
        raise StatsInputError(f"{what}: no 'BEGIN DATA:' line (not an iMRMC file?)")
    truth: dict[str, int] = {}
    readings = []
    for number, raw in enumerate(lines[start:], start=start + 1):
        line = raw.strip()
        if not line:
            continue
        fields = [field.strip() for field in line.split(",")]
        if len(fields) != 4:
            raise StatsInputError(f"{what}: line {number}: expected reader,case,modality,score, found {line!r}")
        reader, case, modality, score = fields
        if reader == "-1":
            if score not in ("0", "1"):
                raise StatsInputError(f"{what}: line {number}: truth of case {case} is {score!r}, expected 0 or 1")
            if case in truth and truth[case] != int(score):
                raise StatsInputError(f"{what}: line {number}: case {case} has two different truths")
            truth[case] = int(score)
        else:
            try:
                value = float(score)
            except ValueError:
                raise StatsInputError(f"{what}: line {number}: score {score!r} is not a number") from None
            readings.append((reader, case, modality, value))
    data = rating_array(readings, truth, what)
    _check_header(header, data, what)
    return data


def _check_header(header: dict[str, int], data: RatingArray, what: str) -> None:
    found = {"NR": len(data.readers), "N0": data.n_normal, "N1": data.n_abnormal, "NM": len(data.modalities)}
    for key, stated in header.items():
        if stated != found[key]:
            raise StatsInputError(f"{what}: header says {key}: {stated} but the data have {found[key]}")


def format_imrmc(data: RatingArray, description: str = "") -> str:
    """The iMRMC text of ``data``: description, header counts, truth rows, then readings.

    Case ids are written as given when they are all integers and as their position (1, 2, ...)
    otherwise, since RJafroc requires integer case ids; reader and modality names must not
    contain commas.
    """
    for name in (*data.readers, *data.modalities):
        if "," in name or "\n" in name:
            raise StatsInputError(f"iMRMC export: name {name!r} contains a comma or a line break")
    if any(reader == "-1" for reader in data.readers):
        raise StatsInputError("iMRMC export: reader id -1 is reserved for truth rows")
    try:
        case_ids = [str(int(case)) for case in data.cases]
    except ValueError:
        case_ids = [str(k + 1) for k in range(len(data.cases))]
    lines = [line for line in description.splitlines() if not line.upper().startswith("BEGIN DATA")]
    lines += [f"NR: {len(data.readers)}", f"N0: {data.n_normal}", f"N1: {data.n_abnormal}", f"NM: {len(data.modalities)}"]
    lines.append("BEGIN DATA:")
    lines += [f"-1,{case_id},truth,{int(label)}" for case_id, label in zip(case_ids, data.truth)]
    for i, modality in enumerate(data.modalities):
        for j, reader in enumerate(data.readers):
            for k, case_id in enumerate(case_ids):
                lines.append(f"{reader},{case_id},{modality},{_number(data.scores[i, j, k])}")
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    """A score as the shortest text that reads back to the same float (``3`` for 3.0)."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def write_imrmc(data: RatingArray, path: str | Path, description: str = "") -> Path:
    """Write ``data`` as an iMRMC file at ``path`` (see ``format_imrmc``)."""
    path = Path(path)
    path.write_text(format_imrmc(data, description), encoding="utf-8")
    return path
