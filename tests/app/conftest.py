"""Fixtures for the app tests: logging left as found, and one closed reader study built through
the data layer (per worker)."""

from __future__ import annotations

import logging

import pytest

from tests.app.study_sim import SimStudy, build_sim_study


@pytest.fixture(autouse=True)
def _undo_logging():
    """Each test leaves logging as it found it. Tests call the CLI's ``main`` in this process,
    which routes logging and Python warnings (``app.logs``), and ``lint_imports`` runs
    ``logging.config.dictConfig``, which disables every logger that exists at that moment."""
    loggers = logging.Logger.manager.loggerDict
    disabled = {name: logger.disabled for name, logger in loggers.items() if isinstance(logger, logging.Logger)}
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)
    for handler in [h for h in root.handlers if getattr(h, "_salience", False)]:
        root.removeHandler(handler)
        handler.close()
    logging.captureWarnings(False)
    for name, logger in list(loggers.items()):
        if isinstance(logger, logging.Logger):
            logger.disabled = disabled.get(name, False)


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
    monkeypatch.setenv("SALIENCE_SINGLE_USER", "1")  # the simulated accounts have no password
    return sim_study
