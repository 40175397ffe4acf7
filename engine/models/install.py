"""Adding a site's own MONAI bundle: checked in full, then moved into place in one step.

``install_bundle(source, root)`` takes a bundle folder (or its ``configs/metadata.json``) or a
``.zip`` of one, and installs it as ``root/<name>``:

1. a zip is unpacked into a work folder inside ``root`` (the same file system), refusing members
   that would land outside it (``../``, absolute paths, links) and archives that unpack to more
   than ``MAX_UNPACKED_BYTES``;
2. the metadata is checked field by field (``engine.models.metadata.check_metadata``; a missing
   ``target_layer`` is found, see 5), the network must come from ``monai.networks.nets``
   (``engine.models.network_config``), and the weights' SHA-256 must match ``weights_sha256``;
3. weights are ``models/model.safetensors`` (tensors only), or ``models/model.pt`` read with
   ``torch.load(weights_only=True)`` (never unpickling code) and converted to safetensors;
4. the weights must fit the network exactly and a dry run on zeros of the declared input must
   give one output per class name;
5. the CAM layer is the metadata's ``target_layer`` if it names one, else the last spatial layer
   before global pooling (``engine.models.target_layer.find_target_layer``);
6. only what Salience reads is written (metadata, ``network_def``, the safetensors, the model
   card), the result is loaded once more with ``load_bundle``, and the folder is renamed into
   place. A name already installed is refused unless ``replace``; a shipped bundle's name always.

Any refusal is one ``BundleError`` line and leaves ``root`` as it was: the work folder is removed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass, replace as replace_fields
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from engine.errors import BundleError
from engine.models.bundle import (
    check_output_width, check_preprocessing, fit_weights, load_bundle, read_safetensors,
)
from engine.models.metadata import (
    INFERENCE_FILE, METADATA_FILE, MODEL_CARD_FILE, WEIGHTS_FILE, check_metadata, file_sha256, read_json,
    shipped_bundles,
)
from engine.models.network_config import build_network
from engine.models.target_layer import choose_target_layer, layer_outputs

#: The other weights file a MONAI bundle may carry: a pickled state dict, read with weights_only.
PICKLE_WEIGHTS_FILE = "models/model.pt"

#: The most bytes a bundle zip may unpack to.
MAX_UNPACKED_BYTES = 2 * 2**30

#: A bundle's name is its folder's name: letters, digits, ``_``, ``.``, ``-``; not starting with a dot.
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")

FOUND = "found: the last spatial layer before global pooling"
FROM_METADATA = "from the bundle's metadata"


@dataclass(frozen=True)
class InstalledBundle:
    """What ``install_bundle`` installed.

    Attributes:
        name, version, task: from its metadata.
        path: its folder under the install root.
        class_names: its classes.
        input_channels: the channels it reads.
        input_size: ``(h, w)`` or ``(d, h, w)``.
        target_layer: the CAM layer.
        target_layer_source: ``FOUND`` or ``FROM_METADATA``.
        layer_grid: the CAM's grid at that layer for one input.
        weights_from: the weights file given (``models/model.safetensors`` or ``models/model.pt``).
        replaced: an installed bundle of that name was replaced.
    """

    name: str
    version: str
    task: str
    path: Path
    class_names: tuple[str, ...]
    input_channels: tuple[str, ...]
    input_size: tuple[int, ...]
    target_layer: str
    target_layer_source: str
    layer_grid: tuple[int, ...]
    weights_from: str
    replaced: bool

    def summary(self) -> str:
        """One line for the user."""
        size = " x ".join(str(n) for n in self.input_size)
        grid = " x ".join(str(n) for n in self.layer_grid)
        verb = "Replaced" if self.replaced else "Added"
        converted = ", weights converted from models/model.pt" if self.weights_from == PICKLE_WEIGHTS_FILE else ""
        return (f"{verb} {self.name} {self.version} ({self.task}; {len(self.class_names)} classes; "
                f"{len(self.input_size)}-D input {size} of {', '.join(self.input_channels)}; "
                f"CAM layer {self.target_layer} ({self.target_layer_source}), grid {grid}{converted})")


def install_bundle(source: str | Path, root: str | Path, *, replace: bool = False) -> InstalledBundle:
    """Check a bundle and install it as ``root/<name>`` (see the module docstring).

    Args:
        source: a bundle folder, its ``configs/metadata.json``, or a ``.zip`` holding one (at
            its top or in one folder).
        root: the folder of installed bundles (created if missing).
        replace: replace an installed bundle of the same name.

    Returns:
        What was installed.

    Raises:
        BundleError: one line naming what is wrong; nothing under ``root`` changed.
    """
    source = Path(source).expanduser()
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".adding-", dir=root))
    try:
        folder = _unpacked(source, work / "unpacked")
        staged, installed = _stage(folder, work / "bundle", source)
        target = root / installed.name
        replaced = target.exists()
        if replaced and not replace:
            raise BundleError(source, f"a bundle named {installed.name!r} is already installed; add it with --replace "
                                      "to replace it")
        if replaced:
            os.rename(target, work / "previous")
        try:
            os.rename(staged, target)
        except OSError as exc:
            if replaced:
                os.rename(work / "previous", target)
            raise BundleError(source, f"cannot move it into {root} ({exc.strerror or exc})") from None
        return replace_fields(installed, path=target, replaced=replaced)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def remove_bundle(name: str, root: str | Path) -> Path:
    """Remove the installed bundle ``name`` from ``root`` (renamed away first, then deleted).

    Returns:
        The folder it was in.

    Raises:
        BundleError: a shipped bundle, or no installed bundle of that name.
    """
    root = Path(root)
    if name in shipped_bundles():
        raise BundleError(name, "is shipped with Salience and cannot be removed")
    target = root / name
    if not NAME.match(name) or not (target / METADATA_FILE).is_file():
        installed = sorted(p.name for p in root.iterdir() if NAME.match(p.name)) if root.is_dir() else []
        raise BundleError(name, f"no added bundle of that name (added: {', '.join(installed) or 'none'})")
    doomed = Path(tempfile.mkdtemp(prefix=".removing-", dir=root))
    os.rename(target, doomed / name)
    shutil.rmtree(doomed, ignore_errors=True)
    return target


# -- unpacking -------------------------------------------------------------------------------------


def _unpacked(source: Path, into: Path) -> Path:
    """The bundle folder ``source`` names, a zip unpacked into ``into`` first."""
    if source.is_file() and source.name == "metadata.json" and source.parent.name == "configs":
        return source.parent.parent
    if source.is_dir():
        return source
    if not source.exists():
        raise BundleError(source, "no such file or folder")
    if not zipfile.is_zipfile(source):
        raise BundleError(source, "is neither a bundle folder nor a .zip of one")
    extract_zip(source, into)
    if (into / METADATA_FILE).is_file():
        return into
    inner = [p for p in into.iterdir() if p.is_dir() and (p / METADATA_FILE).is_file()]
    if len(inner) != 1:
        raise BundleError(source, f"holds no {METADATA_FILE} at its top or in one folder")
    return inner[0]


def extract_zip(path: Path, into: Path, limit: int = MAX_UNPACKED_BYTES) -> None:
    """Unpack a zip, refusing any member that would land outside ``into``.

    Raises:
        BundleError: a member with ``..``, an absolute or drive path, or a link; more than
            ``limit`` bytes unpacked; an unreadable archive.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            for member in members:
                _check_member(path, member)
            if sum(m.file_size for m in members) > limit:
                raise BundleError(path, f"unpacks to more than {limit / 2**30:.0f} GiB")
            written = 0
            for member in members:
                target = into.joinpath(*PurePosixPath(member.filename.replace("\\", "/")).parts)
                if member.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as packed, open(target, "wb") as out:
                    for block in iter(lambda: packed.read(1 << 20), b""):
                        written += len(block)
                        if written > limit:  # a header may understate a member's size
                            raise BundleError(path, f"unpacks to more than {limit / 2**30:.0f} GiB")
                        out.write(block)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise BundleError(path, f"is not a readable zip ({exc})") from None


