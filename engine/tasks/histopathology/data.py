"""The LC25000 lung patch set: classes, near-copy groups, the split by group, and loaded patches.

LC25000 (Borkowski et al. 2019, arXiv:1912.12142) was grown from 250 original images per class by
random rotations (up to 25 degrees either way, the rotated image cropped to its largest upright
rectangle and scaled back up) and flips. Patches made from one original are near copies, so a
split by patch puts copies of training images in the test set. ``group_near_copies`` finds them
and ``split_by_group`` keeps every group in one part.

A copy differs from its sibling by a rotation about the patch centre, a mirror image and a small
zoom. Sampling the band-passed grey image on rings around the centre (a polar grid) turns the
rotation into a circular shift along the angle axis, a mirror image into a reversal of that axis
and the zoom into a stretch of the radius axis (the idea of Fourier-Mellin matching, Reddy and
Chatterji, "An FFT-based technique for translation, rotation, and scale-invariant image
registration", IEEE TIP 1996). Two patches are compared by the best normalised circular
cross-correlation over all angle shifts (computed with the FFT), both mirror senses and a few
radius stretches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from engine.errors import SalienceError
from engine.progress import NullProgress, Progress
from engine.tasks.histopathology.preprocess import prepare_tiles

#: LC25000 lung folders and the class names the reader vocabulary (app.tasks) uses, in output order.
CLASS_FOLDERS: dict[str, str] = {
    "lung_aca": "Adenocarcinoma",
    "lung_scc": "Squamous cell carcinoma",
    "lung_n": "Benign",
}
CLASS_NAMES: tuple[str, ...] = tuple(CLASS_FOLDERS.values())

#: Side of the grey image the polar signature is sampled from (LC25000 patches are 224 px).
SIGNATURE_SIZE = 112
#: Ring radii in pixels of the ``SIGNATURE_SIZE`` image; the largest ring times the largest
#: stretch stays inside the patch.
SIGNATURE_RADII = np.linspace(3.0, 38.0, 16)
#: Samples per ring (3.75 degrees apart).
SIGNATURE_ANGLES = 96
#: Band-pass of the grey image (difference of Gaussians, sigmas in pixels of the 112-px image):
#: nuclei and fibres, not the large white lumens that make unrelated patches look alike.
SIGNATURE_BAND = (1.0, 4.0)
#: Radius stretches tried: a 25-degree rotation cropped and scaled back enlarges by 1 / (cos + sin) ~ 1.33.
SIGNATURE_ZOOMS = (1.0, 1.12, 1.25, 1.4)
#: Patches whose best correlation reaches this are copies of one original (chosen at the valley
#: between the copies' and the unrelated patches' similarities on LC25000, see the model card).
COPY_THRESHOLD = 0.45


@dataclass(frozen=True)
class PatchList:
    """Patches of the data set with their labels.

    Attributes:
        paths: one path per patch, sorted by class then path.
        labels: ``(N,)`` int64 class index into ``CLASS_NAMES``.
    """

    paths: tuple[Path, ...]
    labels: np.ndarray


@dataclass(frozen=True)
class PatchSplit:
    """Indices into a ``PatchList`` per part; a near-copy group lies in exactly one part."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


