"""``salience bench cam``: what explaining costs next to plain inference, measured side by side.

For MONAI ``DenseNet121`` in 2-D and 3-D (random weights, fixed seed; layer
``class_layers.relu``) it times, in one process with interleaved repetitions and medians:
plain inference (``torch.no_grad`` forward), each gradient method for one class (our
``explain_all`` with one method), all single-capture methods for all classes from one capture,
Smooth Grad-CAM++ (its noisy copies ride in one batched pass), and MONAI's ``GradCAM`` as the
reference. Each operation is run once untimed first; the order rotates every round. Targets are
judged on medians; the fastest run is printed too, as the machine may be shared.

Memory: torch allocates outside ``tracemalloc``'s view, so each memory figure comes from a fresh
subprocess that builds the model and input, runs the operation once on a small input (so lazy
start-up such as autograd threads and LAPACK buffers is paid), resets the kernel's peak-RSS
counter (``/proc/self/clear_refs`` = 5), runs the operation once on the real input and reads
``VmHWM`` from ``/proc/self/status`` (Linux only). "Working" memory is that peak minus the RSS just
before the operation (what the operation itself needs); "process" is the whole peak (torch,
weights, start-up buffers and all).

Targets from the issue: any gradient method <= 1.15x inference time, all methods for all classes
<= 1.3x, peak memory <= 1.25x inference.
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

from engine.explain.all_methods import SINGLE_CAPTURE_METHODS, explain_all

LAYER = "class_layers.relu"
TIME_TARGET_ONE = 1.15
TIME_TARGET_ALL = 1.30
MEMORY_TARGET = 1.25
MEMORY_KINDS = ("inference", "gradcam", "all", "monai")


@dataclass(frozen=True)
class Case:
    """One benchmark setting: a DenseNet121 and an input shape."""

    name: str
    spatial_dims: int
    in_channels: int
    classes: int
    size: tuple[int, ...]

    def describe(self) -> str:
        shape = "x".join(str(s) for s in (1, self.in_channels) + self.size)
        return f"{self.name}: DenseNet121 {shape}, {self.classes} classes, layer {LAYER}"


CASES = {
    False: (Case("2D", 2, 3, 3, (224, 224)), Case("3D", 3, 4, 2, (96, 96, 96))),
    True: (Case("2D", 2, 3, 3, (128, 128)), Case("3D", 3, 4, 2, (64, 64, 64))),
}


def build(case: Case) -> tuple[torch.nn.Module, torch.Tensor]:
    """The case's network (random weights, seed 0, eval mode) and a random input (seed 1)."""
    from monai.networks.nets import DenseNet121

    torch.manual_seed(0)
    model = DenseNet121(spatial_dims=case.spatial_dims, in_channels=case.in_channels, out_channels=case.classes)
    x = torch.randn((1, case.in_channels) + case.size, generator=torch.Generator().manual_seed(1))
    return model.eval(), x


def operations(model: torch.nn.Module, x: torch.Tensor, smooth_samples: int) -> dict[str, Callable[[], object]]:
    """Name -> zero-argument callable, for every operation timed."""
    from monai.visualize import GradCAM

    def inference():
        with torch.no_grad():
            return model(x)

    # MONAI's wrapper leaves hooks on and edits its module: give it its own copy.
    monai_gradcam = GradCAM(nn_module=copy.deepcopy(model), target_layers=LAYER)
    ops: dict[str, Callable[[], object]] = {"inference": inference}
    for name in SINGLE_CAPTURE_METHODS:
        ops[f"{name} (1 class)"] = lambda name=name: explain_all(model, x, LAYER, classes=[0], methods=[name])
    ops["all methods, all classes"] = lambda: explain_all(model, x, LAYER)
    ops[f"smoothgradcampp ({smooth_samples} noisy, 1 class)"] = lambda: explain_all(
        model, x, LAYER, classes=[0], methods=["smoothgradcampp"], noise_samples=smooth_samples
    )
    ops["MONAI GradCAM (reference)"] = lambda: monai_gradcam(x, class_idx=0)
    return ops


