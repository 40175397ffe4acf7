"""The demo cases of every task under ``../shared/data``: what the window's worklist and
``salience analyse-cohort demo[:task]`` go through.

Glioma: one case per patient folder. Lung ultrasound: every clip and still frame.
Histopathology: the shipped model's held-out test patches (at most ``PATCHES_PER_CLASS`` per
class), so the demo never shows the model the images it learned from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import SalienceError
from engine.imaging.open import CLIP_SUFFIXES, PATCH_SUFFIXES

#: Histopathology patches per class in the demo worklist.
PATCHES_PER_CLASS = 15


@dataclass(frozen=True)
class DemoCase:
    """One demo case: its key, the title a worklist shows, the path to read and its task."""

    key: str
    title: str
    source: str
    task: str


def demo_cases(demo_data: Path, task: str | None = None) -> list[DemoCase]:
    """The demo cases of every task found under ``demo_data`` (or of ``task`` only)."""
    finders = {"glioma": _glioma_cases, "lung-ultrasound": _ultrasound_cases, "histopathology": _histopathology_cases}
    return [case for name, find in finders.items() if task in (None, name) for case in find(Path(demo_data))]


def demo_tasks() -> tuple[str, ...]:
    """The tasks with demo cases, in worklist order."""
    return ("glioma", "lung-ultrasound", "histopathology")


def _glioma_cases(demo_data: Path) -> list[DemoCase]:
    root = demo_data / "glioma-lgg"
    if not root.is_dir():
        return []
    return [
        DemoCase(key=str(folder), title=folder.name, source=str(folder), task="glioma")
        for folder in sorted(p for p in root.iterdir() if p.is_dir())
    ]


def _ultrasound_cases(demo_data: Path) -> list[DemoCase]:
    root = demo_data / "lung-ultrasound"
    if not root.is_dir():
        return []
    items = []
    for folder, suffixes, what in (("pocus_videos", CLIP_SUFFIXES, ""), ("pocus_images", PATCH_SUFFIXES, " still")):
        files = sorted(p for p in (root / folder).rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        for path in files:
            probe = path.parent.name if path.parent.name in ("convex", "linear") else "probe unknown"
            items.append(DemoCase(key=str(path), title=f"{path.name} ({probe}{what})", source=str(path),
                                  task="lung-ultrasound"))
    return items


def _histopathology_cases(demo_data: Path) -> list[DemoCase]:
    root = demo_data / "histopathology-lc25000"
    if not root.is_dir():
        return []
    try:
        from engine.models.metadata import read_metadata

        held_out = set(read_metadata("histopathology").get("split", {}).get("test", []))
    except SalienceError:
        held_out = set()
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PATCH_SUFFIXES)
        chosen = [n for n in names if n in held_out] if held_out else names
        for name in chosen[:PATCHES_PER_CLASS]:
            path = folder / name
            items.append(DemoCase(key=str(path), title=name, source=str(path), task="histopathology"))
    return items
