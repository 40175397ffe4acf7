"""The study half of the workstation: the pixels a reader gets are de-identified and checked
against the study, and what cannot be shown is said without a path."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

from app.study_workstation import case_probabilities, deidentified
from engine.errors import SalienceError
from engine.imaging import read_image
from engine.progress import NullProgress
from tests.ui.study_world import build_study_world, every_kind_design, workstation_of, write_case


def test_a_glioma_volume_loses_its_mask_names_and_file_names(glioma_case):
    """The real demo volume: its expert mask (a reference answer) and every header field naming
    the patient or its files are gone; pixels and geometry stay."""
    volume = read_image(glioma_case)
    assert volume.labels is not None and "TCGA" in str(volume.header)
    shown = deidentified(volume, "S4-C101")
    assert shown.source == "S4-C101" and shown.labels is None and shown.label_names == {}
    assert "TCGA" not in str(shown.header) and set(shown.header) <= {"format", "dtype", "dim", "zooms", "sequences"}
    assert shown.content_hash == volume.content_hash and shown.channel_names == volume.channel_names


def test_a_changed_or_missing_image_is_refused_naming_only_the_pseudonym(tmp_path):
    world = build_study_world(tmp_path, every_kind_design(), cases=2)
    workstation = workstation_of(world, "ann")
    entries = workstation.study_worklist(world.study_id).entries
    by_source = {}
    for entry in entries:
        opened = workstation.open_study_case(entry.assignment_id, NullProgress())
        by_source[entry.assignment_id] = opened.volume.source
    first, second = entries
    changed = write_case(tmp_path / "images", 7)  # other pixels under the first case's file name
    sources = sorted(world.sources)
    shutil.copyfile(changed, sources[0])
    (tmp_path / "images" / changed.name).unlink()
    os.remove(sources[1])
    messages = []
    for entry in (first, second):
        with pytest.raises(SalienceError) as error:
            workstation.open_study_case(entry.assignment_id, NullProgress())
        messages.append(str(error.value))
    assert sorted(m.split(":")[0] for m in messages) == sorted(by_source.values())
    assert any("has changed since the study was created" in m for m in messages)
    assert any("cannot be read" in m for m in messages)
    assert not any("TCGA" in m or "/" in m for m in messages)


def test_case_probabilities_pool_a_clip_by_its_mean_and_a_volume_by_its_peak():
    rows = np.array([[0.8, 0.2], [0.4, 0.6]], dtype=np.float32)
    mean, rule = case_probabilities(rows, "frame")
    assert np.allclose(mean, [0.6, 0.4]) and rule == "mean over 2 frames"
    peak, rule = case_probabilities(rows, "slice")
    assert np.allclose(peak, [0.8, 0.6]) and rule == "highest over 2 slices"


def test_case_probabilities_of_a_slide_are_its_tile_shares_as_its_verdict_has_them():
    rows = np.array([[0.7, 0.3]] * 3 + [[0.1, 0.9]] * 17, dtype=np.float32)
    shares, rule = case_probabilities(rows, "tile")
    assert np.allclose(shares, [0.15, 0.85]) and rule == "share of 20 tissue tiles called each class (a finding needs 2)"


def test_another_readers_case_is_refused(tmp_path):
    """The workstation asks the data layer as the signed-in reader: ben cannot open ann's case."""
    world = build_study_world(tmp_path, every_kind_design(), cases=2)
    ann = workstation_of(world, "ann").study_worklist(world.study_id).entries[0]
    with pytest.raises(SalienceError, match="not on your worklist"):
        workstation_of(world, "ben").open_study_case(ann.assignment_id, NullProgress())
