"""Shared fixtures: the real data beside the checkout, and a headless Qt platform."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The suite runs in two xdist workers on two cores: one torch thread each, or they fight.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
# The CLI logs to the data folder: the suite's runs (and the commands it starts) write to a
# folder of their own, never to the user's.
os.environ.setdefault("SALIENCE_HOME", tempfile.mkdtemp(prefix="salience-test-home-"))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip with a reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real images not found at {SHARED_DATA} (expected ../shared/data beside the checkout)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def glioma_case(shared_data: Path) -> Path:
    """One glioma patient folder (t1, flair, t1ce and the FLAIR abnormality mask)."""
    case = shared_data / "glioma-lgg" / "TCGA_CS_4941_19960909"
    if not case.is_dir():
        pytest.skip(f"{case} is missing")
    return case
