"""``salience bench cam``: device choice, batch sizes, the summary table, memory probes."""

from __future__ import annotations

import pytest
import torch

from engine.bench import cam as bench
from engine.device import DeviceError, resolve_device
from tests.engine.test_capture import tiny_densenet

TINY = bench.Case("2D", 2, 1, 3, (32, 32))


def _tiny_build(case, batch=1, device="cpu"):
    x = torch.randn((batch, case.in_channels) + case.size, generator=torch.Generator().manual_seed(1))
    return tiny_densenet(2, case.in_channels, case.classes).to(device), x.to(device)


@pytest.fixture
def tiny_bench(monkeypatch):
    monkeypatch.setattr(bench, "CASES", {False: (TINY,), True: (TINY,)})
    monkeypatch.setattr(bench, "build", _tiny_build)


def test_resolve_device_names(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    assert resolve_device("CPU") == torch.device("cpu")
    with pytest.raises(DeviceError, match="'cuda': torch sees no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(DeviceError, match=r"'gpu': expected auto\|cpu\|cuda\[:N\]"):
        resolve_device("gpu")
    with pytest.raises(DeviceError, match="expected"):
        resolve_device("cuda:x")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match=r"torch sees 2 CUDA devices \(cuda:0 to cuda:1\)"):
        resolve_device("cuda:2")


def test_an_unavailable_device_is_one_line_from_the_command(monkeypatch, capsys):
    from app.cli import EXIT_BAD_INPUT, main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["bench", "cam", "--device", "cuda", "--no-memory"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["salience: error: device 'cuda': torch sees no CUDA device (a CPU build of torch, or no GPU driver)"]


def test_run_measures_batch_one_and_n_and_prints_the_summary(tiny_bench):
    lines: list[str] = []
    args = bench.parse_arguments(
        ["--device", "cpu", "--batch", "3", "--cases", "2D", "--repeats", "2", "--single", "xgradcam",
         "--smooth-samples", "2", "--no-memory"]
    )
    rows = bench.run(args, print_line=lines.append)
    text = "\n".join(lines)
    assert [row.label for row in rows] == ["2-D 32², batch 1", "2-D 32², batch 3"]
    assert "2D: DenseNet121 3x1x32x32" in text and "2 interleaved rounds" in text
    for name in ("inference", "gradcam (1 class)", "xgradcam (1 class)", bench.ALL,
                 "smoothgradcampp (2 noisy, 1 class)", bench.MONAI):
        assert text.count(f"  {name} ") == 2, name
    for row in rows:
        assert row.memory is None and row.inference_ms[1] <= row.inference_ms[0]
        assert set(row.ratios) == {"Grad-CAM", "all methods x all classes", "MONAI GradCAM"}
        assert all(fastest > 0 and median > 0 for median, fastest in row.ratios.values())
    table = lines[-1].splitlines()
    assert table[1].startswith("| input | inference ms | Grad-CAM |") and len(table) == 5
    assert table[3].startswith("| 2-D 32², batch 1 |") and table[4].endswith("| - |")


def test_summary_table_shows_medians_fastest_runs_and_memory_ratios():
    row = bench.SummaryRow(
        "3-D 4 x 96³, batch 2", (21.25, 20.0),
        {"Grad-CAM": (1.32, 1.3), "all methods x all classes": (2.38, 2.0), "MONAI GradCAM": (4.12, 4.0)},
        (1.0, 1.04, 5.6),
    )
    lines = bench.format_summary([row], "cuda:0")
    assert lines[0].startswith("Summary on cuda:0")
    assert lines[3] == "| 3-D 4 x 96³, batch 2 | 21.2 (20.0) | 1.32x (1.30x) | 2.38x (2.00x) | 4.12x (4.00x) | 1.00, 1.04, 5.60 |"


def test_memory_ratios_come_from_whole_peaks():
    memory = {kind: {"before_kb": 100, "peak_kb": peak} for kind, peak in
              zip(bench.MEMORY_KINDS, (1000, 1010, 1100, 5000))}
    assert bench.memory_ratios(memory) == {"inference": 1.0, "gradcam": 1.01, "all": 1.1, "monai": 5.0}
    lines = bench.report_memory(memory)
    assert "process RSS" in lines[0] and "<= 1.25 met" in lines[2]


def test_probe_memory_reads_the_process_peak(tiny_bench):
    probe = bench.probe_memory(TINY, "all", batch=2)
    assert 0 < probe["before_kb"] <= probe["peak_kb"]


@pytest.mark.parametrize("argv", [["--batch", "0"], ["--cases", "4D"], ["--repeats", "0"], ["--single", "nosuch"]])
def test_bad_options_stop_with_a_message(argv):
    with pytest.raises(SystemExit):
        bench._single_methods(bench.parse_arguments(argv).single)
