"""Known geometry faults of published datasets, corrected where the fault is certain.

A reader honours a file's header. A few public datasets carry a header that is known to be
wrong; where a file matches such a dataset's exact signature, the reader applies the known
correction and says so in ``header["geometry_note"]``, so the viewer's orientation letters tell
the truth and every path (CLI, window, training) sees the same anatomy.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

# The LGG segmentation dataset (Buda et al. 2019) as converted for ../shared/data/glioma-lgg:
# axial TIFF slices, stored in radiological display order (rows anterior -> posterior, columns
# patient right -> left, as DICOM shows them), were written with a nominal affine diag(2, 2, 1)
# that claims i -> Right and j -> Anterior. Inferior slices show the face at the bottom under
# that affine: the in-plane axes are reversed. The true affine is diag(-2, -2, 1).
_LGG_NAME = re.compile(r"^TCGA_[A-Z0-9]{2}_[A-Z0-9]{4}_\d{8}_(t1|t1ce|t2|flair|seg)\.nii(\.gz)?$")
_LGG_NOMINAL = np.diag([2.0, 2.0, 1.0, 1.0])
_LGG_TRUE = np.diag([-2.0, -2.0, 1.0, 1.0])
LGG_NOTE = (
    "LGG segmentation dataset: nominal affine diag(2, 2, 1) replaced by diag(-2, -2, 1); the "
    "slices are stored in radiological display order, not as the nominal affine claims"
)


def corrected_affine(path: Path, affine: np.ndarray, qform_code: int) -> tuple[np.ndarray, str | None]:
    """The affine to use for ``path`` and a note when it was corrected (else the note is None)."""
    if _LGG_NAME.match(path.name) and qform_code == 0 and np.allclose(affine, _LGG_NOMINAL):
        return _LGG_TRUE.copy(), LGG_NOTE
    return affine, None
