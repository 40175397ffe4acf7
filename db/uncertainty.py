"""The uncertainty record a Prediction keeps (``Prediction.uncertainty``), checked before it is stored.

The app measures uncertainty (``engine.analysis.uncertainty``: Monte Carlo dropout or test-time
augmentation, predictive entropy = aleatoric + epistemic) and hands the data layer a plain JSON
record; the data layer only checks its shape, so a stored record can always be shown again::

    method          "mc_dropout" or "tta"
    samples         draws per item (at least 1)
    label           how it was measured, in words ("test-time augmentation, 16 samples")
    rule            the rule that says "uncertain", in words
    thresholds      the rule's numbers: margin, aleatoric_share, epistemic_share, std_limit
    case            the case answer: answer ("verdict" or "item N"), total_entropy,
                    aleatoric_entropy, epistemic_mutual_information (nats), top_class_std,
                    uncertain (bool) and words
    items           per probability row: the same four numbers and uncertain as lists, and
                    optionally words (one sentence per row)

Other keys (augmentations, entropy_unit, the case's class and probability) are kept as given.
None means "not measured" (predictions stored before revision 0004, or made without it).
"""

from __future__ import annotations

from typing import Any

from db._checks import plain, require_finite, require_text
from db.errors import InvalidInput

METHODS = ("mc_dropout", "tta")
NUMBERS = ("total_entropy", "aleatoric_entropy", "epistemic_mutual_information", "top_class_std")
THRESHOLDS = ("margin", "aleatoric_share", "epistemic_share", "std_limit")


def _plain_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain_tree(v) for k, v in value.items()}
    value = plain(value)
    return [_plain_tree(v) for v in value] if isinstance(value, list) else value


def _non_negative(value: Any, what: str) -> float:
    number = require_finite(value, what)
    if number < 0:
        raise InvalidInput(f"{what}: {number} is negative")
    return number


def _flag(value: Any, what: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{what}: {value!r} is not true or false")
    return value


def _part(record: dict, key: str) -> dict:
    part = record.get(key)
    if not isinstance(part, dict):
        raise InvalidInput(f"prediction uncertainty: {key!r} must be an object, got {type(part).__name__}")
    return part


def check_uncertainty(record: Any, rows: int) -> dict[str, Any] | None:
    """``record`` checked against the shape above (None passes as "not measured").

    Args:
        record: the uncertainty record, or None.
        rows: how many probability rows the prediction has (each ``items`` list has one entry per row).

    Returns:
        The record as plain JSON (arrays turned into lists, numbers into floats), or None.

    Raises:
        InvalidInput: a missing or malformed part, named in one line.
    """
    if record is None:
        return None
    record = _plain_tree(record)
    if not isinstance(record, dict):
        raise InvalidInput(f"prediction uncertainty: expected an object, got {type(record).__name__}")
    if record.get("method") not in METHODS:
        raise InvalidInput(f"prediction uncertainty: method {record.get('method')!r} is not one of {METHODS}")
    samples = record.get("samples")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise InvalidInput(f"prediction uncertainty: samples {samples!r} must be a whole number of at least 1")
    record["label"] = require_text(record.get("label"), "prediction uncertainty label", 256)
    record["rule"] = require_text(record.get("rule"), "prediction uncertainty rule", 2000)
    thresholds = _part(record, "thresholds")
    record["thresholds"] = {**thresholds, **{k: _non_negative(thresholds.get(k), f"uncertainty threshold {k}")
                                             for k in THRESHOLDS}}
    case = _part(record, "case")
    record["case"] = {
        **case,
        **{k: _non_negative(case.get(k), f"case uncertainty {k}") for k in NUMBERS},
        "answer": require_text(case.get("answer"), "case uncertainty answer", 64),
        "uncertain": _flag(case.get("uncertain"), "case uncertainty uncertain"),
        "words": require_text(case.get("words"), "case uncertainty words", 4000),
    }
    items = _part(record, "items")
    for key in (*NUMBERS, "uncertain", *(("words",) if "words" in items else ())):
        values = items.get(key)
        if not isinstance(values, list) or len(values) != rows:
            count = len(values) if isinstance(values, list) else type(values).__name__
            raise InvalidInput(f"prediction uncertainty: items {key!r} has {count} entries for {rows} probability rows")
    record["items"] = {
        **items,
        **{k: [_non_negative(v, f"item uncertainty {k} [{i}]") for i, v in enumerate(items[k])] for k in NUMBERS},
        "uncertain": [_flag(v, f"item uncertainty uncertain [{i}]") for i, v in enumerate(items["uncertain"])],
    }
    if "words" in items:
        record["items"]["words"] = [require_text(v, f"item uncertainty words [{i}]", 4000)
                                    for i, v in enumerate(items["words"])]
    return record


#: The columns ``case_columns`` gives, in order (exports name them so).
CASE_COLUMNS = ("uncertainty_method", "uncertainty_samples", "uncertainty_answer", "total_entropy",
                "aleatoric_entropy", "epistemic_mutual_information", "top_class_std", "flagged_uncertain")


def case_columns(record: dict[str, Any] | None) -> dict[str, Any]:
    """The case answer's uncertainty of a stored record as flat export columns (``CASE_COLUMNS``):
    how it was measured (method, samples), which answer it judges, its entropies in nats and
    whether the rule flagged it uncertain; every column None when it was not measured."""
    if record is None:
        return dict.fromkeys(CASE_COLUMNS)
    case = record["case"]
    return {
        "uncertainty_method": record["method"], "uncertainty_samples": int(record["samples"]),
        "uncertainty_answer": case["answer"], **{k: float(case[k]) for k in NUMBERS},
        "flagged_uncertain": bool(case["uncertain"]),
    }

