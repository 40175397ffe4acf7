"""Build a network from a bundle's ``network_def`` without letting a bundle run code.

A bundle is data. MONAI's ``ConfigParser`` can evaluate Python expressions (``"$..."``), follow
references (``"@..."``), read other files (``"%..."``) and instantiate any importable callable
(``_target_``). Before a config reaches the parser, ``check_network_def`` allows only plain JSON
values and ``_target_`` classes that are networks in ``monai.networks.nets``.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

from engine.errors import BundleError

ALLOWED_TARGET_PREFIX = "monai.networks.nets."
_TARGET = re.compile(r"^monai\.networks\.nets\.([A-Za-z_][A-Za-z0-9_]*)$")
_ALLOWED_SPECIAL_KEYS = ("_target_", "_desc_")
_CODE_PREFIXES = ("$", "@", "%")


def check_network_def(config: Any, bundle: str, where: str = "network_def") -> None:
    """Refuse anything in ``config`` but plain values and MONAI network targets.

    Args:
        config: the ``network_def`` value read from ``inference.json``.
        bundle: the bundle's path or name, for the error message.
        where: the key path inside ``inference.json`` (for nested errors).

    Raises:
        BundleError: naming the key path and what is not allowed there.
    """
    if isinstance(config, dict):
        for key, value in config.items():
            if not isinstance(key, str):
                raise BundleError(bundle, f"inference.json {where}: key {key!r} is not a string")
            if key.startswith("_") and key not in _ALLOWED_SPECIAL_KEYS:
                raise BundleError(bundle, f"inference.json {where}.{key}: config key not allowed in a bundle")
            if key == "_target_":
                _check_target(value, bundle, f"{where}._target_")
            else:
                check_network_def(value, bundle, f"{where}.{key}")
    elif isinstance(config, list):
        for index, value in enumerate(config):
            check_network_def(value, bundle, f"{where}[{index}]")
    elif isinstance(config, str):
        if config.startswith(_CODE_PREFIXES):
            raise BundleError(
                bundle, f"inference.json {where}: {config[:40]!r} is an expression or reference, not allowed"
            )
    elif not (config is None or isinstance(config, (bool, int, float))):
        raise BundleError(bundle, f"inference.json {where}: unsupported value {type(config).__name__}")


def _check_target(target: Any, bundle: str, where: str) -> None:
    match = _TARGET.match(target) if isinstance(target, str) else None
    if match is None:
        raise BundleError(
            bundle, f"inference.json {where}: {target!r} is not allowed (only {ALLOWED_TARGET_PREFIX}<Network>)"
        )
    import monai.networks.nets as nets

    component = getattr(nets, match.group(1), None)
    if not (isinstance(component, type) and issubclass(component, nn.Module)):
        raise BundleError(bundle, f"inference.json {where}: {target!r} is not a network in {ALLOWED_TARGET_PREFIX}")


def build_network(network_def: dict[str, Any], bundle: str) -> nn.Module:
    """Check ``network_def`` and instantiate it with MONAI's ``ConfigParser``.

    Args:
        network_def: a dict with ``_target_`` under ``monai.networks.nets.`` and its arguments.
        bundle: the bundle's path or name, for error messages.

    Returns:
        The network, on the CPU, in eval mode.

    Raises:
        BundleError: the config is not allowed or the network cannot be built from it.
    """
    if not isinstance(network_def, dict) or "_target_" not in network_def:
        raise BundleError(bundle, "inference.json network_def must be an object with a _target_")
    check_network_def(network_def, bundle)
    from monai.bundle import ConfigParser

    try:
        network = ConfigParser({"network_def": network_def}).get_parsed_content("network_def")
    except Exception as exc:  # MONAI raises many kinds for bad arguments
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BundleError(bundle, f"network_def cannot be built ({first[:200]})") from exc
    if not isinstance(network, nn.Module):
        raise BundleError(bundle, f"network_def built a {type(network).__name__}, not a network")
    return network.cpu().eval()
