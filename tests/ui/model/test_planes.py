"""``PlanesModel`` and the reslicing functions: planes, spacing, letters and the cursor, no Qt.

The test volume is 10 slices x 20 rows x 30 columns, 3 mm between slices and 1 mm in plane, in
the radiological order every reader produces (slices to Superior, rows to Posterior, columns to
Left), with one bright voxel at slice 7, row 5, column 20.
"""

from __future__ import annotations

import numpy as np
import pytest

from engine.imaging.render import fit_to_image
from engine.imaging.volume import ImageVolume, plain_affine
from tests.ui.fake_workstation import synthetic_clip
from ui.backend import Analysis
from ui.model import ViewerState
from ui.model.planes import plane_axes, plane_letters, plane_title, reslice, reslice_map, to_plane, to_voxel

SHAPE = (10, 20, 30)
SPACING = (3.0, 1.0, 1.0)
BRIGHT = (7, 5, 20)


def voxel_volume(affine: np.ndarray | None = None, kind: str = "volume") -> ImageVolume:
    array = np.zeros((1,) + SHAPE, dtype=np.float32)
    array[(0,) + BRIGHT] = 1000.0
    return ImageVolume(array=array, spacing=SPACING, affine=plain_affine(SPACING) if affine is None else affine,
                       modality="MR", kind=kind, source="/fake/voxel", channel_names=("t2",))


def lps_affine(directions: str) -> np.ndarray:
    """An index-to-LPS affine whose slice, row and column axes point to ``directions`` (e.g. "SPL")."""
    unit = {"L": (1, 0, 0), "R": (-1, 0, 0), "P": (0, 1, 0), "A": (0, -1, 0), "S": (0, 0, 1), "I": (0, 0, -1)}
    affine = np.eye(4)
    for axis, (code, step) in enumerate(zip(directions, SPACING)):
        affine[:3, axis] = np.array(unit[code]) * step
    return affine


def test_each_plane_shows_the_bright_voxel_where_the_axes_say():
    """The coronal plane (row 5) has the voxel at plane row 10 - 1 - 7 = 2 (Superior up), column
    20; the sagittal plane (column 20) at plane row 2, column 5; the axial plane at (5, 20)."""
    volume = voxel_volume()
    values = volume.channel("t2")
    expected = {"axial": (0, 7, (5, 20)), "coronal": (1, 5, (2, 20)), "sagittal": (2, 20, (2, 5))}
    for plane, (fixed, index, where) in expected.items():
        axes = plane_axes(volume, plane)
        image = reslice(values, axes, index)
        assert axes.fixed == fixed and image.shape == axes.shape
        assert list(zip(*np.nonzero(image))) == [where]
        assert to_plane(axes, BRIGHT) == where
        assert to_voxel(axes, index, *where) == tuple(float(v) for v in BRIGHT)


def test_plane_spacing_uses_the_slice_spacing_down_the_coronal_and_sagittal_planes():
    volume = voxel_volume()
    assert plane_axes(volume, "axial").spacing == (1.0, 1.0)
    assert plane_axes(volume, "coronal").spacing == (3.0, 1.0)
    assert plane_axes(volume, "sagittal").spacing == (3.0, 1.0)
    assert plane_axes(volume, "sagittal").shape == (10, 20)
    with pytest.raises(ValueError, match="no plane 'oblique'"):
        plane_axes(volume, "oblique")


def test_letters_of_the_radiological_order_on_all_four_sides():
    """Slices to S, rows to P, columns to L (what the NIfTI and DICOM readers produce)."""
    volume = voxel_volume(lps_affine("SPL"))
    assert plane_letters(volume, "axial") == ("R", "A", "L", "P")
    assert plane_letters(volume, "coronal") == ("R", "S", "L", "I")
    assert plane_letters(volume, "sagittal") == ("A", "S", "P", "I")
    assert [plane_title(volume, p) for p in ("axial", "coronal", "sagittal")] == ["Axial", "Coronal", "Sagittal"]


def test_letters_follow_an_affine_in_another_order():
    """Slices to I, rows to A, columns to R: nothing is flipped (Superior is already at index 0),
    so every letter is the mirror of the radiological case, and Superior still tops the planes."""
    volume = voxel_volume(lps_affine("IAR"))
    assert plane_letters(volume, "axial") == ("L", "P", "R", "A")
    assert plane_letters(volume, "coronal") == ("L", "S", "R", "I")
    assert plane_letters(volume, "sagittal") == ("P", "S", "A", "I")
    assert not plane_axes(volume, "coronal").flipped
    sagittal_acquisition = voxel_volume(lps_affine("LPS"))  # slices run right to left
    assert plane_title(sagittal_acquisition, "axial") == "Sagittal"


