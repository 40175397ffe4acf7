"""Fixtures for the app tests."""

from __future__ import annotations

import logging

import pytest


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
