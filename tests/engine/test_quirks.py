"""A dataset whose header is known to be wrong is read with the anatomy the right way up."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from engine.imaging import read_image

def _anterior_to_posterior_width(mask: np.ndarray) -> float:
    """Mean head width in the top quarter of the head's rows over that in the bottom quarter."""
    rows = np.nonzero(mask.any(axis=1))[0]
    quarter = (rows[-1] - rows[0]) // 4
    top = mask[rows[0] : rows[0] + quarter].sum(axis=1).mean()
    bottom = mask[rows[-1] - quarter : rows[-1] + 1].sum(axis=1).mean()
    return float(top / bottom)


@pytest.mark.parametrize("case", ["TCGA_HT_7692_19960724", "TCGA_DU_5851_19950428", "TCGA_FG_6692_20020606"])
def test_lgg_nominal_affine_is_corrected_so_the_face_is_anterior(shared_data, case):
    """At orbit level the head narrows towards the nose: the display's top rows must be narrower."""
    volume = read_image(shared_data / "glioma-lgg" / case)
    assert "nominal affine" in volume.header["geometry_note"]
    assert volume.orientation == "SPL"
    ratios = [_anterior_to_posterior_width(volume.channel("flair")[k] > 30) for k in range(1, 6)]
    assert np.median(ratios) < 0.85, ratios


def test_the_correction_needs_the_exact_signature(tmp_path):
    data = np.zeros((8, 6, 4), dtype=np.uint8)
    data[0, 0, 0] = 200  # i=0, j=0: patient right-posterior under diag(2, 2, 1) = RAS
    lgg_like = tmp_path / "TCGA_AB_1234_20000101_flair.nii.gz"
    other = tmp_path / "brain_flair.nii.gz"
    for path in (lgg_like, other):
        nib.save(nib.Nifti1Image(data, np.diag([2.0, 2.0, 1.0, 1.0])), str(path))
    corrected = read_image(lgg_like)
    honoured = read_image(other)
    assert "geometry_note" in corrected.header and "geometry_note" not in honoured.header
    # Honoured header: voxel (i=0, j=0) is right-posterior: last display column, last row.
    assert honoured.array[0, 0, 5, 7] == 200
    # Corrected: i runs to the left and j to posterior, so it lands top-left in the display.
    assert corrected.array[0, 0, 0, 0] == 200
