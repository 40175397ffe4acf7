"""The lung ultrasound data set (POCOVID-Net collection): clips, stills, groups and the split.

Classes come from the file-name prefix (``Cov`` COVID-19, ``Pneu``/``pneu`` bacterial pneumonia,
``Reg`` healthy). ``Vir`` (viral pneumonia, 3 clips) is left out, as are files whose licence the
metadata gives as "None". Consecutive frames of a clip are nearly identical, and clips of one
patient (or one recording set) are alike, so the split is by GROUP: clips that share a patient id
in ``dataset_metadata.csv``, or a Northumbria recording set (``northumbria_0409_setN``), are one
group, and no group straddles two parts.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from engine.errors import SalienceError
from engine.imaging import read_image
from engine.tasks.lung_ultrasound.preprocess import evenly_spaced, prepare_frames, region_on_input

CLASS_NAMES = ("COVID-19", "Bacterial pneumonia", "Healthy")
#: File-name prefix -> class name; ``Vir`` is deliberately absent (too few clips).
PREFIXES = {"Cov": "COVID-19", "Pneu": "Bacterial pneumonia", "pneu": "Bacterial pneumonia", "Reg": "Healthy"}
CLIP_FOLDER = "pocus_videos"
STILL_FOLDER = "pocus_images"
METADATA_FILE = "dataset_metadata.csv"
PARTS = ("train", "val", "test")
_SET = re.compile(r"northumbria_(\d+)_set(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Item:
    """One clip or still frame of the data set.

    Attributes:
        path: path relative to the data folder, e.g. ``pocus_videos/convex/Reg-Atlas.gif``.
        label: class index into ``CLASS_NAMES``.
        is_clip: True for a clip, False for a still frame.
        group: the group id (items of one group never go to different parts).
        licence: the licence in the metadata, e.g. ``CC BY-NC 4.0``.
        probe: ``convex`` or ``linear``.
        patient: the metadata's patient id.
    """

    path: str
    label: int
    is_clip: bool
    group: str
    licence: str
    probe: str
    patient: str


@dataclass(frozen=True)
class FrameSet:
    """Preprocessed frames of some items.

    Attributes:
        inputs: ``(N, 1, h, w)`` float32.
        labels: ``(N,)`` int64 class of each frame (its clip's class).
        owners: ``(N,)`` int64 index into ``items`` of each frame's clip.
        items: the items the frames come from.
        regions: ``(len(items), h, w)`` bool, each item's scan region on the network's input grid
            (before the boundary band is blanked); None unless asked for.
    """

    inputs: torch.Tensor
    labels: torch.Tensor
    owners: torch.Tensor
    items: tuple[Item, ...]
    regions: torch.Tensor | None = None


def class_of(filename: str) -> int | None:
    """Class index from the file-name prefix, or None (viral pneumonia, unknown prefix)."""
    for prefix, name in PREFIXES.items():
        if filename.startswith(prefix) and filename[len(prefix) : len(prefix) + 1] in ("-", "_"):
            return CLASS_NAMES.index(name)
    return None


def read_metadata(data_dir: Path) -> dict[str, dict[str, str]]:
    """``dataset_metadata.csv`` rows by file name without suffix.

    Raises:
        SalienceError: the file is missing.
    """
    path = data_dir / METADATA_FILE
    if not path.is_file():
        raise SalienceError(f"{path}: lung ultrasound metadata not found")
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        return {row["Filename"]: row for row in csv.DictReader(handle)}


def list_items(data_dir: str | Path) -> tuple[list[Item], list[tuple[str, str]]]:
    """Every usable clip and still frame, grouped, and what was left out and why.

    Returns:
        ``(items, excluded)``: items sorted by path; ``excluded`` holds ``(path, reason)``.

    Raises:
        SalienceError: the folder or its metadata is missing, or it holds no usable clip.
    """
    root = Path(data_dir)
    if not (root / CLIP_FOLDER).is_dir():
        raise SalienceError(f"{root}: no {CLIP_FOLDER} folder (expected the lung-ultrasound data set)")
    metadata = read_metadata(root)
    found, excluded = [], []
    for folder, is_clip in ((CLIP_FOLDER, True), (STILL_FOLDER, False)):
        for path in sorted((root / folder).glob("*/*")):
            relative = path.relative_to(root).as_posix()
            label = class_of(path.name)
            row = metadata.get(path.stem)
            if label is None:
                excluded.append((relative, "not one of the three classes (viral pneumonia or unknown prefix)"))
            elif row is None:
                excluded.append((relative, "not in dataset_metadata.csv"))
            elif row["License"].strip() in ("", "None"):
                excluded.append((relative, "no licence in dataset_metadata.csv"))
            else:
                found.append((relative, label, is_clip, row))
    if not any(is_clip for _, _, is_clip, _ in found):
        raise SalienceError(f"{root}: no usable clips found")
    groups = _group_ids([(relative, row) for relative, _, _, row in found])
    items = [
        Item(relative, label, is_clip, groups[relative], row["License"].strip(), row["Probe"].strip(), row["Patient ID / Name"].strip())
        for relative, label, is_clip, row in found
    ]
    return sorted(items, key=lambda item: item.path), excluded


def _group_ids(entries: list[tuple[str, dict[str, str]]]) -> dict[str, str]:
    """Union of items sharing a patient id or a Northumbria recording set; named by first member."""
    parent = {relative: relative for relative, _ in entries}

    def find(node: str) -> str:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    first_with_key: dict[str, str] = {}
    for relative, row in entries:
        keys = []
        patient = row.get("Patient ID / Name", "").strip()
        if patient:
            keys.append(f"patient:{patient}")
        series = _SET.search(relative)
        if series:
            keys.append(f"set:{series.group(1)}-{series.group(2)}")
        for key in keys:
            if key in first_with_key:
                parent[find(relative)] = find(first_with_key[key])
            else:
                first_with_key[key] = relative
    return {relative: find(relative) for relative, _ in entries}


def assign_groups(items: list[Item], fractions: tuple[float, ...], seed: int = 0) -> tuple[dict[str, int], np.ndarray]:
    """Assign whole groups to parts, stratified by class: part ``p`` gets about ``fractions[p]`` of each class's clips.

    Groups are visited in a seeded random order and each goes to the part whose clip counts fall
    furthest short of their targets (counted per class, relative to the class's size). Still
    frames follow their group; only clips count toward the targets.

    Returns:
        ``(assignment, counts)``: the part index of each group id, and ``counts[p, k]``, the clips
        of class ``k`` in part ``p``.
    """
    groups: dict[str, list[Item]] = {}
    for item in items:
        groups.setdefault(item.group, []).append(item)
    names = sorted(groups)
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    totals = np.zeros(len(CLASS_NAMES))
    for item in items:
        totals[item.label] += item.is_clip
    targets = np.outer(np.asarray(fractions, dtype=np.float64) / sum(fractions), totals)
    counts = np.zeros_like(targets)
    assignment: dict[str, int] = {}
    for name in order:
        clips = np.zeros(len(CLASS_NAMES))
        for item in groups[name]:
            clips[item.label] += item.is_clip
        shortfall = ((targets - counts) * clips / np.maximum(totals, 1)).sum(axis=1)
        part = int(np.argmax(shortfall)) if clips.any() else 0
        assignment[name] = part
        counts[part] += clips
    return assignment, counts


def split_items(
    items: list[Item], fractions: tuple[float, ...] = (0.6, 0.2, 0.2), seed: int = 0, parts: tuple[str, ...] = PARTS
) -> dict[str, tuple[Item, ...]]:
    """Split by group, stratified by class (``assign_groups``) into ``parts`` (train, val, test by default).

    Returns:
        ``{part: items}``, items sorted by path as given.

    Raises:
        SalienceError: some part ends without a clip of some class.
    """
    assignment, counts = assign_groups(items, fractions, seed)
    empty = [(parts[p], CLASS_NAMES[k]) for p in range(len(parts)) for k in range(len(CLASS_NAMES)) if counts[p, k] == 0]
    if empty:
        raise SalienceError(f"split seed {seed} leaves parts without clips of a class: {empty}; try another seed")
    return {part: tuple(item for item in items if assignment[item.group] == p) for p, part in enumerate(parts)}


def load_frames(
    data_dir: str | Path,
    items: tuple[Item, ...],
    input_size: tuple[int, int],
    preprocessing: dict,
    frames_per_clip: int | None,
    with_regions: bool = False,
) -> FrameSet:
    """Read and preprocess frames of ``items`` with the bundle's preprocessing.

    Args:
        data_dir: the lung-ultrasound folder.
        items: clips and stills to read.
        input_size: the network's ``(h, w)``.
        preprocessing: ``upper_percentile`` and ``clip_max``.
        frames_per_clip: up to this many evenly spaced frames per clip; None keeps every frame.
        with_regions: also keep each item's scan region on the input grid (``region_on_input``).

    Raises:
        SalienceError: a file cannot be read (``ImageReadError`` is one).
    """
    inputs, labels, owners, regions = [], [], [], []
    for index, item in enumerate(items):
        volume = read_image(Path(data_dir) / item.path)
        count = volume.n_slices
        frames = np.arange(count) if frames_per_clip is None else evenly_spaced(count, frames_per_clip)
        inputs.append(prepare_frames(volume, frames, input_size, **preprocessing))
        labels.append(torch.full((len(frames),), item.label, dtype=torch.int64))
        owners.append(torch.full((len(frames),), index, dtype=torch.int64))
        if with_regions:
            regions.append(torch.from_numpy(region_on_input(volume, input_size)))
        del volume
    stacked = torch.stack(regions) if with_regions else None
    return FrameSet(torch.cat(inputs), torch.cat(labels), torch.cat(owners), tuple(items), stacked)


#: Metadata columns of the findings the map check looks for (a "1" marks the finding).
FINDINGS = {"b_lines": "B-lines", "consolidations": "Consolidations"}


def findings(data_dir: str | Path, items: tuple[Item, ...] | list[Item]) -> dict[str, dict[str, bool]]:
    """Each item's findings from ``dataset_metadata.csv`` (B-lines, consolidations), by path.

    Raises:
        SalienceError: the metadata is missing.
    """
    metadata = read_metadata(Path(data_dir))
    out = {}
    for item in items:
        row = metadata.get(Path(item.path).stem, {})
        out[item.path] = {key: (row.get(column) or "").strip() == "1" for key, column in FINDINGS.items()}
    return out
