"""Prepared frames of every clip, read once and kept on disk, and subsets of them by item.

Reading and preparing the clips (decoding, finding the scan region, cropping) costs minutes; the
ten cross-validation runs and the shipped run all take their frames from one cache. The cache
file records what it was made from (item paths, preprocessing, input size, frames per clip) and is
rebuilt when any of it differs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from engine.tasks.lung_ultrasound.data import FrameSet, Item, load_frames
from engine.tasks.lung_ultrasound.preprocess import evenly_spaced

#: Bumped when the cache's layout or the way frames are prepared changes.
CACHE_FORMAT = 1


def cache_key(items: tuple[Item, ...], input_size: tuple[int, int], params: dict[str, Any], frames_per_clip: int) -> dict:
    """What a cache was made from; a cache with another key is rebuilt."""
    return {
        "format": CACHE_FORMAT,
        "items": [item.path for item in items],
        "input_size": list(input_size),
        "params": {k: float(v) for k, v in sorted(params.items())},
        "frames_per_clip": int(frames_per_clip),
    }


def cached_frames(
    data_dir: str | Path,
    items: tuple[Item, ...],
    input_size: tuple[int, int],
    params: dict[str, Any],
    frames_per_clip: int,
    cache: Path | None,
) -> FrameSet:
    """Up to ``frames_per_clip`` evenly spaced prepared frames of every item, with scan regions.

    Args:
        data_dir: the lung-ultrasound folder.
        items: the clips and stills, in the order the frame set keeps.
        input_size: the network's ``(h, w)``.
        params: the preprocessing parameters (``prepare_frames``).
        frames_per_clip: evenly spaced frames kept per clip.
        cache: a ``.pt`` file to read if it matches, else to write; None reads the clips.

    Raises:
        SalienceError: a clip cannot be read.
    """
    key = cache_key(items, input_size, params, frames_per_clip)
    if cache is not None and Path(cache).is_file():
        stored = torch.load(cache, weights_only=True)
        if stored.get("key") == key:
            return FrameSet(stored["inputs"], stored["labels"], stored["owners"], tuple(items), stored["regions"])
    frames = load_frames(data_dir, tuple(items), input_size, params, frames_per_clip, with_regions=True)
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        stored = {"key": key, "inputs": frames.inputs, "labels": frames.labels, "owners": frames.owners, "regions": frames.regions}
        partial = Path(cache).with_suffix(".partial")
        torch.save(stored, partial)
        partial.replace(cache)
    return frames


def select(frames: FrameSet, items: tuple[Item, ...], per_clip: int | None) -> FrameSet:
    """The frames of ``items`` (a subset of ``frames.items``), up to ``per_clip`` evenly spaced per item.

    Owners are renumbered to index ``items``; regions follow their items.

    Raises:
        KeyError: an item is not in ``frames``.
    """
    position = {item.path: i for i, item in enumerate(frames.items)}
    owners = frames.owners.numpy()
    chosen, new_owners = [], []
    for new, item in enumerate(items):
        members = np.flatnonzero(owners == position[item.path])
        if per_clip is not None:
            members = members[evenly_spaced(len(members), per_clip)]
        chosen.append(members)
        new_owners.append(np.full(len(members), new, dtype=np.int64))
    index = torch.from_numpy(np.concatenate(chosen)) if chosen else torch.zeros(0, dtype=torch.int64)
    regions = None
    if frames.regions is not None:
        regions = frames.regions[[position[item.path] for item in items]]
    return FrameSet(
        frames.inputs[index], frames.labels[index],
        torch.from_numpy(np.concatenate(new_owners) if new_owners else np.zeros(0, np.int64)), tuple(items), regions,
    )
