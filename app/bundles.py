"""``salience bundle add|list|remove``: a site's own models beside the shipped ones.

Added bundles live in ``bundles`` in the data folder (``app.settings.BUNDLES_DIR``); how one is
checked and installed is ``engine.models.install``'s business. Returns JSON-ready dicts.
"""

from __future__ import annotations

from pathlib import Path

from app.settings import BUNDLES_DIR, data_folder
from engine.errors import SalienceError


def added_folder() -> Path:
    """Where added bundles live: the folder bundle names resolve in, else the data folder's."""
    from engine.models.metadata import user_bundles_root

    return user_bundles_root() or data_folder() / BUNDLES_DIR


def add(path: str | Path, replace: bool = False, folder: Path | None = None) -> dict:
    """Check the bundle at ``path`` (a folder, its ``configs/metadata.json`` or a .zip) and add it.

    Raises:
        engine.errors.BundleError: one line naming what is wrong; nothing added before changes.
    """
    from engine.models.install import install_bundle

    installed = install_bundle(path, folder or added_folder(), replace=replace)
    return {
        "result": installed.summary(),
        "name": installed.name,
        "version": installed.version,
        "task": installed.task,
        "classes": list(installed.class_names),
        "input_channels": list(installed.input_channels),
        "input_size": list(installed.input_size),
        "target_layer": installed.target_layer,
        "target_layer_source": installed.target_layer_source,
        "cam_grid": list(installed.layer_grid),
        "weights_from": installed.weights_from,
        "replaced": installed.replaced,
        "path": str(installed.path),
    }


def listing() -> dict:
    """Every bundle, shipped and added, with what a picker needs; an added bundle that no longer
    reads says why instead."""
    from engine.models.metadata import read_metadata, resolve_bundle, shipped_bundles, user_bundles

    def row(name: str) -> dict:
        try:
            metadata = read_metadata(name)
        except SalienceError as exc:
            return {"name": name, "error": str(exc)}
        return {"name": name, "version": metadata["version"], "task": metadata["task"],
                "classes": metadata["class_names"], "input_size": metadata["input_size"],
                "target_layer": metadata["target_layer"], "path": str(resolve_bundle(name))}

    return {"shipped": [row(n) for n in shipped_bundles()], "added": [row(n) for n in user_bundles()],
            "added_folder": str(added_folder())}


def remove(name: str) -> dict:
    """Remove an added bundle.

    Raises:
        engine.errors.BundleError: a shipped bundle, or no added bundle of that name.
    """
    from engine.models.install import remove_bundle

    return {"removed": name, "path": str(remove_bundle(name, added_folder()))}
