"""Every CAM method a reader can pick has the name its paper gave it."""

from __future__ import annotations

from engine.explain.names import DISPLAY_NAMES, PERTURBATION_NAMES, display_name


def test_every_registered_method_has_a_display_name_and_no_name_is_orphaned():
    """The display table and the registries list the same identifiers."""
    from engine.explain import METHODS
    from engine.explain.perturbation import PERTURBATION_METHODS

    registered = set(METHODS) | set(PERTURBATION_METHODS)
    assert set(DISPLAY_NAMES) == registered
    assert PERTURBATION_NAMES == set(PERTURBATION_METHODS)


def test_display_names_are_the_papers_names():
    assert display_name("gradcampp") == "Grad-CAM++"
    assert display_name("cfcam") == "CF-CAM"
    assert display_name("scorecam") == "Score-CAM"
    assert display_name("mystery") == "mystery"  # an unknown identifier is shown as given
