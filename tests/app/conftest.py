"""Fixtures for the app tests: one closed reader study built through the data layer (per worker)."""

from __future__ import annotations

import pytest

from tests.app.study_sim import SimStudy, build_sim_study


@pytest.fixture(scope="session")
def sim_study(tmp_path_factory) -> SimStudy:
    """Two closed studies (fully crossed binormal, and sequential) in a Salience home folder; ~15 s."""
    return build_sim_study(tmp_path_factory.mktemp("study-home") / "home")


@pytest.fixture
def sim_env(sim_study, monkeypatch) -> SimStudy:
    """The environment ``salience`` reads its settings from, pointing at the simulated study."""
    monkeypatch.setenv("SALIENCE_HOME", str(sim_study.home))
    monkeypatch.delenv("SALIENCE_DB_URL", raising=False)
    monkeypatch.setenv("SALIENCE_READER", "carol")
    return sim_study
