"""``salience bench viewer`` drives the real window offscreen and prints its medians (a smoke run:
the figures themselves are for the bench's reader, never asserted as timings)."""

from __future__ import annotations

import re

from app.cli import main


def test_bench_viewer_prints_each_measure(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SALIENCE_HOME", str(tmp_path / "home"))
    assert main(["bench", "viewer", "--quick"]) == 0
    out = capsys.readouterr().out
    for size in (512, 1024):
        assert re.search(rf"slice change -> repainted with overlay, {size} x {size}, maps on the image grid: +[\d.]+ ms", out)
    assert "goal < 16 ms" in out
    assert re.search(r"cursor move -> three planes repainted with overlay, 512 x 512 x 96, maps on a 64 grid: +[\d.]+ ms",
                     out)
    assert re.search(r"cine with overlay, 512 x 512 clip asking 200 fps: [\d.]+ frames painted per second", out)
    assert re.search(r"open -> first image \(.+\), median of 1: \d+ ms", out)
    assert re.search(r"slide 6144 x 4096, 5 levels, .*: open -> first painted slide \d+ ms; zoom to full resolution "
                     r"-> sharp \d+ ms; pan repaint at full resolution \(median of 5\) [\d.]+ ms", out)
