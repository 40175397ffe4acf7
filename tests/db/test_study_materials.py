"""Case materials (grid and frozen maps by pseudonym) go to coordinators once a study is closed,
to an admin earlier, never to a reader, and name no source."""

from __future__ import annotations

import dataclasses

import pytest

from db.errors import NotAllowed
from db.studies import close_study
from db.study_materials import case_materials
from tests.db.study_world import NOON, SECRET_SOURCE, build_world, open_new_study, pocovid_design


def test_materials_follow_the_export_rules_and_carry_no_source(factory) -> None:
    world = build_world(factory, readers=2, cases=3)
    study_id = open_new_study(factory, world, pocovid_design())
    with factory() as session:
        with pytest.raises(NotAllowed, match="once closed"):
            case_materials(session, world.coordinator, study_id)
        with pytest.raises(NotAllowed, match="may not"):
            case_materials(session, world.readers[0], study_id)
        assert len(case_materials(session, world.admin, study_id)) == 3
    with factory.begin() as session:
        close_study(session, world.coordinator, study_id, now=NOON)
    with factory() as session:
        materials = case_materials(session, world.coordinator, study_id)
    assert [m.grid for m in materials] == [(8, 32, 32)] * 3 and {m.kind for m in materials} == {"clip"}
    assert all(set(m.maps) == {"gradcam", "eigencam"} for m in materials)
    assert all(m.maps["gradcam"].map_path.startswith("maps/gradcam-") for m in materials)
    text = repr([dataclasses.asdict(m) for m in materials])
    assert SECRET_SOURCE.split("/")[3] not in text and all(m.pseudonym.startswith(f"S{study_id}-C") for m in materials)
