"""Which torch device a command runs its models on: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

``auto`` takes the first CUDA device when torch sees one and the CPU otherwise, so machines
without a GPU (and the CPU build of torch) keep today's behaviour. ``autocast`` runs a block in
half precision (``--half bf16|fp16``).
"""

from __future__ import annotations

import contextlib

import torch

from engine.errors import SalienceError

#: What ``--device`` accepts, for help texts.
DEVICE_CHOICES = "auto|cpu|cuda[:N]"
#: Why there is no CUDA device to run on, when torch sees none.
NO_CUDA = "torch sees no CUDA device (a CPU build of torch, or no GPU driver)"


class DeviceError(SalienceError):
    """A device was asked for that this machine or this build of torch does not have."""

    def __init__(self, spec: str, reason: str):
        self.spec = spec
        self.reason = reason
        super().__init__(f"device {spec!r}: {reason}")


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The ``torch.device`` named by ``spec``, checked against what torch sees.

    Args:
        spec: ``"auto"`` (or None), ``"cpu"``, ``"cuda"`` (device 0) or ``"cuda:N"``.

    Returns:
        The device; ``auto`` gives ``cuda:0`` when CUDA is available, else ``cpu``.

    Raises:
        DeviceError: an unknown name, or a CUDA device torch does not see.
    """
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = (spec or "auto").strip().lower()
    if text == "auto":
        return torch.device("cuda:0") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    kind, _, index = text.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise DeviceError(text, f"expected {DEVICE_CHOICES}")
    if not torch.cuda.is_available():
        raise DeviceError(text, NO_CUDA)
    number = int(index or 0)
    count = torch.cuda.device_count()
    if number >= count:
        raise DeviceError(text, f"torch sees {count} CUDA device{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})")
    return torch.device("cuda", number)


def cuda_device_names() -> tuple[str, ...]:
    """The name of each CUDA device torch sees, by index (``"cuda:N"`` is the N-th); empty when
    it sees none (then ``NO_CUDA`` says why)."""
    if not torch.cuda.is_available():
        return ()
    return tuple(torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count()))


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so a timer reads finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: What ``--half`` accepts: autocast's lower-precision dtypes by their usual names.
HALF_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class PrecisionError(SalienceError):
    """A half precision was asked for that the device does not run."""


def half_dtype(name: str | None, device: torch.device) -> torch.dtype | None:
    """The autocast dtype named by ``name`` (None: float32, no autocast), checked against ``device``.

    Args:
        name: ``"bf16"``, ``"fp16"`` or None.
        device: where the network runs.

    Raises:
        PrecisionError: an unknown name, fp16 on the CPU (autocast's CPU path is made for bf16),
            or bf16 on a CUDA device without bfloat16 support.
    """
    if name is None:
        return None
    if name not in HALF_DTYPES:
        raise PrecisionError(f"half precision {name!r}: expected one of {', '.join(HALF_DTYPES)}")
    if device.type == "cpu" and name == "fp16":
        raise PrecisionError("half precision fp16 runs on CUDA only; use bf16 on the CPU")
    if device.type == "cuda" and name == "bf16" and not torch.cuda.is_bf16_supported():
        raise PrecisionError(f"{device} has no bfloat16 support; use fp16")
    return HALF_DTYPES[name]


def autocast(device: torch.device, half: str | None = None) -> contextlib.AbstractContextManager:
    """Mixed precision for the forward passes run inside: ``torch.autocast`` in ``half``'s dtype
    on ``device``'s type, or nothing (float32) when ``half`` is None.

    Convolutions and matrix products run in the half dtype; the CAM engine computes its maps in
    float32 from what was captured (``engine.models.inference.capture_pass``).

    Raises:
        PrecisionError: see ``half_dtype``.
    """
    dtype = half_dtype(half, device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)
