"""The example study designs are accepted as they are and run end to end."""

from __future__ import annotations

import pytest

from db.studies import create_study
from db.study_examples import EXAMPLE_NAMES, example_design_mapping
from db.study_spec import design_from_mapping, maps_needed
from tests.db.study_world import build_world


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_each_example_design_is_accepted_and_creates_a_study(factory, name) -> None:
    design = design_from_mapping(example_design_mapping(name))
    assert maps_needed(design) == ({"gradcam", "eigencam"} if name == "pocovid" else {"gradcam"})
    world = build_world(factory, readers=2, cases=3)
    with factory.begin() as session:
        study = create_study(session, world.coordinator, design, world.cases, world.readers)
        assert (study.design, len(study.assignments)) == (
            ("counterbalanced", 6) if name == "pocovid" else ("sequential", 6)
        )


def test_examples_are_copies_and_unknown_names_are_listed() -> None:
    example_design_mapping("pocovid")["arms"].clear()
    assert len(example_design_mapping("pocovid")["arms"]) == 3
    with pytest.raises(KeyError, match="no example study 'x'; known: \\['pocovid', 'glioma-sequential'\\]"):
        example_design_mapping("x")