def test_nifti_in_ras_and_lps_storage_read_to_the_same_letters_and_voxel(tmp_path):
    """A NIfTI stored RAS+ and the same anatomy stored with x and y reversed both open in the
    radiological order: same letters in every plane and the bright voxel at the same plane place."""
    nib = pytest.importorskip("nibabel")
    from engine.imaging.nifti import read_nifti

    data = np.zeros((30, 20, 10), dtype=np.float32)  # x (R->L in storage below), y, z
    data[4, 7, 6] = 500.0
    ras = np.diag([1.0, 1.0, 3.0, 1.0])  # RAS+ world: i grows to the Right, j to Anterior, k to Superior
    nib.save(nib.Nifti1Image(data, ras), tmp_path / "ras.nii.gz")
    flipped = np.diag([-1.0, -1.0, 3.0, 1.0])
    flipped[:3, 3] = (29.0, 19.0, 0.0)  # the same world positions, stored from the other ends
    nib.save(nib.Nifti1Image(data[::-1, ::-1].copy(), flipped), tmp_path / "lps.nii.gz")
    places = []
    for name in ("ras", "lps"):
        volume = read_nifti(tmp_path / f"{name}.nii.gz")
        assert plane_letters(volume, "coronal") == ("R", "S", "L", "I")
        assert plane_letters(volume, "sagittal") == ("A", "S", "P", "I")
        voxel = tuple(int(v) for v in np.argwhere(volume.channel("intensity") > 0)[0])
        places.append((voxel, to_plane(plane_axes(volume, "coronal"), voxel)))
    assert places[0] == places[1]


def test_a_coarse_map_reslices_onto_what_the_axial_planes_show_at_that_row():
    """A map on a 5 x 6 grid over the 20 x 30 image: the coronal plane's map, fitted to the plane,
    equals row 13 of each slice's fitted axial map (the planes agree where they cross)."""
    rng = np.random.default_rng(1)
    maps = rng.random((SHAPE[0], 5, 6)).astype(np.float32)
    volume = voxel_volume()
    coronal = plane_axes(volume, "coronal")
    plane_map = reslice_map(maps, coronal, 13, SHAPE)
    assert plane_map.shape == (SHAPE[0], 6)
    fitted = fit_to_image(plane_map, coronal.shape)
    expected = np.stack([fit_to_image(maps[k], SHAPE[1:])[13] for k in range(SHAPE[0])])[::-1]
    np.testing.assert_allclose(fitted, expected, atol=1e-5)
    sagittal = plane_axes(volume, "sagittal")
    fitted = fit_to_image(reslice_map(maps, sagittal, 29, SHAPE), sagittal.shape)
    expected = np.stack([fit_to_image(maps[k], SHAPE[1:])[:, 29] for k in range(SHAPE[0])])[::-1]
    np.testing.assert_allclose(fitted, expected, atol=1e-5)


def test_cursor_slice_is_the_display_slice_and_moves_it():
    """Moving the cursor in the sagittal plane changes the display's slice (the navigator follows),
    and a slice change moves the cursor; each fires one cursor event."""
    state = ViewerState()
    state.display.set_volume(voxel_volume())
    assert state.planes.cursor == (5, 10, 15)  # the middle
    slices, cursors = [], []
    state.display.events.slice_index.connect(slices.append)
    state.planes.events.cursor.connect(cursors.append)
    state.planes.move_in_plane("sagittal", 2.0, 5.0)  # plane row 2 is slice 7; plane column is row 5
    assert state.planes.cursor == (7, 5, 15) and state.display.slice_index == 7
    assert slices == [7] and cursors == [(7, 5, 15)]
    state.display.slice_index = 3
    assert state.planes.cursor == (3, 5, 15) and cursors[-1] == (3, 5, 15)
    state.planes.step("coronal", 100)
    assert state.planes.cursor == (3, 19, 15)  # clamped to the last row
    assert state.planes.crosshair("coronal") == (6.0, 15.0)


def test_plane_images_and_maps_follow_the_channel_window_and_overlay():
    """The overlay spec of a plane has the overlay's look and the resliced map of the shown class."""
    state = ViewerState()
    volume = voxel_volume()
    state.display.set_volume(volume)
    maps = np.zeros((2,) + SHAPE, dtype=np.float32)
    maps[1][BRIGHT] = 1.0
    probabilities = np.tile([[0.2, 0.8]], (SHAPE[0], 1))
    state.overlay.set_analysis(Analysis("t 1", ("a", "b"), probabilities, "gradcam", maps, 1, (1, 2)))
    state.overlay.class_index = 1
    state.overlay.opacity = 0.4
    state.planes.set_cursor(BRIGHT)
    spec = state.planes.overlay_spec("coronal")
    assert spec.opacity == 0.4 and spec.value_range == state.overlay.spec().value_range
    assert list(zip(*np.nonzero(spec.saliency))) == [(2, 20)]
    assert state.planes.value_at(BRIGHT) == 1000.0 and state.planes.value_at((10, 0, 0)) is None
    state.overlay.visible = False
    assert state.planes.overlay_spec("sagittal") is None


def test_three_planes_only_for_volumes_with_patient_geometry_and_slices():
    """A clip or a one-slice image cannot switch on three planes (the reason says why); opening
    one while three planes are shown goes back to the single view."""
    state = ViewerState()
    with pytest.raises(ValueError, match="Open a volume"):
        state.planes.three_planes = True
    state.display.set_volume(voxel_volume())
    modes = []
    state.planes.events.three_planes.connect(modes.append)
    state.planes.three_planes = True
    state.display.set_volume(synthetic_clip())
    assert not state.planes.available and "clip" in state.planes.problem()
    assert modes == [True, False]
    with pytest.raises(ValueError, match="clip"):
        state.planes.three_planes = True
    single = voxel_volume().with_(array=np.zeros((1, 1, 20, 30), np.float32))
    state.display.set_volume(single)
    assert "more than one slice" in state.planes.problem()
