"""Fixtures of the statistics tests: the published example studies in data/."""

from __future__ import annotations

import pytest

from tests.engine.stats.helpers import DATA


@pytest.fixture(scope="session")
def van_dyke():
    """The Van Dyke et al. (1993) study: 5 readers, 2 MRI modalities, 69 normal + 45 abnormal cases."""
    from engine.stats.imrmc import read_imrmc

    return read_imrmc(DATA / "VanDyke.imrmc")
