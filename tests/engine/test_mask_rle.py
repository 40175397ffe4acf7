"""Run-length encoding of a painted mask: exact round trips, the stored JSON, and refusals."""

from __future__ import annotations

import numpy as np
import pytest

from engine.imaging.mask_rle import MaskRLE, encode_mask


@pytest.mark.parametrize("mask", [
    np.zeros((4, 5), dtype=bool),  # empty: one run of False
    np.ones((4, 5), dtype=bool),  # full: a 0-long False run, then everything
    np.eye(7, 3, dtype=bool),  # odd, non-square shape
    np.ones((1, 1), dtype=bool),
    np.zeros((1, 1), dtype=bool),
    np.random.default_rng(0).random((13, 17)) > 0.5,
    np.pad(np.ones((3, 3), dtype=bool), ((0, 2), (1, 0))),  # set pixel at the end of a row wraps to the next
], ids=["empty", "full", "eye", "one-set", "one-unset", "random", "block"])
def test_decode_gives_back_exactly_what_was_encoded(mask):
    rle = encode_mask(mask)
    assert sum(rle.counts) == mask.size and rle.area == int(mask.sum())
    decoded = rle.decode()
    assert decoded.dtype == bool and decoded.shape == mask.shape
    np.testing.assert_array_equal(decoded, mask)
    assert MaskRLE.from_json(rle.to_json()) == rle


def test_runs_are_read_row_by_row_unset_first():
    """The first run counts unset pixels; rows follow each other (C order)."""
    mask = np.array([[1, 1, 0], [0, 0, 1]], dtype=bool)
    assert encode_mask(mask).counts == (0, 2, 3, 1)
    assert encode_mask(np.array([[0, 1], [1, 0]], dtype=bool)).counts == (1, 2, 1)
    assert encode_mask(np.zeros((2, 3), dtype=bool)).counts == (6,)
    assert encode_mask(np.ones((2, 3), dtype=bool)).to_json() == {"encoding": "rle-rows", "shape": [2, 3],
                                                                  "counts": [0, 6]}


@pytest.mark.parametrize("data, message", [
    ({"encoding": "coco", "shape": [2, 2], "counts": [4]}, "not a 'rle-rows'"),
    ({"shape": [2], "counts": [2]}, "not two positive"),
    ({"shape": [2, 0], "counts": []}, "not two positive"),
    ({"shape": [2, 2], "counts": [1, -1, 4]}, "whole numbers >= 0"),
    ({"shape": [2, 2], "counts": [1.5, 2.5]}, "whole numbers >= 0"),
    ({"shape": [2, 2], "counts": [1, 2]}, "add up to 3, not 2 x 2"),
])
def test_malformed_json_is_refused_in_one_line(data, message):
    with pytest.raises(ValueError, match=message):
        MaskRLE.from_json(data, "annotation 3")


def test_a_mask_that_is_not_2d_is_refused():
    with pytest.raises(ValueError, match="non-empty 2-D"):
        encode_mask(np.zeros((2, 2, 2), dtype=bool))
    with pytest.raises(ValueError, match="non-empty 2-D"):
        encode_mask(np.zeros((0, 3), dtype=bool))
