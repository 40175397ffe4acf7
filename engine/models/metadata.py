"""A bundle's files and its checked metadata, read without building its network.

The bundle layout (``configs/metadata.json``, ``configs/inference.json``, the weights, the model
card), where shipped bundles live, and ``read_metadata``: what a worklist or a model picker needs
to know about a bundle, at the cost of reading one JSON file. Nothing here imports torch or MONAI
(an import-linter contract keeps it so), so listing models costs the window no start-up time.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import BundleError
from engine.models.task_registry import task_names

METADATA_FILE = "configs/metadata.json"
INFERENCE_FILE = "configs/inference.json"
WEIGHTS_FILE = "models/model.safetensors"
MODEL_CARD_FILE = "docs/README.md"


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def file_sha256(path: Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def bundles_root() -> Path:
    """The folder of the bundles shipped with Salience (``engine/bundles``)."""
    root = importlib.resources.files("engine.bundles")
    return Path(str(root))


def list_bundles() -> list[str]:
    """Names of the shipped bundles, sorted."""
    root = bundles_root()
    return sorted(p.name for p in root.iterdir() if (p / METADATA_FILE).is_file())


def resolve_bundle(name_or_path: str | Path) -> Path:
    """The folder of a shipped bundle by name, or of a user's bundle by path.

    A bare name (no path separator) is looked up among the shipped bundles first.

    Raises:
        BundleError: no such bundle.
    """
    text = str(name_or_path)
    is_bare_name = not isinstance(name_or_path, Path) and re.fullmatch(r"[A-Za-z0-9_.-]+", text) and text not in (".", "..")
    if is_bare_name:
        shipped = bundles_root() / text
        if (shipped / METADATA_FILE).is_file():
            return shipped
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if is_bare_name:
        raise BundleError(text, f"no shipped bundle of that name (shipped: {', '.join(list_bundles()) or 'none'})")
    raise BundleError(text, "no such folder")


def read_json(bundle: Path, relative: str) -> dict[str, Any]:
    path = bundle / relative
    if not path.is_file():
        raise BundleError(bundle, f"{relative} is missing")
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BundleError(bundle, f"{relative} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(bundle, f"{relative} cannot be read ({exc})") from None
    if not isinstance(content, dict):
        raise BundleError(bundle, f"{relative} must hold a JSON object")
    return content


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) and v for v in value)


_REQUIRED: dict[str, tuple[Callable[[Any], bool], str]] = {
    "name": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "version": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
    "task": (lambda v: isinstance(v, str) and v in task_names(), f"one of {task_names()}"),
    "class_names": (_is_str_list, "a non-empty list of names"),
    "input_channels": (_is_str_list, "a non-empty list of channel names"),
    "input_size": (
        lambda v: isinstance(v, list) and len(v) in (2, 3)
        and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in v),
        "[height, width] in pixels, or [depth, height, width] for a model that reads a whole volume",
    ),
    "target_layer": (lambda v: isinstance(v, str) and bool(v), "a dotted layer path"),
    "preprocessing": (lambda v: isinstance(v, dict), "an object of parameters"),
    "weights_sha256": (lambda v: isinstance(v, str) and bool(_SHA256.match(v)), "64 lower-case hex digits"),
    "data_license": (lambda v: isinstance(v, str) and bool(v), "a non-empty string"),
}


def check_metadata(metadata: dict[str, Any], bundle: Path) -> None:
    """Raise ``BundleError`` naming the first missing or malformed metadata field.

    The task must be registered; whether it knows the preprocessing parameters is checked when
    the bundle loads (``engine.models.bundle.check_preprocessing``), since that imports the
    task's package.
    """
    for key, (valid, expected) in _REQUIRED.items():
        if key not in metadata:
            raise BundleError(bundle, f"{METADATA_FILE} lacks {key!r}")
        if not valid(metadata[key]):
            raise BundleError(bundle, f"{METADATA_FILE} {key!r} must be {expected}, got {metadata[key]!r}")
    numbers = {k: v for k, v in metadata["preprocessing"].items() if k != "function"}
    not_numbers = sorted(k for k, v in numbers.items() if isinstance(v, bool) or not isinstance(v, (int, float)))
    if not_numbers:
        raise BundleError(bundle, f"{METADATA_FILE} preprocessing parameters {not_numbers} must be numbers")
    calibration = metadata.get("calibration", {})
    if not isinstance(calibration, dict):
        raise BundleError(bundle, f"{METADATA_FILE} calibration must be an object")
    temperature = calibration.get("temperature", 1.0)
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise BundleError(bundle, f"{METADATA_FILE} calibration temperature must be positive, got {temperature!r}")


def read_metadata(name_or_path: str | Path) -> dict[str, Any]:
    """A bundle's checked ``metadata.json`` (``check_metadata``) without building its network,
    reading its weights or importing its task.

    Raises:
        BundleError: no such bundle, or its metadata is missing or malformed.
    """
    path = resolve_bundle(name_or_path)
    metadata = read_json(path, METADATA_FILE)
    check_metadata(metadata, path)
    return metadata
