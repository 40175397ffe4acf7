"""``salience bench cam``: what explaining costs next to plain inference, measured side by side.

For MONAI ``DenseNet121`` in 2-D and 3-D (random weights, fixed seed; layer
``class_layers.relu``), at batch 1 and at ``--batch N``, on the CPU or a CUDA device
(``--device auto|cpu|cuda[:N]``), it times, in one process with interleaved repetitions and
medians: plain inference (``torch.no_grad`` forward), each gradient method for one class (our
``explain_all`` with one method), all single-capture methods for all classes from one capture,
Smooth Grad-CAM++ (its noisy copies ride in one batched pass), and MONAI's ``GradCAM`` as the
reference. Each operation is run once untimed first; the order rotates every round; on CUDA
every run ends with a device synchronisation, so the clock reads finished work. Targets are
judged on medians; the fastest run is printed too, as the machine may be shared. A summary
table (one row per input and batch) closes the report.

Memory on the CPU: torch allocates outside ``tracemalloc``'s view, so each memory figure comes
from a fresh subprocess that builds the model and input, runs the operation once on a small
input (so lazy start-up such as autograd threads and LAPACK buffers is paid), resets the
kernel's peak-RSS counter (``/proc/self/clear_refs`` = 5), runs the operation once on the real
input and reads ``VmHWM`` from ``/proc/self/status`` (Linux only). Memory on CUDA: in this
process, a fresh model and input per operation, one untimed run, then
``torch.cuda.max_memory_allocated`` over one run after ``reset_peak_memory_stats``. "Working"
memory is the peak minus what was in use just before the operation; "peak" is the whole peak
(the process's RSS on the CPU; the weights, input and everything allocated on CUDA).

Targets: any gradient method <= 1.15x inference time, all methods for all classes <= 1.3x on
the CPU (1.5x on a GPU, issue 13), peak memory <= 1.25x inference (1.1x on a GPU).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.device import DEVICE_CHOICES, resolve_device, synchronize
from engine.explain.all_methods import SINGLE_CAPTURE_METHODS, explain_all

LAYER = "class_layers.relu"
TIME_TARGET_ONE = 1.15
TIME_TARGET_ALL = {"cpu": 1.30, "cuda": 1.5}
MEMORY_TARGET = {"cpu": 1.25, "cuda": 1.1}
MEMORY_KINDS = ("inference", "gradcam", "all", "monai")
ALL = "all methods, all classes"
MONAI = "MONAI GradCAM (reference)"


@dataclass(frozen=True)
class Case:
    """One benchmark setting: a DenseNet121 and an input shape (without the batch)."""

    name: str
    spatial_dims: int
    in_channels: int
    classes: int
    size: tuple[int, ...]

    def describe(self, batch: int = 1) -> str:
        shape = "x".join(str(s) for s in (batch, self.in_channels) + self.size)
        return f"{self.name}: DenseNet121 {shape}, {self.classes} classes, layer {LAYER}"

    def label(self, batch: int) -> str:
        """The input as the summary table names it: ``2-D 224², batch 8``, ``3-D 4 x 96³, batch 1``."""
        power = {2: "\u00b2", 3: "\u00b3"}[self.spatial_dims]
        side = f"{self.size[0]}{power}" if len(set(self.size)) == 1 else "x".join(map(str, self.size))
        channels = f"{self.in_channels} x " if self.spatial_dims == 3 else ""
        return f"{self.spatial_dims}-D {channels}{side}, batch {batch}"


CASES = {
    False: (Case("2D", 2, 3, 3, (224, 224)), Case("3D", 3, 4, 2, (96, 96, 96))),
    True: (Case("2D", 2, 3, 3, (128, 128)), Case("3D", 3, 4, 2, (64, 64, 64))),
}


def build(case: Case, batch: int = 1, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, torch.Tensor]:
    """The case's network (random weights, seed 0, eval mode) and a random input (seed 1), on ``device``.

    The input is drawn on the CPU and moved, so every device sees the same numbers.
    """
    from monai.networks.nets import DenseNet121

    torch.manual_seed(0)
    model = DenseNet121(spatial_dims=case.spatial_dims, in_channels=case.in_channels, out_channels=case.classes)
    x = torch.randn((batch, case.in_channels) + case.size, generator=torch.Generator().manual_seed(1))
    return model.eval().to(device), x.to(device)


def operations(
    model: torch.nn.Module, x: torch.Tensor, smooth_samples: int, single: tuple[str, ...] = SINGLE_CAPTURE_METHODS
) -> dict[str, Callable[[], object]]:
    """Name -> zero-argument callable, for every operation timed.

    Args:
        model, x: from ``build``.
        smooth_samples: noisy copies for the Smooth Grad-CAM++ run; 0 leaves that run out.
        single: the methods timed alone for one class.
    """
    from monai.visualize import GradCAM

    def inference():
        with torch.no_grad():
            return model(x)

    # MONAI's wrapper leaves hooks on and edits its module: give it its own copy.
    monai_gradcam = GradCAM(nn_module=copy.deepcopy(model), target_layers=LAYER)
    ops: dict[str, Callable[[], object]] = {"inference": inference}
    for name in single:
        ops[f"{name} (1 class)"] = lambda name=name: explain_all(model, x, LAYER, classes=[0], methods=[name])
    ops[ALL] = lambda: explain_all(model, x, LAYER)
    if smooth_samples > 0:
        ops[f"smoothgradcampp ({smooth_samples} noisy, 1 class)"] = lambda: explain_all(
            model, x, LAYER, classes=[0], methods=["smoothgradcampp"], noise_samples=smooth_samples
        )
    ops[MONAI] = lambda: monai_gradcam(x, class_idx=0)
    return ops


def time_interleaved(
    ops: dict[str, Callable[[], object]], repeats: int, device: torch.device | str = "cpu"
) -> dict[str, list[float]]:
    """Seconds per run of each operation; each runs once untimed, then ``repeats`` rotating rounds.

    On CUDA the device is synchronised before the clock starts and before it stops.
    """
    device = torch.device(device)
    names = list(ops)
    for name in names:
        ops[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            start = time.perf_counter()
            result = ops[name]()
            synchronize(device)
            samples[name].append(time.perf_counter() - start)
            del result
    return samples


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _memory_operation(kind: str, model: torch.nn.Module) -> Callable[[torch.Tensor], object]:
    if kind == "monai":
        from monai.visualize import GradCAM

        monai_gradcam = GradCAM(nn_module=model, target_layers=LAYER)
        return lambda x: monai_gradcam(x, class_idx=0)
    if kind == "inference":
        return lambda x: _no_grad_forward(model, x)
    if kind == "gradcam":
        return lambda x: explain_all(model, x, LAYER, classes=[0], methods=["gradcam"])
    return lambda x: explain_all(model, x, LAYER)


def _no_grad_forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


def probe_memory(case: Case, kind: str, batch: int = 1) -> dict[str, int]:
    """Run one operation in this (fresh) process; RSS before it and peak RSS during it, in kB.

    The operation first runs once on a 32-voxel-wide input so that one-time start-up (autograd
    engine threads, LAPACK buffers) is not counted as the operation's working memory.
    """
    model, x = build(case, batch)
    run = _memory_operation(kind, model)
    run(torch.zeros((1, case.in_channels) + (32,) * case.spatial_dims))
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM to the current RSS
    before = _status_kb("VmRSS")
    result = run(x)
    # The kernel folds each thread's RSS counters into VmHWM lazily (a few pages at a time), so
    # the mark can trail the RSS read before the run by some kB; the peak is at least both.
    peak = max(_status_kb("VmHWM"), _status_kb("VmRSS"), before)
    del result
    return {"before_kb": before, "peak_kb": peak}


def probe_cuda_memory(case: Case, kind: str, batch: int, device: torch.device) -> dict[str, int]:
    """CUDA memory allocated before one run of the operation and at its peak, in kB.

    A fresh model and input per operation (MONAI's wrapper edits its module); one untimed run
    first so cuDNN's choices and workspaces are settled.
    """
    model, x = build(case, batch, device)
    run = _memory_operation(kind, model)
    run(x)
    synchronize(device)
    gc.collect()
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    result = run(x)
    synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    del result, run, model, x
    gc.collect()
    return {"before_kb": before // 1024, "peak_kb": peak // 1024}


def measure_memory(
    case: Case, quick: bool, threads: int | None, batch: int = 1, device: torch.device | str = "cpu"
) -> dict[str, dict[str, int]]:
    """Peak memory of each operation: in-process on CUDA, one fresh subprocess each on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return {kind: probe_cuda_memory(case, kind, batch, device) for kind in MEMORY_KINDS}
    results = {}
    for kind in MEMORY_KINDS:
        command = [sys.executable, "-m", "engine.bench.cam", "--memory-probe", case.name, kind, "--batch", str(batch)]
        command += (["--quick"] if quick else []) + ([f"--threads={threads}"] if threads else [])
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[kind] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def _verdict(ratio: float, target: float) -> str:
    if ratio <= target:
        return f"<= {target:.2f} met"
    return f"<= {target:.2f} MISSED by {100 * (ratio / target - 1):.1f}%"


def _threads(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{torch.get_num_threads()} threads"


def report_times(
    case: Case, samples: dict[str, list[float]], batch: int = 1, device: torch.device | str = "cpu"
) -> list[str]:
    """Median time and its ratio to inference (judged against the targets), and the fastest run."""
    device = torch.device(device)
    medians = {name: statistics.median(values) for name, values in samples.items()}
    fastest = {name: min(values) for name, values in samples.items()}
    lines = [
        f"{case.describe(batch)} on {device} ({_threads(device)}); {len(samples['inference'])} interleaved rounds",
        f"  {'operation':<38}{'median ms':>10}{'x inf':>7}{'min ms':>9}{'x inf':>7}   target (on the median)",
    ]
    for name in samples:
        ratio = medians[name] / medians["inference"]
        if name.endswith("(1 class)"):
            target = _verdict(ratio, TIME_TARGET_ONE)
        elif name == ALL:
            target = _verdict(ratio, TIME_TARGET_ALL[device.type])
        else:
            target = ""
        lines.append(
            f"  {name:<38}{1000 * medians[name]:>10.1f}{ratio:>7.2f}"
            f"{1000 * fastest[name]:>9.1f}{fastest[name] / fastest['inference']:>7.2f}   {target}"
        )
    return lines


def memory_ratios(memory: dict[str, dict[str, int]]) -> dict[str, float]:
    """Each operation's whole peak over inference's whole peak."""
    return {kind: memory[kind]["peak_kb"] / memory["inference"]["peak_kb"] for kind in memory}


def report_memory(memory: dict[str, dict[str, int]], device: torch.device | str = "cpu") -> list[str]:
    device = torch.device(device)
    working = {k: (v["peak_kb"] - v["before_kb"]) / 1024 for k, v in memory.items()}
    peak = {k: v["peak_kb"] / 1024 for k, v in memory.items()}
    ratios = memory_ratios(memory)
    where = "CUDA allocated, fresh model each" if device.type == "cuda" else "process RSS, fresh process each"
    lines = [f"  {'peak memory (' + where + ')':<38}{'work MB':>10}{'x inf':>7}"
             f"{'peak MB':>9}{'x inf':>7}   target (on the peak)"]
    for kind in MEMORY_KINDS:
        w_ratio = working[kind] / working["inference"] if working["inference"] > 0 else float("nan")
        target = "" if kind in ("inference", "monai") else _verdict(ratios[kind], MEMORY_TARGET[device.type])
        lines.append(f"  {kind:<38}{working[kind]:>10.1f}{w_ratio:>7.2f}{peak[kind]:>9.1f}{ratios[kind]:>7.2f}   {target}")
    return lines


@dataclass(frozen=True)
class SummaryRow:
    """One line of the closing table: an input at one batch size.

    Attributes:
        label: the input (``Case.label``).
        inference_ms: median and fastest inference time.
        ratios: operation -> (median ratio, fastest ratio) to inference, for Grad-CAM, all
            methods and MONAI.
        memory: peak-memory ratio to inference of Grad-CAM, all methods and MONAI; None if not measured.
    """

    label: str
    inference_ms: tuple[float, float]
    ratios: dict[str, tuple[float, float]]
    memory: tuple[float, float, float] | None


SUMMARY_OPERATIONS = (("Grad-CAM", "gradcam (1 class)"), ("all methods x all classes", ALL), ("MONAI GradCAM", MONAI))


def summary_row(case: Case, batch: int, samples: dict[str, list[float]], memory: dict | None) -> SummaryRow:
    median = {name: statistics.median(values) for name, values in samples.items()}
    fastest = {name: min(values) for name, values in samples.items()}
    ratios = {
        title: (median[name] / median["inference"], fastest[name] / fastest["inference"])
        for title, name in SUMMARY_OPERATIONS
        if name in samples
    }
    mem = None
    if memory is not None:
        r = memory_ratios(memory)
        mem = (r["gradcam"], r["all"], r["monai"])
    return SummaryRow(case.label(batch), (1000 * median["inference"], 1000 * fastest["inference"]), ratios, mem)


def format_summary(rows: list[SummaryRow], device: torch.device | str = "cpu") -> list[str]:
    """The issue's table in Markdown: medians, with the fastest runs in brackets."""
    header = ["input", "inference ms"] + [title for title, _ in SUMMARY_OPERATIONS]
    header.append("peak memory / inference (Grad-CAM, all, MONAI)")
    lines = [
        f"Summary on {torch.device(device)}: median (fastest) time, ratios to inference",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for row in rows:
        cells = [row.label, f"{row.inference_ms[0]:.1f} ({row.inference_ms[1]:.1f})"]
        for title, _ in SUMMARY_OPERATIONS:
            cells.append(f"{row.ratios[title][0]:.2f}x ({row.ratios[title][1]:.2f}x)" if title in row.ratios else "-")
        cells.append("-" if row.memory is None else ", ".join(f"{r:.2f}" for r in row.memory))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _single_methods(text: str | None) -> tuple[str, ...]:
    if text is None:
        return SINGLE_CAPTURE_METHODS
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in SINGLE_CAPTURE_METHODS]
    if unknown:
        raise SystemExit(f"salience bench cam: error: --single: unknown methods {unknown}; known: {list(SINGLE_CAPTURE_METHODS)}")
    if "gradcam" not in names:
        names = ("gradcam",) + names  # the summary's Grad-CAM column
    return names


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="salience bench cam", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs (2D 128x128, 3D 64^3)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5, quick 3)")
    parser.add_argument("--cases", default="2D,3D", help="comma-separated: 2D, 3D")
    parser.add_argument("--device", default="auto", help=f"{DEVICE_CHOICES} (auto: CUDA when torch sees it)")
    parser.add_argument("--batch", type=int, default=1, help="also measure this batch size (batch 1 is always measured)")
    parser.add_argument("--single", default=None, help="methods timed alone for one class (default: every one)")
    parser.add_argument("--smooth-samples", type=int, default=8, help="noisy copies for Smooth Grad-CAM++ (0: skip)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurements")
    parser.add_argument("--memory-probe", nargs=2, metavar=("CASE", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error(f"--batch must be at least 1, got {args.batch}")
    if args.repeats is not None and args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    unknown = [n for n in args.cases.split(",") if n.strip() not in ("2D", "3D")]
    if unknown:
        parser.error(f"--cases: unknown {unknown}; known: 2D, 3D")
    return args


def run(args: argparse.Namespace, print_line: Callable[[str], None] = print) -> list[SummaryRow]:
    """Measure every case at batch 1 and ``args.batch`` and print the report; returns the summary rows."""
    device = resolve_device(args.device)
    cases = {case.name: case for case in CASES[args.quick]}
    repeats = args.repeats or (3 if args.quick else 5)
    single = _single_methods(args.single)
    batches = sorted({1, args.batch})
    rows = []
    for name in args.cases.split(","):
        case = cases[name.strip()]
        for batch in batches:
            model, x = build(case, batch, device)
            samples = time_interleaved(operations(model, x, args.smooth_samples, single), repeats, device)
            del model, x
            print_line("\n".join(report_times(case, samples, batch, device)))
            memory = None
            if not args.no_memory:
                memory = measure_memory(case, args.quick, args.threads, batch, device)
                print_line("\n".join(report_memory(memory, device)))
            rows.append(summary_row(case, batch, samples, memory))
            print_line("")
    print_line("\n".join(format_summary(rows, device)))
    return rows


def main(argv: list[str]) -> int:
    """Print the CAM cost table. Returns 0."""
    args = parse_arguments(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_probe:
        case_name, kind = args.memory_probe
        cases = {case.name: case for case in CASES[args.quick]}
        print(json.dumps(probe_memory(cases[case_name], kind, args.batch)))
        return 0
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
