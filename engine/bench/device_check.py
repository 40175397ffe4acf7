"""The check to run on a CUDA machine: every CAM method gives the CPU's maps, then the benchmark.

``python -m engine.bench.device_check [--batch 32] [--repeats 5]`` (from the project's tree with
``PYTHONPATH`` set; the machine needs torch with CUDA and MONAI). Where torch sees CUDA it

1. computes every method's maps on a small MONAI DenseNet (random weights, seed 0) in 2-D and
   3-D, once on the CPU and once on CUDA, and compares them: the largest difference over the
   largest CPU value must stay within ``RELATIVE_TOLERANCE``. TF32 is switched off for this part
   (cuDNN convolutions use it by default), so both devices compute in float32. CF-CAM's channel
   clusters are compared as labels too: a flipped neighbour at exactly ``eps`` would change them.
   Smooth Grad-CAM++ runs with ``noise_level=0``: each device draws its noise from its own
   generator, so only the computation, not the draw, can be compared;
2. runs ``salience bench cam`` on CUDA at batch 1 and ``--batch``, with its summary table.

It prints a compact report and exits 1 if a method's maps differ. Without CUDA it says so in one
line and exits 0, so the same command can sit in any machine's check list.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch

from engine.bench import cam as bench_cam
from engine.explain.all_methods import explain_all
from engine.explain.cluster_filter import channel_clusters
from engine.explain.methods import METHODS
from engine.explain.perturbation import occlusion, score_cam

LAYER = "class_layers.relu"
#: Largest |CPU - CUDA| over largest |CPU| allowed per map (float32 through a whole network).
RELATIVE_TOLERANCE = 1e-3
#: The small networks compared: spatial dims -> input shape (batch, channels, *spatial).
INPUTS = {2: (4, 1, 32, 32), 3: (2, 1, 24, 24, 24)}


@dataclass(frozen=True)
class Comparison:
    """One method on one input: how far the second device's maps are from the first's.

    Attributes:
        method: the method's name (``"cfcam clusters"`` for CF-CAM's channel labels).
        spatial_dims: 2 or 3.
        relative_difference: largest absolute difference over the largest absolute reference
            value (for clusters: the share of labels that differ).
        within: whether it is within ``RELATIVE_TOLERANCE`` (for clusters: all labels equal).
    """

    method: str
    spatial_dims: int
    relative_difference: float
    within: bool


def small_densenet(spatial_dims: int) -> torch.nn.Module:
    """A MONAI DenseNet of two dense blocks (28 channels at ``class_layers.relu``), seed 0, eval mode."""
    from monai.networks.nets import DenseNet

    torch.manual_seed(0)
    return DenseNet(
        spatial_dims=spatial_dims, in_channels=1, out_channels=3, init_features=8, growth_rate=8, block_config=(2, 2)
    ).eval()


def relative_difference(reference: torch.Tensor, other: torch.Tensor) -> float:
    """``max |reference - other| / max |reference|`` (the plain maximum where the reference is all zero)."""
    reference, other = reference.detach().double().cpu(), other.detach().double().cpu()
    if reference.shape != other.shape:
        return float("inf")
    scale = float(reference.abs().max()) if reference.numel() else 0.0
    largest = float((reference - other).abs().max()) if reference.numel() else 0.0
    return largest / scale if scale > 0 else largest


def all_maps(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every method's maps for every class: the gradient family from one capture, Smooth
    Grad-CAM++ without noise, Score-CAM and occlusion for the predicted class."""
    maps = dict(explain_all(model, x, LAYER, methods=list(METHODS), noise_samples=2, noise_level=0.0))
    patch = max(2, x.shape[-1] // 4)
    maps["scorecam"] = score_cam(model, x, target_layer=LAYER)
    maps["occlusion"] = occlusion(model, x, patch_size=patch, stride=patch)
    return maps


def _layer_activations(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    from engine.explain.capture import CamCapture

    with CamCapture(model, [LAYER]) as capture:
        return capture.run(x, classes=[]).activations[LAYER]


def compare_devices(reference: str | torch.device, device: str | torch.device, spatial_dims: int) -> list[Comparison]:
    """Every method's maps on ``device`` against ``reference``, for one small DenseNet input."""
    reference, device = torch.device(reference), torch.device(device)
    model = small_densenet(spatial_dims)
    x = torch.randn(INPUTS[spatial_dims], generator=torch.Generator().manual_seed(1))
    expected = all_maps(model.to(reference), x.to(reference))
    other_model = copy.deepcopy(model).to(device)
    got = all_maps(other_model, x.to(device))
    rows = []
    for name, maps in expected.items():
        difference = relative_difference(maps, got[name])
        rows.append(Comparison(name, spatial_dims, difference, difference <= RELATIVE_TOLERANCE))
    labels = channel_clusters(_layer_activations(model, x.to(reference))).cpu()
    other_labels = channel_clusters(_layer_activations(other_model, x.to(device))).cpu()
    share = float((labels != other_labels).double().mean())
    rows.append(Comparison("cfcam clusters", spatial_dims, share, share == 0.0))
    return rows


def format_comparisons(rows: list[Comparison], reference: str, device: str) -> list[str]:
    """A Markdown table, one row per method, one column per input."""
    dims = sorted({row.spatial_dims for row in rows})
    by_method: dict[str, dict[int, Comparison]] = {}
    for row in rows:
        by_method.setdefault(row.method, {})[row.spatial_dims] = row
    header = ["method"] + [f"{d}-D {'x'.join(map(str, INPUTS[d]))}" for d in dims]
    lines = [
        f"{device} against {reference}, small MONAI DenseNet, float32 (TF32 off): "
        f"largest |difference| / largest |{reference} value| (clusters: share of labels that differ)",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for method, cells in by_method.items():
        shown = [f"{cells[d].relative_difference:.1e} {'ok' if cells[d].within else 'DIFFERS'}" if d in cells else "-" for d in dims]
        lines.append("| " + " | ".join([method] + shown) + " |")
    failed = [f"{row.method} ({row.spatial_dims}-D)" for row in rows if not row.within]
    verdict = "all within" if not failed else f"DIFFER: {', '.join(failed)}; tolerance"
    lines.append(f"equality: {verdict} {RELATIVE_TOLERANCE:.0e}")
    return lines


class _NoTF32:
    """Switch TF32 off for matrix products and cuDNN in the block; restore the settings after."""

    def __enter__(self) -> None:
        self._saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    def __exit__(self, *exc_info) -> None:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = self._saved


def check_equality(reference: str, device: str, print_line: Callable[[str], None] = print) -> bool:
    """Compare every method on ``device`` with ``reference`` in 2-D and 3-D; print the table."""
    with _NoTF32():
        rows = [row for dims in sorted(INPUTS) for row in compare_devices(reference, device, dims)]
    print_line("\n".join(format_comparisons(rows, reference, device)))
    return all(row.within for row in rows)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m engine.bench.device_check", description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=32, help="the benchmark's larger batch (default 32)")
    parser.add_argument("--repeats", type=int, default=5, help="the benchmark's timed rounds (default 5)")
    parser.add_argument("--smooth-samples", type=int, default=4, help="noisy copies in the benchmark's Smooth Grad-CAM++")
    parser.add_argument("--quick", action="store_true", help="the benchmark's smaller inputs")
    parser.add_argument("--no-bench", action="store_true", help="only the CPU-against-CUDA equality")
    parser.add_argument("--device", default="cuda:0", help="the CUDA device to check (default cuda:0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the check; 0 when the maps agree (or there is no CUDA), 1 when a method differs."""
    args = parse_arguments(list(sys.argv[1:] if argv is None else argv))
    if not torch.cuda.is_available():
        build = f"torch {torch.__version__}, " + ("a CPU build" if torch.version.cuda is None else f"CUDA {torch.version.cuda} build")
        print(f"device check: torch sees no CUDA device ({build}); nothing to check on this machine")
        return 0
    device = args.device
    print(f"device check: {device} ({torch.cuda.get_device_name(device)}), torch {torch.__version__}, CUDA {torch.version.cuda}")
    equal = check_equality("cpu", device)
    if not args.no_bench:
        options = ["--device", device, "--batch", str(args.batch), "--repeats", str(args.repeats)]
        options += ["--smooth-samples", str(args.smooth_samples)] + (["--quick"] if args.quick else [])
        print()
        bench_cam.run(bench_cam.parse_arguments(options))
    return 0 if equal else 1


if __name__ == "__main__":
    sys.exit(main())
