"""The CUDA device check: its comparison runs (here CPU against CPU) and its no-CUDA answer."""

from __future__ import annotations

import torch

from engine.bench import device_check
from engine.explain.methods import METHODS


def test_without_cuda_it_says_so_in_one_line_and_succeeds(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device_check.main([]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "no CUDA device" in out[0] and torch.__version__ in out[0]


def test_the_comparison_covers_every_method_and_agrees_with_itself():
    rows = device_check.compare_devices("cpu", "cpu", 2)
    names = {row.method for row in rows}
    assert names == set(METHODS) | {"scorecam", "occlusion", "cfcam clusters"}
    assert all(row.within and row.relative_difference == 0.0 for row in rows)
    table = device_check.format_comparisons(rows, "cpu", "cpu")
    assert len(table) == 3 + len(names) + 1 and table[-1].startswith("equality: all within")


def test_a_differing_map_is_reported_and_fails_the_check(monkeypatch, capsys):
    """The CUDA branch of main, pointed at the CPU, with one method made to disagree."""
    real = device_check.all_maps
    calls = []

    def one_off(model, x):
        maps = real(model, x)
        calls.append(1)
        if len(calls) % 2 == 0:  # the second device of each comparison
            maps["gradcam"] = maps["gradcam"] * 1.01
        return maps

    monkeypatch.setattr(device_check, "all_maps", one_off)
    monkeypatch.setattr(device_check, "INPUTS", {2: (2, 1, 32, 32)})
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "a test device")
    assert device_check.main(["--device", "cpu", "--no-bench"]) == 1
    out = capsys.readouterr().out
    assert "| gradcam | 1.0e-02 DIFFERS |" in out
    assert "equality: DIFFER: gradcam (2-D)" in out


def test_relative_difference():
    a = torch.tensor([[1.0, -4.0], [2.0, 0.0]])
    assert device_check.relative_difference(a, a) == 0.0
    assert device_check.relative_difference(a, a + torch.tensor([[0.0, 0.5], [0.0, 0.0]])) == 0.125
    assert device_check.relative_difference(torch.zeros(3), torch.full((3,), 0.5)) == 0.5
    assert device_check.relative_difference(a, a[0]) == float("inf")