def _check_member(path: Path, member: zipfile.ZipInfo) -> None:
    name = member.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or ".." in parts or (parts and re.match(r"^[A-Za-z]:", parts[0])):
        raise BundleError(path, f"zip member {member.filename!r} points outside the bundle (path traversal)")
    if (member.external_attr >> 16) & 0o170000 == 0o120000:
        raise BundleError(path, f"zip member {member.filename!r} is a symbolic link")


# -- checking and staging --------------------------------------------------------------------------


def _stage(folder: Path, out: Path, source: Path) -> tuple[Path, InstalledBundle]:
    """Check the bundle in ``folder`` and write what Salience reads of it to ``out``."""
    metadata = read_json(folder, METADATA_FILE)
    inference = read_json(folder, INFERENCE_FILE)
    weights_file = WEIGHTS_FILE if (folder / WEIGHTS_FILE).is_file() else PICKLE_WEIGHTS_FILE
    if not (folder / weights_file).is_file():
        raise BundleError(source, f"{WEIGHTS_FILE} (or {PICKLE_WEIGHTS_FILE}) is missing")
    given_layer = metadata.get("target_layer")
    check_metadata({**metadata, "target_layer": given_layer or "(found later)"}, source)
    if not NAME.match(metadata["name"]):
        raise BundleError(source, f"{METADATA_FILE} name {metadata['name']!r} must be letters, digits, '_', '.' or '-' "
                                  "(it names the bundle's folder)")
    if metadata["name"] in shipped_bundles():
        raise BundleError(source, f"{metadata['name']!r} is the name of a bundle shipped with Salience; rename yours")
    check_preprocessing(metadata, source)
    actual = file_sha256(folder / weights_file)
    if actual != metadata["weights_sha256"]:
        raise BundleError(source, f"{weights_file} fails its checksum (sha256 {actual[:12]}..., metadata says "
                                  f"{metadata['weights_sha256'][:12]}...)")
    if "network_def" not in inference:
        raise BundleError(source, f"{INFERENCE_FILE} lacks 'network_def'")
    network = build_network(inference["network_def"], str(source))
    state = _read_weights(folder / weights_file, weights_file, source)
    fit_weights(network, state, source, weights_file)
    network.eval()
    check_output_width(network, metadata, source)
    input_shape = (len(metadata["input_channels"]), *metadata["input_size"])
    layer, grid = _target_layer(network, input_shape, given_layer, source)

    (out / WEIGHTS_FILE).parent.mkdir(parents=True)
    (out / METADATA_FILE).parent.mkdir(parents=True)
    (out / MODEL_CARD_FILE).parent.mkdir(parents=True)
    if weights_file == WEIGHTS_FILE:
        shutil.copyfile(folder / WEIGHTS_FILE, out / WEIGHTS_FILE)
    else:
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(out / WEIGHTS_FILE))
    installed_metadata = {
        **metadata,
        "target_layer": layer,
        "weights_sha256": file_sha256(out / WEIGHTS_FILE),
        "installation": {
            "source": str(source),
            "installed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "weights_from": weights_file,
            "weights_sha256_given": metadata["weights_sha256"],
            "target_layer": FROM_METADATA if given_layer else FOUND,
        },
    }
    _write_json(out / METADATA_FILE, installed_metadata)
    _write_json(out / INFERENCE_FILE, {"network_def": inference["network_def"]})
    card = folder / MODEL_CARD_FILE
    if card.is_file():
        shutil.copyfile(card, out / MODEL_CARD_FILE)
    else:
        (out / MODEL_CARD_FILE).write_text(
            f"# {metadata['name']} {metadata['version']}\n\nNo model card came with this bundle. It was added "
            f"from {source} and reads {metadata['task']} images as {', '.join(metadata['class_names'])}.\n",
            encoding="utf-8",
        )
    load_bundle(out)  # the installed layout, checked as every later use will check it
    return out, InstalledBundle(
        name=metadata["name"], version=metadata["version"], task=metadata["task"], path=out,
        class_names=tuple(metadata["class_names"]), input_channels=tuple(metadata["input_channels"]),
        input_size=tuple(metadata["input_size"]), target_layer=layer,
        target_layer_source=FROM_METADATA if given_layer else FOUND, layer_grid=grid, weights_from=weights_file,
        replaced=False,
    )