def time_interleaved(ops: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per run of each operation; each runs once untimed, then ``repeats`` rotating rounds."""
    names = list(ops)
    for name in names:
        ops[name]()
    samples: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            ops[name]()
            samples[name].append(time.perf_counter() - start)
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


def probe_memory(case: Case, kind: str) -> dict[str, int]:
    """Run one operation in this (fresh) process; RSS before it and peak RSS during it, in kB.

    The operation first runs once on a 32-voxel-wide input so that one-time start-up (autograd
    engine threads, LAPACK buffers) is not counted as the operation's working memory.
    """
    model, x = build(case)
    run = _memory_operation(kind, model)
    run(torch.zeros((1, case.in_channels) + (32,) * case.spatial_dims))
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM to the current RSS
    before = _status_kb("VmRSS")
    result = run(x)
    peak = _status_kb("VmHWM")
    del result
    return {"before_kb": before, "peak_kb": peak}


def measure_memory(case: Case, quick: bool, threads: int | None) -> dict[str, dict[str, int]]:
    """One fresh subprocess per operation (see the module docstring)."""
    results = {}
    for kind in MEMORY_KINDS:
        command = [sys.executable, "-m", "engine.bench.cam", "--memory-probe", case.name, kind]
        command += (["--quick"] if quick else []) + ([f"--threads={threads}"] if threads else [])
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[kind] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def _verdict(ratio: float, target: float) -> str:
    if ratio <= target:
        return f"<= {target:.2f} met"
    return f"<= {target:.2f} MISSED by {100 * (ratio / target - 1):.1f}%"


def report_times(case: Case, samples: dict[str, list[float]]) -> list[str]:
    """Median time and its ratio to inference (judged against the targets), and the fastest run."""
    medians = {name: statistics.median(values) for name, values in samples.items()}
    fastest = {name: min(values) for name, values in samples.items()}
    lines = [
        f"{case.describe()}; {torch.get_num_threads()} threads, {len(samples['inference'])} interleaved rounds",
        f"  {'operation':<38}{'median ms':>10}{'x inf':>7}{'min ms':>9}{'x inf':>7}   target (on the median)",
    ]
    for name in samples:
        ratio = medians[name] / medians["inference"]
        if name.endswith("(1 class)"):
            target = _verdict(ratio, TIME_TARGET_ONE)
        elif name == "all methods, all classes":
            target = _verdict(ratio, TIME_TARGET_ALL)
        else:
            target = ""
        lines.append(
            f"  {name:<38}{1000 * medians[name]:>10.1f}{ratio:>7.2f}"
            f"{1000 * fastest[name]:>9.1f}{fastest[name] / fastest['inference']:>7.2f}   {target}"
        )
    return lines


def report_memory(memory: dict[str, dict[str, int]]) -> list[str]:
    working = {k: (v["peak_kb"] - v["before_kb"]) / 1024 for k, v in memory.items()}
    process = {k: v["peak_kb"] / 1024 for k, v in memory.items()}
    lines = [f"  {'peak memory (fresh process each)':<38}{'work MB':>10}{'x inf':>7}"
             f"{'proc MB':>9}{'x inf':>7}   target (on the process peak)"]
    for kind in MEMORY_KINDS:
        w_ratio = working[kind] / working["inference"] if working["inference"] > 0 else float("nan")
        p_ratio = process[kind] / process["inference"]
        target = "" if kind in ("inference", "monai") else _verdict(p_ratio, MEMORY_TARGET)
        lines.append(f"  {kind:<38}{working[kind]:>10.1f}{w_ratio:>7.2f}{process[kind]:>9.1f}{p_ratio:>7.2f}   {target}")
    return lines


def main(argv: list[str]) -> int:
    """Print the CAM cost table. Returns 0."""
    parser = argparse.ArgumentParser(prog="salience bench cam", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs (2D 128x128, 3D 64^3)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5, quick 3)")
    parser.add_argument("--cases", default="2D,3D", help="comma-separated: 2D, 3D")
    parser.add_argument("--smooth-samples", type=int, default=8, help="noisy copies for Smooth Grad-CAM++")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    parser.add_argument("--memory-probe", nargs=2, metavar=("CASE", "KIND"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cases = {case.name: case for case in CASES[args.quick]}
    if args.memory_probe:
        case_name, kind = args.memory_probe
        print(json.dumps(probe_memory(cases[case_name], kind)))
        return 0
    repeats = args.repeats or (3 if args.quick else 5)
    for name in args.cases.split(","):
        case = cases[name.strip()]
        model, x = build(case)
        samples = time_interleaved(operations(model, x, args.smooth_samples), repeats)
        print("\n".join(report_times(case, samples)))
        if not args.no_memory:
            print("\n".join(report_memory(measure_memory(case, args.quick, args.threads))))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
