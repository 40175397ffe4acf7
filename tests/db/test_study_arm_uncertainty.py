"""``show_uncertainty`` of a study arm: read from a study file (default true), kept through
``design_of``, and given to arms of studies made before revision 0006 as true."""

from __future__ import annotations

from pathlib import Path

import pytest

from db.errors import InvalidInput
from db.migrate import head_revision, upgrade
from db.session import make_engine, sqlite_url
from db.study_examples import EXAMPLE_NAMES, example_design_mapping
from db.study_spec import ArmSpec, design_from_mapping, shows_uncertainty

FILE = {
    "name": "s", "task": "glioma", "design": "counterbalanced",
    "arms": [{"name": "unaided"}, {"name": "ai", "shows_prediction": True}],
    "questions": [{"key": "dx", "prompt": "Diagnosis", "kind": "single_choice", "options": ["a", "b"]}],
}


def _with_ai_arm(**fields) -> dict:
    return {**FILE, "arms": [FILE["arms"][0], {**FILE["arms"][1], **fields}]}


def test_a_study_file_without_the_field_shows_the_uncertainty_with_the_ai() -> None:
    design = design_from_mapping(FILE)
    assert [arm.show_uncertainty for arm in design.arms] == [True, True]
    assert shows_uncertainty(design.arms[1], 1, "counterbalanced")
    assert not shows_uncertainty(design.arms[0], 1, "counterbalanced")  # no AI, so no uncertainty


def test_show_uncertainty_false_is_read_and_hides_it() -> None:
    design = design_from_mapping(_with_ai_arm(show_uncertainty=False))
    assert design.arms[1] == ArmSpec("ai", True, None, False)
    assert not shows_uncertainty(design.arms[1], 1, "counterbalanced")


def test_show_uncertainty_must_be_true_or_false() -> None:
    with pytest.raises(InvalidInput, match="study file arm 1: show_uncertainty 'no' must be true or false"):
        design_from_mapping(_with_ai_arm(show_uncertainty="no"))


def test_a_sequential_arm_shows_the_uncertainty_only_in_the_aided_step() -> None:
    arm = ArmSpec("ai", True)
    assert not shows_uncertainty(arm, 1, "sequential") and shows_uncertainty(arm, 2, "sequential")


def test_the_shipped_example_study_files_still_read() -> None:
    for name in EXAMPLE_NAMES:
        design = design_from_mapping(example_design_mapping(name))
        assert all(arm.show_uncertainty for arm in design.arms)


def test_arms_of_a_study_made_before_0006_show_the_uncertainty_after_the_upgrade(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "old.db")
    assert upgrade(url, "0005") == "0005"
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("INSERT INTO readers (username, display_name, role) VALUES ('cora', 'Cora', 'coordinator')")
        connection.exec_driver_sql(
            "INSERT INTO studies (name, description, task, status, design, washout_days, repeat_fraction, order_seed, "
            "allow_revisions, created_by_id) VALUES ('old', '', 'glioma', 'draft', 'counterbalanced', 0, 0.0, 1, 0, 1)")
        connection.exec_driver_sql(
            "INSERT INTO study_arms (study_id, position, name, shows_prediction, cam_method) "
            "VALUES (1, 0, 'unaided', 0, NULL), (1, 1, 'ai', 1, 'gradcam')")
    engine.dispose()
    assert upgrade(url) == head_revision()
    engine = make_engine(url)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql("SELECT name, show_uncertainty FROM study_arms ORDER BY position").all()
    engine.dispose()
    assert rows == [("unaided", 1), ("ai", 1)]
