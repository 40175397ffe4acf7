"""A bundle's files and its checked metadata, read without building its network.

The bundle layout (``configs/metadata.json``, ``configs/inference.json``, the weights, the model
card), where bundles live, and ``read_metadata``: what a worklist or a model picker needs to know
about a bundle, at the cost of reading one JSON file. Nothing here imports torch or MONAI (an
import-linter contract keeps it so), so listing models costs the window no start-up time.

Bundles live in two places: those shipped in ``engine/bundles``, and those a site added
(``engine.models.install``) in a folder the app names at start-up (``set_user_bundles_root``;
``app.settings``: ``bundles`` in the data folder). ``list_bundles`` and ``resolve_bundle`` see both;
a name is never in both (adding a bundle with a shipped one's name is refused).
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


_user_root: Path | None = None


def set_user_bundles_root(folder: str | Path | None) -> None:
    """Where the bundles a site added live (None: nowhere). The app sets it at start-up."""
    global _user_root
    _user_root = None if folder is None else Path(folder)


def user_bundles_root() -> Path | None:
    """The folder of added bundles, as ``set_user_bundles_root`` set it (None: not set)."""
    return _user_root


def _names_in(root: Path | None) -> list[str]:
    """Bundle folders directly in ``root`` (dot-folders are work in progress, not bundles)."""
    if root is None or not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / METADATA_FILE).is_file())


def shipped_bundles() -> list[str]:
    """Names of the bundles shipped with Salience, sorted."""
    return _names_in(bundles_root())


def user_bundles() -> list[str]:
    """Names of the bundles a site added (``user_bundles_root``), sorted."""
    return _names_in(_user_root)


def list_bundles() -> list[str]:
    """Names of every bundle, shipped and added, sorted."""
    return sorted(set(shipped_bundles()) | set(user_bundles()))


def resolve_bundle(name_or_path: str | Path) -> Path:
    """The folder of a bundle by name (shipped or added), or of a bundle folder by path.

    A bare name (no path separator) is looked up among the shipped bundles, then the added ones,
    then as a folder.

    Raises:
        BundleError: no such bundle.
    """
    text = str(name_or_path)
    is_bare_name = not isinstance(name_or_path, Path) and re.fullmatch(r"[A-Za-z0-9_.-]+", text) and text not in (".", "..")
    if is_bare_name:
        for root in (bundles_root(), _user_root):
            if root is not None and not text.startswith(".") and (root / text / METADATA_FILE).is_file():
                return root / text
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if is_bare_name:
        added = f"; added: {', '.join(user_bundles())}" if user_bundles() else ""
        raise BundleError(text, f"no shipped bundle of that name (shipped: {', '.join(shipped_bundles()) or 'none'}{added})")
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