def _read_weights(path: Path, relative: str, source: Path) -> dict[str, torch.Tensor]:
    """The state dict in a safetensors file, or in a .pt file read with ``weights_only=True``."""
    if relative == WEIGHTS_FILE:
        return read_safetensors(path, source)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the unpickler refuses code and unknown objects in many ways
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise BundleError(source, f"{relative} holds more than tensors: torch.load(weights_only=True) refused it "
                                  f"({first[:160]})") from None
    for key in ("state_dict", "model", "network"):  # a checkpoint that wraps its state dict
        if isinstance(content, dict) and isinstance(content.get(key), dict) and len(content) <= 4:
            content = content[key]
            break
    if not (isinstance(content, dict) and content
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in content.items())):
        raise BundleError(source, f"{relative} does not hold a state dict (names to tensors)")
    return content


def _target_layer(
    network: torch.nn.Module, input_shape: tuple[int, ...], given: Any, source: Path
) -> tuple[str, tuple[int, ...]]:
    """The CAM layer (the metadata's, checked, or found) and its grid for one input."""
    from engine.explain import resolve_layer

    record = layer_outputs(network, input_shape)
    outputs = {o.name: o for o in record}
    if given:
        try:
            resolve_layer(network, given)
        except KeyError as exc:
            raise BundleError(source, f"{METADATA_FILE} target_layer: {exc.args[0]}") from None
        found = outputs.get(given)
        if found is None or not found.is_feature_map(len(input_shape) - 1):
            shape = "no tensor" if found is None else str(found.shape)
            raise BundleError(source, f"{METADATA_FILE} target_layer {given!r} returns {shape}, not a feature map")
        if found.calls != 1:
            raise BundleError(source, f"{METADATA_FILE} target_layer {given!r} runs {found.calls} times per input; "
                                      "a CAM layer must run once")
        return given, found.shape[2:]
    try:
        layer = choose_target_layer(record, len(input_shape) - 1)
    except ValueError as exc:
        raise BundleError(source, f"no CAM layer: {exc}") from None
    return layer, outputs[layer].shape[2:]


def _write_json(path: Path, content: dict[str, Any]) -> None:
    path.write_text(json.dumps(content, indent=2) + "\n", encoding="utf-8")