def list_lc25000(data_dir: str | Path) -> PatchList:
    """Every patch of the LC25000 lung folders under ``data_dir``.

    Raises:
        SalienceError: the folder or one of the class folders is missing or empty.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise SalienceError(f"{root}: histopathology data folder not found")
    paths, labels = [], []
    for k, folder in enumerate(CLASS_FOLDERS):
        found = sorted(p for p in (root / folder).glob("*") if p.suffix.lower() in (".jpeg", ".jpg", ".png"))
        if not found:
            raise SalienceError(f"{root / folder}: no patches of class {folder!r}")
        paths += found
        labels += [k] * len(found)
    return PatchList(tuple(paths), np.asarray(labels, dtype=np.int64))


def read_rgb(path: Path) -> np.ndarray:
    """A patch as ``(h, w, 3)`` uint8 RGB.

    Raises:
        SalienceError: the file is not a readable image.
    """
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise SalienceError(f"{path}: not a readable image ({exc})") from None


def polar_signature(rgb: np.ndarray) -> np.ndarray:
    """Rings of the band-passed grey patch around its centre, one row per radius stretch.

    Args:
        rgb: ``(h, w, 3)`` uint8 patch.

    Returns:
        float32 ``(len(SIGNATURE_ZOOMS), len(SIGNATURE_RADII), SIGNATURE_ANGLES)``, each stretch
        shifted to mean 0 and scaled to unit norm.
    """
    grey = Image.fromarray(np.asarray(rgb, dtype=np.uint8)).convert("L").resize((SIGNATURE_SIZE,) * 2, Image.BILINEAR)
    grey = np.asarray(grey, dtype=np.float32)
    blurred = ndimage.gaussian_filter(grey, SIGNATURE_BAND[0]) - ndimage.gaussian_filter(grey, SIGNATURE_BAND[1])
    angles = np.arange(SIGNATURE_ANGLES) * (2 * np.pi / SIGNATURE_ANGLES)
    centre = (SIGNATURE_SIZE - 1) / 2
    rings = []
    for zoom in SIGNATURE_ZOOMS:
        radius = SIGNATURE_RADII[:, None] * zoom
        coords = [centre + radius * np.sin(angles)[None], centre + radius * np.cos(angles)[None]]
        ring = ndimage.map_coordinates(blurred, coords, order=1, mode="nearest")
        ring = ring - ring.mean()
        rings.append(ring / max(float(np.linalg.norm(ring)), 1e-6))
    return np.stack(rings).astype(np.float32)


def copy_similarity(signatures: np.ndarray, block: int = 64) -> np.ndarray:
    """Best correlation of every pair over rotations, mirror images and radius stretches.

    Args:
        signatures: ``(N, Z, R, A)`` from ``polar_signature``.
        block: rows computed at once (bounds memory).

    Returns:
        ``(N, N)`` symmetric float32 similarity in [-1, 1]; the diagonal is 1.
    """
    n, zooms, radii, angles = signatures.shape
    spectra = np.fft.rfft(signatures, axis=-1).astype(np.complex64)  # (N, Z, R, F)
    mirrored = np.fft.rfft(signatures[..., ::-1], axis=-1).astype(np.complex64)
    frequencies = spectra.shape[-1]
    # (F, R, N*Z): every patch at every stretch, per frequency, conjugated for correlation.
    others = [np.conj(s).transpose(3, 2, 0, 1).reshape(frequencies, radii, n * zooms) for s in (spectra, mirrored)]
    best = np.full((n, n), -1.0, dtype=np.float32)
    for start in range(0, n, block):
        stop = min(start + block, n)
        reference = spectra[start:stop, 0].transpose(2, 0, 1)  # unstretched rows: (F, b, R)
        for other in others:
            cross = np.matmul(reference, other)  # (F, b, N*Z)
            correlation = np.fft.irfft(cross.transpose(1, 2, 0), n=angles, axis=-1)  # (b, N*Z, A)
            score = correlation.max(axis=-1).reshape(stop - start, n, zooms).max(axis=-1)
            best[start:stop] = np.maximum(best[start:stop], score)
    best = np.maximum(best, best.T)  # i stretched against j, and j stretched against i
    np.fill_diagonal(best, 1.0)
    return best


def group_near_copies(
    images: list[np.ndarray] | np.ndarray, labels: np.ndarray | None = None, threshold: float = COPY_THRESHOLD
) -> np.ndarray:
    """Group ids: patches linked by a chain of near-copy pairs share a group.

    Args:
        images: ``N`` patches, ``(h, w, 3)`` uint8 each.
        labels: class of each patch; when given, only patches of one class are compared (copies of
            one original always share its class).
        threshold: similarity (``copy_similarity``) from which two patches count as copies.

    Returns:
        ``(N,)`` int64 group ids, numbered 0.. in order of first appearance.
    """
    n = len(images)
    labels = np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels)
    rows, cols = [], []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        signatures = np.stack([polar_signature(images[i]) for i in members])
        pairs = np.argwhere(np.triu(copy_similarity(signatures) >= threshold, k=1))
        rows += members[pairs[:, 0]].tolist()
        cols += members[pairs[:, 1]].tolist()
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    _, components = connected_components(graph, directed=False)
    _, first = np.unique(components, return_index=True)
    renumber = np.empty(len(first), dtype=np.int64)
    renumber[np.argsort(np.argsort(first))] = np.arange(len(first))
    return renumber[components]


def split_by_group(
    groups: np.ndarray, labels: np.ndarray, fractions: tuple[float, float] = (0.15, 0.15), seed: int = 0
) -> PatchSplit:
    """Cut groups into train, validation and test parts, class by class.

    Within each class the groups are shuffled with ``seed``; whole groups go to the test part
    until it holds ``fractions[1]`` of the class's patches, then to validation until it holds
    ``fractions[0]``, and the rest to training.

    Args:
        groups: ``(N,)`` group id per patch (``group_near_copies``).
        labels: ``(N,)`` class per patch.
        fractions: shares of validation and test patches per class.
        seed: seed of the shuffle.

    Raises:
        SalienceError: a class has too few groups for three non-empty parts.
    """
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        class_groups = np.unique(groups[members])
        if len(class_groups) < 3:
            raise SalienceError(f"class {label} has {len(class_groups)} near-copy groups; a split needs at least 3")
        order = rng.permutation(class_groups)
        goals = {"test": fractions[1] * len(members), "val": fractions[0] * len(members)}
        filled = {"test": 0, "val": 0}
        for group in order:
            index = members[groups[members] == group]
            part = next((p for p in ("test", "val") if filled[p] < goals[p] or filled[p] == 0), "train")
            if part != "train":
                filled[part] += len(index)
            parts[part] += index.tolist()
    return PatchSplit(*(np.sort(np.asarray(parts[p], dtype=np.int64)) for p in ("train", "val", "test")))


@dataclass(frozen=True)
class GroupedPatches:
    """The patches a recipe run reads, their near-copy groups and its split by group.

    Attributes:
        paths: one path per patch (``list_lc25000`` order, the first ``per_class`` of each class).
        labels: ``(N,)`` class index per patch.
        rgb: the patches, ``(h, w, 3)`` uint8 each.
        groups: ``(N,)`` near-copy group per patch (``group_near_copies``).
        split: the parts (``split_by_group``), indices into the above.
    """

    paths: tuple[Path, ...]
    labels: np.ndarray
    rgb: list[np.ndarray]
    groups: np.ndarray
    split: PatchSplit

    def names(self, part: str) -> list[str]:
        """File names of the patches of ``part`` ("train", "val" or "test"), in split order."""
        return [self.paths[i].name for i in getattr(self.split, part)]


def read_and_split(
    data_dir: str | Path, per_class: int | None = None, split_seed: int = 0, progress: Progress | None = None
) -> GroupedPatches:
    """Read the patches, group near copies and split by group, as the recipe does.

    The same arguments give the same split: ``salience evaluate`` recomputes a bundle's split from
    its recorded ``per_class`` and ``split_seed`` to check which patches were trained on.

    Args:
        data_dir: the ``histopathology-lc25000`` folder.
        per_class: use only the first this many patches of each class; None: all.
        split_seed: seed of the split of groups.
        progress: told when reading and grouping start.

    Raises:
        SalienceError: the folder, a class folder or a patch cannot be read, or a class has too
            few groups.
    """
    progress = progress or NullProgress()
    patches = list_lc25000(data_dir)
    keep = np.concatenate([np.flatnonzero(patches.labels == k)[:per_class] for k in range(len(CLASS_NAMES))])
    paths, labels = tuple(patches.paths[i] for i in keep), patches.labels[keep]
    progress.report(0.0, f"reading {len(paths)} patches")
    rgb = [read_rgb(p) for p in paths]
    progress.report(0.01, "grouping near copies")
    groups = group_near_copies(rgb, labels)
    return GroupedPatches(paths, labels, rgb, groups, split_by_group(groups, labels, seed=split_seed))


def load_inputs(rgb: list[np.ndarray] | np.ndarray, input_size: tuple[int, int], preprocessing: dict) -> torch.Tensor:
    """Network inputs ``(N, 3, h, w)`` of patches through the bundle's preprocessing, in chunks."""
    chunks = [prepare_tiles(np.stack(rgb[s : s + 128]), input_size, **preprocessing) for s in range(0, len(rgb), 128)]
    return torch.cat(chunks) if chunks else torch.zeros((0, 3) + tuple(input_size))
