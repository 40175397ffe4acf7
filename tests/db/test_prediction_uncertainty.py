"""A prediction's uncertainty (revision 0004): stored with it, read back as given, checked before
it is stored, and NULL ("not measured") for predictions made before it was kept."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.pool import NullPool

from db.cases import get_or_create_case
from db.errors import InvalidInput
from db.migrate import alembic_config, current_revision, upgrade
from db.runs import add_prediction, get_or_create_model_run, predictions_for_case
from db.session import make_engine, make_session_factory, sqlite_url

WEIGHTS = "e" * 64
ROWS = [[0.9, 0.1], [0.55, 0.45], [0.2, 0.8]]


def record() -> dict:
    """An uncertainty record as ``app.store.uncertainty_record`` writes it (test-time augmentation)."""
    words = [f"Not flagged as uncertain: slice {i + 1}." for i in range(3)]
    words[1] = "Uncertain: the top two classes are within 0.15 (normal 55%, tumour 45%)."
    return {
        "method": "tta", "label": "test-time augmentation, 8 samples", "samples": 8,
        "augmentations": ["identity"] + [f"hflip {i}" for i in range(7)], "entropy_unit": "nats",
        "rule": "uncertain when the top two classes are within 0.15, ...",
        "thresholds": {"margin": 0.15, "aleatoric_share": 0.75, "epistemic_share": 0.1, "std_limit": 0.1},
        "case": {"answer": "item 2", "class": "tumour", "probability": 0.8, "total_entropy": 0.5,
                 "aleatoric_entropy": 0.45, "epistemic_mutual_information": 0.05, "top_class_std": 0.04,
                 "uncertain": False, "words": "Not flagged as uncertain: tumour 80%."},
        "items": {"total_entropy": [0.3, 0.69, 0.5], "aleatoric_entropy": [0.3, 0.6, 0.45],
                  "epistemic_mutual_information": [0.0, 0.09, 0.05], "top_class_std": [0.01, 0.2, 0.04],
                  "uncertain": [False, True, False], "words": words},
    }


def _add(session, case_id: int, uncertainty=None):
    run = get_or_create_model_run(session, bundle_name="glioma", version="1.0.0", weights_sha256=WEIGHTS, device="cpu")
    return add_prediction(session, case_id=case_id, model_run_id=run.id, probabilities=ROWS,
                          class_names=["normal", "tumour"], item_axis="slice", uncertainty=uncertainty)


def test_a_prediction_keeps_its_uncertainty_and_an_unmeasured_one_stays_null(any_factory) -> None:
    """On SQLite and PostgreSQL: read back on a new session exactly as given; None is SQL NULL."""
    with any_factory.begin() as session:
        case = get_or_create_case(session, content_hash="a" * 64, source="/c", modality="MR", kind="volume",
                                  shape=(3, 3, 8, 8), task="glioma")
        measured = _add(session, case.id, record()).id
        unmeasured = _add(session, case.id).id
        case_id = case.id
    with any_factory() as session:
        by_id = {p.id: p for p in predictions_for_case(session, case_id)}
        assert by_id[measured].uncertainty == record()
        assert by_id[unmeasured].uncertainty is None
        nulls = session.scalar(sa.text("SELECT count(*) FROM predictions WHERE uncertainty IS NULL"))
    assert nulls == 1  # not the JSON text 'null': an old row and an unmeasured new one look alike


@pytest.mark.parametrize("change, message", [
    (lambda r: r.update(method="bootstrap"), "method 'bootstrap' is not one of"),
    (lambda r: r.update(samples=0), "samples 0 must be a whole number"),
    (lambda r: r["case"].pop("words"), "case uncertainty words"),
    (lambda r: r["case"].update(total_entropy=float("nan")), "case uncertainty total_entropy: nan is not finite"),
    (lambda r: r["case"].update(epistemic_mutual_information=-0.1), "is negative"),
    (lambda r: r["items"]["aleatoric_entropy"].pop(), "items 'aleatoric_entropy' has 2 entries for 3 probability rows"),
    (lambda r: r["items"]["uncertain"].__setitem__(0, "no"), r"item uncertainty uncertain \[0\]: 'no'"),
    (lambda r: r["thresholds"].pop("margin"), "uncertainty threshold margin"),
    (lambda r: r.pop("items"), "'items' must be an object"),
])
def test_a_malformed_record_is_refused_in_one_line(factory, seeded, change, message) -> None:
    broken = copy.deepcopy(record())
    change(broken)
    with factory.begin() as session:
        with pytest.raises(InvalidInput, match=message):
            _add(session, seeded.case, broken)
        assert _add(session, seeded.case, record()).uncertainty == record()  # the intact one passes


def _downgrade(url: str, revision: str) -> None:
    engine = make_engine(url, sqlite_foreign_keys=False, poolclass=NullPool)
    config = alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
    finally:
        engine.dispose()


def _columns(url: str) -> list[str]:
    engine = make_engine(url)
    try:
        return [c["name"] for c in sa.inspect(engine).get_columns("predictions")]
    finally:
        engine.dispose()


def test_revision_0004_adds_the_column_to_rows_that_exist_and_downgrades_keeping_them(tmp_path: Path) -> None:
    """A 0003 database with a prediction and a reading of it: upgraded, its prediction reads as
    not measured and can take a record; downgraded, the column goes and every row stays."""
    url = sqlite_url(tmp_path / "old.db")
    assert upgrade(url, "0003") == "0003"
    engine = make_engine(url)
    with engine.begin() as connection:
        for statement in (
            "INSERT INTO readers (username, display_name, role) VALUES ('alice', 'Alice', 'reader')",
            "INSERT INTO cases (source, content_hash, modality, kind, shape, task, header) "
            "VALUES ('/x', '" + "c" * 64 + "', 'MR', 'volume', '[1, 3, 8, 8]', 'glioma', '{}')",
            "INSERT INTO model_runs (bundle_name, version, weights_sha256, device) "
            "VALUES ('glioma', '1.0.0', '" + WEIGHTS + "', 'cpu')",
            "INSERT INTO predictions (case_id, model_run_id, probabilities, class_names, item_axis, calibrated, "
            "predicted_class) VALUES (1, 1, '[[0.9, 0.1], [0.55, 0.45], [0.2, 0.8]]', '[\"normal\", \"tumour\"]', "
            "'slice', 1, 'tumour')",
            "INSERT INTO readings (reader_id, case_id, prediction_id, diagnosis, confidence, comment, seconds_on_case) "
            "VALUES (1, 1, 1, 'tumour', 4, 'kept', 3.0)",
        ):
            connection.exec_driver_sql(statement)
    engine.dispose()
    assert "uncertainty" not in _columns(url)

    assert upgrade(url, "0004") == "0004"
    factory = make_session_factory(make_engine(url))
    with factory.begin() as session:
        [old] = predictions_for_case(session, 1)
        assert old.uncertainty is None and old.probabilities == ROWS  # not measured, nothing else changed
        _add(session, 1, record())
    with factory() as session:
        assert [p.uncertainty for p in predictions_for_case(session, 1)] == [record(), None]
    factory.kw["bind"].dispose()

    _downgrade(url, "0003")
    assert current_revision(url) == "0003" and "uncertainty" not in _columns(url)
    engine = make_engine(url)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT id, predicted_class FROM predictions ORDER BY id").all() == [
            (1, "tumour"), (2, "normal")]
        assert connection.exec_driver_sql("SELECT prediction_id, comment FROM readings").all() == [(1, "kept")]
        assert connection.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    engine.dispose()
    assert upgrade(url, "0004") == "0004" and "uncertainty" in _columns(url)
