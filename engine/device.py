"""Which torch device a command runs its models on: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.

``auto`` takes the first CUDA device when torch sees one and the CPU otherwise, so machines
without a GPU (and the CPU build of torch) keep today's behaviour.
"""

from __future__ import annotations

import torch

from engine.errors import SalienceError

#: What ``--device`` accepts, for help texts.
DEVICE_CHOICES = "auto|cpu|cuda[:N]"


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
        raise DeviceError(text, "torch sees no CUDA device (a CPU build of torch, or no GPU driver)")
    number = int(index or 0)
    count = torch.cuda.device_count()
    if number >= count:
        raise DeviceError(text, f"torch sees {count} CUDA device{'s' if count != 1 else ''} (cuda:0 to cuda:{count - 1})")
    return torch.device("cuda", number)


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so a timer reads finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
