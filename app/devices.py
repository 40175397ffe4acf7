"""Where the window runs its models: the choices the Device menu offers, and checking a choice.

``engine.device.resolve_device`` decides what a spec means on this machine when a model loads;
this module only lists the choices (loading torch) and checks a spec's spelling (without torch,
so the window can restore a remembered choice at start-up without waiting for torch).
"""

from __future__ import annotations

import re

from engine.errors import SalienceError
from engine.progress import Progress
from ui.backend import DeviceChoice

_SPEC = re.compile(r"auto|cpu|cuda(:\d+)?")


def checked_device(spec: str) -> str:
    """``spec`` in its plain spelling ("CUDA:0 " -> "cuda:0").

    Raises:
        SalienceError: ``spec`` names no device (whether this machine has it is checked when a
            model loads there).
    """
    text = str(spec).strip().lower()
    if not _SPEC.fullmatch(text):
        raise SalienceError(f"device {spec!r}: expected auto, cpu, cuda or cuda:N")
    return text


def device_choices(progress: Progress | None = None) -> tuple[DeviceChoice, ...]:
    """Auto (saying where it lands), the CPU and each CUDA device torch sees; when it sees none,
    one disabled CUDA entry with the reason."""
    from engine.device import NO_CUDA, cuda_device_names, resolve_device

    names = cuda_device_names()
    choices = [DeviceChoice("auto", f"Auto ({resolve_device('auto')})"), DeviceChoice("cpu", "CPU")]
    choices += [DeviceChoice(f"cuda:{index}", f"CUDA {index}: {name}") for index, name in enumerate(names)]
    if not names:
        choices.append(DeviceChoice("cuda", "CUDA", available=False, reason=NO_CUDA))
    if progress is not None:
        progress.report(1.0, "devices listed")
    return tuple(choices)
