"""``salience agreement`` and ``salience mrmc``: reader-study statistics from files, as JSON-ready dicts.

Researchers with data from other tools use these to get the figures Salience computes for its
own studies: every applicable agreement statistic from a long-format CSV, and the
Obuchowski-Rockette MRMC analyses from an iMRMC file.
"""

from __future__ import annotations

import csv
from itertools import combinations
from pathlib import Path

from engine.stats.agreement import cohen_kappa, fleiss_kappa, gwet_ac1, percent_agreement
from engine.stats.alpha import krippendorff_alpha
from engine.stats.categories import code_ratings, ratings_matrix
from engine.stats.icc import icc
from engine.stats.imrmc import read_imrmc
from engine.stats.mrmc import or_analysis
from engine.stats.results import StatsInputError

COLUMNS = ("reader", "case", "value")


def read_long_csv(path: str | Path) -> list[tuple[str, str, str]]:
    """``(reader, case, value)`` rows of a CSV whose header names the columns reader, case, value.

    Raises:
        StatsInputError: a missing or unreadable file, or a header without those three columns.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = {name.strip().lower(): name for name in (reader.fieldnames or [])}
            missing = [column for column in COLUMNS if column not in fields]
            if missing:
                raise StatsInputError(f"{path}: the header needs columns reader, case, value (missing {', '.join(missing)})")
            return [tuple((row[fields[c]] or "").strip() for c in COLUMNS) for row in reader]
    except FileNotFoundError:
        raise StatsInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise StatsInputError(f"{path}: cannot be read as CSV ({exc})") from None


def agreement_report(path: str | Path, level_of_measurement: str = "nominal", categories: list[str] | None = None) -> dict:
    """Every agreement statistic that applies to the answers in ``path`` at this level.

    Nominal and ordinal answers get percent agreement, Cohen's kappa for every pair of readers
    (weighted too when ordinal), Fleiss' kappa, Gwet's AC1 and Krippendorff's alpha; interval
    and ratio answers get Krippendorff's alpha and the six ICCs.
    """
    records = read_long_csv(path)
    if not records:
        raise StatsInputError(f"{path}: no ratings")
    readers, cases, matrix = ratings_matrix(records, str(path))
    if len(readers) < 2:
        raise StatsInputError(f"{path}: agreement needs at least two readers (found {len(readers)})")
    report: dict = {"file": str(path), "level_of_measurement": level_of_measurement, "readers": list(readers), "cases": len(cases)}
    alpha = krippendorff_alpha(matrix, level_of_measurement, categories)
    if level_of_measurement in ("nominal", "ordinal"):
        scale = list(code_ratings(matrix, categories).categories)
        report["categories"] = scale
        report["percent_agreement"] = percent_agreement(matrix, scale).to_dict()
        report["cohen_kappa"] = _pairwise_kappas(readers, matrix, scale, level_of_measurement)
        report["fleiss_kappa"] = fleiss_kappa(matrix, scale).to_dict()
        report["gwet_ac1"] = gwet_ac1(matrix, scale).to_dict()
    report["krippendorff_alpha"] = alpha.to_dict()
    if level_of_measurement in ("interval", "ratio"):
        report["icc"] = icc(matrix).to_dict()
    return report


def _pairwise_kappas(readers, matrix, scale, level_of_measurement) -> list[dict]:
    weights = (None,) if level_of_measurement == "nominal" else (None, "linear", "quadratic")
    out = []
    for a, b in combinations(range(len(readers)), 2):
        first, second = [row[a] for row in matrix], [row[b] for row in matrix]
        if sum(x is not None and y is not None for x, y in zip(first, second)) < 2:
            continue
        entry = {"readers": [readers[a], readers[b]]}
        for weight in weights:
            entry[weight or "unweighted"] = cohen_kappa(first, second, weight, scale).to_dict()
        out.append(entry)
    return out


def mrmc_report(path: str | Path, covariance: str = "jackknife") -> dict:
    """Per-reader and reader-averaged AUCs and the three OR analyses of the iMRMC file at ``path``."""
    data = read_imrmc(path)
    report = {"file": str(path)}
    report.update(or_analysis(data, covariance=covariance).to_dict())
    return report
