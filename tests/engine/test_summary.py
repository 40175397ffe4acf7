"""The one map summary (database, CLI JSON, window) and the one colour-range rule."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from engine.explain.summary import MapRange, colour_range, map_range, map_summary


def test_map_summary_of_a_known_map_and_json():
    summary = map_summary(np.array([-1.0, 0.0, 1.0, 2.0, np.nan]))
    assert (summary.min, summary.max, summary.mean) == (-1.0, 2.0, 0.5)
    assert summary.positive_fraction == 0.5
    assert summary.finite_fraction == 0.8
    assert summary.percentiles["p50"] == pytest.approx(0.5)
    assert summary.std == pytest.approx(np.std([-1.0, 0.0, 1.0, 2.0]))
    flat = json.loads(json.dumps(summary.to_dict()))
    assert flat["p50"] == pytest.approx(0.5) and flat["finite_fraction"] == 0.8
    assert all(isinstance(v, float) for v in flat.values()), "flat numbers, as db.runs stores them"


def test_map_summary_takes_torch_and_an_all_nan_map():
    assert map_summary(torch.tensor([[1.0, 3.0]])).max == 3.0
    empty = map_summary(np.full((2, 2), np.nan))
    assert empty.finite_fraction == 0.0 and empty.max == 0.0


def test_colour_range_never_inverts_and_never_collapses():
    assert colour_range(-2.0, 5.0, show_negative=False) == MapRange(0.0, 5.0)
    assert colour_range(-2.0, 5.0, show_negative=True) == MapRange(-2.0, 5.0)
    flat = colour_range(-3.0, -3.0, show_negative=False)
    assert flat.high > flat.low
    maps = np.stack([np.full((2, 2), 1.0), np.full((2, 2), 4.0)])
    assert map_range(maps, 0, "slice", False) == MapRange(0.0, 1.0)
    assert map_range(maps, 0, "volume", False) == MapRange(0.0, 4.0)
    with pytest.raises(ValueError, match="scope"):
        map_range(maps, 0, "study", False)


def test_summary_and_rendering_load_no_torch():
    """The viewer's model draws maps without the model layer: summary and render are numpy only."""
    code = "import sys, engine.explain.summary, engine.imaging.render; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
